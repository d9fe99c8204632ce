# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.switchboard.matrix.plugins.modules import stored_secrets
from .utils import run_module


def run(args, check_mode=False):
    return run_module(stored_secrets.main, args, check_mode)


def test_generates_once_and_keeps(tmp_path):
    directory = tmp_path / "secrets"
    first = run(dict(directory=str(directory), names=["a", "b"]))
    assert first["changed"] is True and sorted(first["created"]) == ["a", "b"]
    assert first["secrets"]["a"] != first["secrets"]["b"]
    assert len(first["secrets"]["a"]) == 48
    second = run(dict(directory=str(directory), names=["a", "b"]))
    assert second["changed"] is False and second["created"] == []
    assert second["secrets"] == first["secrets"]
    assert (directory / "a").read_text().strip() == first["secrets"]["a"]


def test_files_are_private(tmp_path):
    directory = tmp_path / "secrets"
    run(dict(directory=str(directory), names=["db"]))
    assert stat.S_IMODE(os.stat(directory / "db").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700


def test_only_missing_ones_are_created(tmp_path):
    (tmp_path / "kept").write_text("given-by-hand-0123456789\n")
    result = run(dict(directory=str(tmp_path), names=["kept", "new"], length=20))
    assert result["created"] == ["new"]
    assert result["secrets"]["kept"] == "given-by-hand-0123456789"
    assert len(result["secrets"]["new"]) == 20


def test_check_mode_writes_nothing(tmp_path):
    result = run(dict(directory=str(tmp_path / "s"), names=["x"]), check_mode=True)
    assert result["changed"] is True
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("name", ["../escape", "", ".hidden", "a/b", "token\n"])
def test_bad_names_are_refused(tmp_path, name):
    result = run(dict(directory=str(tmp_path), names=[name]))
    assert result["failed"] and "names must be" in result["msg"] and str(tmp_path) in result["msg"]
    assert list(tmp_path.iterdir()) == []


def test_short_length_refused(tmp_path):
    result = run(dict(directory=str(tmp_path), names=["x"], length=8))
    assert result["failed"] and "length" in result["msg"]


def test_a_loosened_file_is_made_private_again(tmp_path):
    first = run(dict(directory=str(tmp_path), names=["db"]))
    os.chmod(tmp_path / "db", 0o644)
    checked = run(dict(directory=str(tmp_path), names=["db"]), check_mode=True)
    assert checked["changed"] is True and checked["repaired"] == ["db"]
    assert stat.S_IMODE(os.stat(tmp_path / "db").st_mode) == 0o644
    repaired = run(dict(directory=str(tmp_path), names=["db"]))
    assert repaired["changed"] is True and repaired["repaired"] == ["db"] and repaired["created"] == []
    assert stat.S_IMODE(os.stat(tmp_path / "db").st_mode) == 0o600
    assert repaired["secrets"] == first["secrets"]
    assert run(dict(directory=str(tmp_path), names=["db"]))["changed"] is False


@pytest.mark.parametrize("kind", ["link", "dangling link", "fifo", "directory"])
def test_what_is_not_a_regular_file_is_refused(tmp_path, kind):
    target = tmp_path / "outside"
    target.write_text("not a secret\n")
    path = tmp_path / "secrets" / "db"
    path.parent.mkdir()
    if kind == "link":
        path.symlink_to(target)
    elif kind == "dangling link":
        path.symlink_to(tmp_path / "created-by-root")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    result = run(dict(directory=str(path.parent), names=["db"]))
    assert result["failed"] and str(path) in result["msg"], result
    assert target.read_text() == "not a secret\n"
    assert not (tmp_path / "created-by-root").exists()


def test_a_loosened_directory_is_made_private_again(tmp_path):
    directory = tmp_path / "secrets"
    first = run_module(stored_secrets.main, dict(directory=str(directory), names=["a-token"], length=32))
    os.chmod(directory, 0o707)
    again = run_module(stored_secrets.main, dict(directory=str(directory), names=["a-token"], length=32))
    assert again["changed"] is True and again["repaired"] == ["."]
    assert again["secrets"] == first["secrets"]
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700


def test_kept_reads_every_secret_already_there_and_repairs_it(tmp_path):
    directory = tmp_path / "secrets"
    first = run_module(stored_secrets.main, dict(directory=str(directory), names=["bridge-a-as-token", "postgres-x"]))
    os.chmod(directory / "postgres-x", 0o644)
    (directory / "subdir").mkdir()
    (directory / ".partial.tmp").write_text("not a secret")
    kept = run_module(stored_secrets.main, dict(directory=str(directory), kept=True))
    assert kept["secrets"] == first["secrets"]
    assert kept["created"] == [] and kept["repaired"] == ["postgres-x"]
    assert stat.S_IMODE(os.stat(directory / "postgres-x").st_mode) == 0o600


def test_kept_from_a_missing_directory_reads_none_and_creates_nothing(tmp_path):
    result = run_module(stored_secrets.main, dict(directory=str(tmp_path / "absent"), kept=True))
    assert result["secrets"] == {} and result["changed"] is False
    assert not (tmp_path / "absent").exists()
