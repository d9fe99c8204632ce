# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import stat
import time
from unittest import mock

import pytest

from ansible_collections.switchboard.matrix.plugins.module_utils import _yaml_file
from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import (
    Document,
    YamlFileError,
    atomic_write,
    delete_key,
    load_mapping,
    load_plain,
    make_diff,
    same_data,
    set_key,
)


def edit(tmp_path, text, change):
    path = tmp_path / "file.yaml"
    path.write_text(text)
    document = Document.load(str(path))
    change(document.data)
    return document.render()


# --- loading -------------------------------------------------------------------------------

def test_load_errors_name_the_path(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(YamlFileError, match="%s: file does not exist" % missing):
        Document.load(str(missing))
    with pytest.raises(YamlFileError, match="is a directory"):
        Document.load(str(tmp_path))
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n")
    with pytest.raises(YamlFileError, match="%s: invalid YAML" % bad):
        load_plain(str(bad))
    bad.write_text("a: 1\na: 2\n")  # a duplicate key cannot be edited safely
    with pytest.raises(YamlFileError, match="invalid YAML"):
        Document.load(str(bad))


def test_load_mapping_rejects_other_documents(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n")
    with pytest.raises(YamlFileError, match="must be a YAML mapping, got list"):
        load_mapping(str(path))


@pytest.mark.parametrize("without_pyyaml", [False, True], ids=["pyyaml", "ruamel-fallback"])
def test_plain_load_uses_yaml_11_like_synapse(tmp_path, without_pyyaml):
    path = tmp_path / "a.yaml"
    path.write_text("a: yes\nb: off\nc: 'yes'\n")
    with mock.patch.object(_yaml_file, "pyyaml", None if without_pyyaml else _yaml_file.pyyaml):
        assert load_plain(str(path)) == {"a": True, "b": False, "c": "yes"}
        path.write_text("a: [1\n")
        with pytest.raises(YamlFileError, match="%s: invalid YAML" % path):
            load_plain(str(path))


# --- rendering -----------------------------------------------------------------------------

def test_render_unchanged_is_identical(tmp_path):
    text = "# c\na:   1\nb: null\nc: [ x,  y ]\nd: yes\n"
    assert edit(tmp_path, text, lambda data: None) == text


def test_render_keeps_untouched_lines_byte_for_byte(tmp_path):
    text = "a:   1   # spaced\nb: null\nc: [ x,  y ]\nd: yes\ne: 2\n"
    out = edit(tmp_path, text, lambda data: set_key(data, "e", 3))
    assert out == text.replace("e: 2", "e: 3")


def test_learns_sequence_indentation(tmp_path):
    text = "a:\n- p\nb:\n  c: 1\n"
    out = edit(tmp_path, text, lambda data: set_key(data, "a", ["p", "q"]))
    assert out == "a:\n- p\n- q\nb:\n  c: 1\n"
    text = "a:\n    - p\nb:\n    c: 1\n"
    out = edit(tmp_path, text, lambda data: set_key(data, "a", ["p", "q"]))
    assert out == "a:\n    - p\n    - q\nb:\n    c: 1\n"


def test_yaml_11_booleans_in_new_strings_are_quoted(tmp_path):
    out = edit(tmp_path, "a: 1\n", lambda data: set_key(data, "b", ["y", "on", "p"]))
    assert out == "a: 1\nb:\n  - 'y'\n  - 'on'\n  - p\n"


def test_comment_after_list_stays_below_it(tmp_path):
    text = "l:\n  - a   # first\n# about m\nm: 1\n"
    out = edit(tmp_path, text, lambda data: set_key(data, "l", ["a", "b"]))
    assert out == "l:\n  - a   # first\n  - b\n# about m\nm: 1\n"
    out = edit(tmp_path, text, lambda data: set_key(data, "l", []))
    assert out == "l: []\n# about m\nm: 1\n"


def test_delete_key_keeps_following_comment(tmp_path):
    text = "a: 1\n# about b\nb: 2\n# about c\nc: 3\n"
    out = edit(tmp_path, text, lambda data: delete_key(data, "b"))
    assert out == "a: 1\n# about b\n# about c\nc: 3\n"


def test_set_and_delete_report_changes(tmp_path):
    document = Document.load(str(_write(tmp_path, "a: 1\nb: [1, 2]\n")))
    assert set_key(document.data, "a", 1) is False
    assert set_key(document.data, "b", [1, 2]) is False
    assert set_key(document.data, "a", True) is True
    assert delete_key(document.data, "zzz") is False
    assert delete_key(document.data, "b") is True


def _write(tmp_path, text):
    path = tmp_path / "f.yaml"
    path.write_text(text)
    return path


def test_masked_texts(tmp_path):
    document = Document.load(str(_write(tmp_path, "db:\n  args:\n    password: old\n    user: u\nkey: k\n")))
    set_key(document.data, "db", {"args": {"password": "new", "user": "u"}})
    before, after = document.masked_texts([("db", "args", "*pass*"), ("key",)])
    assert "old" not in before and "new" not in after and "k\n" not in after
    assert "password: '********'" in before
    assert "password: '******** (changed)'" in after
    assert "key: '********'" in after


def test_same_data_tells_bools_from_numbers():
    assert same_data({"a": [1, "x"]}, {"a": [1, "x"]})
    assert not same_data({"a": True}, {"a": 1})
    assert not same_data([0], [False])
    assert not same_data({"a": 1}, {"a": 1, "b": None})
    assert not same_data({"a": []}, {"a": {}})


# --- writing -------------------------------------------------------------------------------

def test_atomic_write_keeps_mode_and_leaves_no_temp_file(tmp_path):
    path = _write(tmp_path, "old\n")
    os.chmod(path, 0o640)
    atomic_write(str(path), "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["f.yaml"]


def test_atomic_write_new_file_is_private(tmp_path):
    path = tmp_path / "new.yaml"
    atomic_write(str(path), "x: 1\n")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_atomic_write_refuses_a_link_and_leaves_its_target_alone(tmp_path):
    """A link planted where a config goes (config.yaml -> /root/.ssh/authorized_keys) is never written through."""
    target = _write(tmp_path, "old\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    with pytest.raises(YamlFileError, match="is a symbolic link"):
        atomic_write(str(link), "new\n")
    assert link.is_symlink() and target.read_text() == "old\n"


def test_atomic_write_refuses_a_dangling_link(tmp_path):
    link = tmp_path / "link.yaml"
    link.symlink_to(tmp_path / "elsewhere" / "created-by-root")
    with pytest.raises(YamlFileError, match="is a symbolic link"):
        atomic_write(str(link), "new\n")
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("kind", ["link", "fifo", "dev-zero-link", "too big"])
def test_reading_refuses_what_is_not_a_small_regular_file(tmp_path, kind):
    """Links, FIFOs (a hang) and /dev/zero (memory) are refused at once with a message naming the path."""
    path = tmp_path / "registration.yaml"
    if kind == "link":
        path.symlink_to(_write(tmp_path, "a: 1\n"))
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero-link":
        path.symlink_to("/dev/zero")
    else:
        path.write_bytes(b"#" * (_yaml_file.MAX_FILE_BYTES + 1))
    with pytest.raises(YamlFileError) as refused:
        load_plain(str(path))
    assert str(refused.value).startswith(str(path))
    assert any(words in str(refused.value) for words in ("symbolic link", "not a regular file", "more than"))


def test_atomic_write_failure_keeps_original(tmp_path):
    path = _write(tmp_path, "old\n")
    with mock.patch.object(_yaml_file.os, "replace", side_effect=OSError("disk on fire")):
        with pytest.raises(YamlFileError, match="cannot write: disk on fire"):
            atomic_write(str(path), "new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["f.yaml"]


def test_make_diff():
    assert make_diff("/p", "a", "b") == {"before": "a", "after": "b", "before_header": "/p", "after_header": "/p"}


def test_require_ruamel_fails_with_standard_message():
    module = mock.Mock()
    with mock.patch.object(_yaml_file, "HAS_RUAMEL", False):
        _yaml_file.require_ruamel(module)
    message = module.fail_json.call_args.kwargs["msg"]
    assert "ruamel.yaml" in message and "Failed to import" in message


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    "%s: &%s [%s]\n" % (chr(ord("a") + level), chr(ord("a") + level), ", ".join(["*" + chr(ord("a") + level - 1)] * 9))
    for level in range(1, 9))


@pytest.mark.parametrize("load", [load_plain, load_mapping])
def test_an_alias_bomb_is_refused_quickly(tmp_path, load):
    path = tmp_path / "homeserver.yaml"
    path.write_text(BOMB)
    started = time.monotonic()
    with pytest.raises(YamlFileError, match="expands to more than"):
        load(str(path))
    assert time.monotonic() - started < 5
