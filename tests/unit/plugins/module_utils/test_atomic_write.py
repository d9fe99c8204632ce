# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A write of homeserver.yaml killed at any moment leaves the old file or the new one, never half of one.

The writer runs in a child process that is killed with SIGKILL (no cleanup runs), either at
a chosen point inside atomic_write or at random moments while it rewrites the file in a loop.
A naive in-place writer, killed the same way, leaves a torn file: the harness can tell.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.switchboard.matrix.plugins.module_utils import _yaml_file
from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import atomic_write

# Big enough that one write takes several system calls.
OLD = "".join("old_key_%06d: %s\n" % (i, "o" * 60) for i in range(40000))
NEW = "".join("new_key_%06d: %s\n" % (i, "n" * 60) for i in range(40000))


def _die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


class _HalfThenDie:
    """Stands in for the temp file: writes half the text, then the process dies."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, text):
        self.handle.write(text[: len(text) // 2])
        self.handle.flush()
        _die()

    def __getattr__(self, name):
        return getattr(self.handle, name)


def _kill_points():
    real_fdopen, real_fsync, real_replace = os.fdopen, os.fsync, os.replace
    calls = {"fsync": 0}

    def fsync_then_die_on_second(fd):  # the second fsync is the directory's, after the rename
        calls["fsync"] += 1
        if calls["fsync"] == 2:
            _die()
        real_fsync(fd)

    def replace_then_die(src, dst):
        real_replace(src, dst)
        _die()

    return {
        "in the middle of writing": ("fdopen", lambda *a, **k: _HalfThenDie(real_fdopen(*a, **k)), OLD),
        "before the data reaches the disk": ("fsync", _die, OLD),
        "just before the rename": ("replace", _die, OLD),
        "just after the rename": ("replace", replace_then_die, NEW),
        "before the directory is synced": ("fsync", fsync_then_die_on_second, NEW),
    }


def _run_child(target, patch_name, patched):
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child is killed or exits
        try:
            setattr(_yaml_file.os, patch_name, patched)
            atomic_write(target, NEW)
        finally:
            os._exit(0)  # pylint: disable=protected-access
    _pid, status = os.waitpid(pid, 0)
    return status


@pytest.mark.parametrize("point", list(_kill_points()))
def test_killed_at_each_point_leaves_old_or_new(tmp_path, point):
    target = tmp_path / "homeserver.yaml"
    target.write_text(OLD)
    patch_name, patched, expected = _kill_points()[point]

    status = _run_child(str(target), patch_name, patched)

    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert target.read_text() == expected


def test_naive_write_killed_in_the_middle_is_torn(tmp_path):
    """Control: the same kill during a plain in-place write leaves half a file."""
    target = tmp_path / "homeserver.yaml"
    target.write_text(OLD)
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        try:
            with open(target, "w", encoding="utf-8") as handle:
                _HalfThenDie(handle).write(NEW)
        finally:
            os._exit(0)  # pylint: disable=protected-access
    os.waitpid(pid, 0)
    assert target.read_text() not in (OLD, NEW)


WRITER = """
import sys
from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import atomic_write
path, old, new = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read()
sys.stdout.write("ready\\n"); sys.stdout.flush()
while True:
    atomic_write(path, new)
    atomic_write(path, old)
"""


def test_killed_at_random_moments_never_leaves_a_torn_file(tmp_path):
    target, old_file, new_file = tmp_path / "homeserver.yaml", tmp_path / "old", tmp_path / "new"
    old_file.write_text(OLD)
    new_file.write_text(NEW)
    target.write_text(OLD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    rng = random.Random(7)
    seen = set()
    for _attempt in range(25):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(old_file), str(new_file)],
                                 stdout=subprocess.PIPE, env=env)
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.2))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        content = target.read_text()
        assert content in (OLD, NEW)
        seen.add(content == NEW)
    # Killed in either state at least once: the writes really were in progress.
    assert seen == {True, False}
