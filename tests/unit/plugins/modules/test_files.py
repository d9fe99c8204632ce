# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import stat

import pytest
import yaml

from ansible_collections.switchboard.matrix.plugins.modules import files
from .utils import run_module


def run(args, check_mode=False, diff=False):
    return run_module(files.main, args, check_mode, diff)


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def layout(tmp_path):
    """A role's set: two directories, a text file, a secret file, a YAML file."""
    base = tmp_path / "base"
    return dict(
        look=[str(base / "data" / "homeserver.yaml")],
        directories=[{"path": str(base), "mode": "0755"}, {"path": str(base / "data"), "mode": "0750"}],
        files=[{"path": str(base / "data" / "log.config"), "content": "version: 1\n", "mode": "0640"},
               {"path": str(base / "password"), "secret_content": "s3cret-password", "mode": "0600"}],
        data_files=[{"path": str(base / "config.yaml"), "data": {"port": 29318, "appservice": {"id": "wa"}},
                     "secret_data": {"appservice": {"as_token": "secret-as-token"}}, "mode": "0640"}],
    )


def test_creates_everything_then_is_idempotent(tmp_path):
    args = layout(tmp_path)
    first = run(args)
    base = tmp_path / "base"
    assert first["changed"] is True
    assert first["changed_paths"] == [str(base), str(base / "data"), str(base / "data" / "log.config"),
                                      str(base / "password"), str(base / "config.yaml")]
    assert first["looked"] == {str(base / "data" / "homeserver.yaml"): {"exists": False}}
    assert mode_of(base) == 0o755 and mode_of(base / "data") == 0o750
    assert (base / "data" / "log.config").read_text() == "version: 1\n"
    assert mode_of(base / "data" / "log.config") == 0o640
    assert (base / "password").read_text() == "s3cret-password" and mode_of(base / "password") == 0o600
    assert yaml.safe_load((base / "config.yaml").read_text()) == {
        "port": 29318, "appservice": {"id": "wa", "as_token": "secret-as-token"}}
    second = run(args)
    assert second["changed"] is False and second["changed_paths"] == []


def test_check_mode_changes_nothing_and_predicts_every_path(tmp_path):
    result = run(layout(tmp_path), check_mode=True)
    assert result["changed"] is True and len(result["changed_paths"]) == 5
    assert not (tmp_path / "base").exists()


def test_drift_is_repaired_and_only_the_drifted_paths_reported(tmp_path):
    args = layout(tmp_path)
    run(args)
    base = tmp_path / "base"
    os.chmod(base / "data", 0o777)
    (base / "data" / "log.config").write_text("version: 2\n")
    result = run(args, diff=True)
    assert result["changed_paths"] == [str(base / "data"), str(base / "data" / "log.config")]
    assert mode_of(base / "data") == 0o750
    assert (base / "data" / "log.config").read_text() == "version: 1\n"
    texts = [d for d in result["diff"] if isinstance(d.get("before"), str)]
    assert texts == [{"before": "version: 2\n", "after": "version: 1\n",
                      "before_header": str(base / "data" / "log.config"),
                      "after_header": str(base / "data" / "log.config")}]


def test_secrets_never_show_in_diffs(tmp_path):
    args = layout(tmp_path)
    result = run(args, diff=True)
    shown = repr(result["diff"])
    assert "s3cret-password" not in shown and "secret-as-token" not in shown
    (tmp_path / "base" / "password").write_text("old-password-value")
    again = run(args, diff=True)
    assert "old-password-value" not in repr(again["diff"]) and "s3cret-password" not in repr(again["diff"])


def test_looked_reports_what_was_there_before_the_changes(tmp_path):
    target = tmp_path / "kept"
    target.write_text("x")
    os.chmod(target, 0o600)
    link = tmp_path / "link"
    link.symlink_to(target)
    result = run(dict(look=[str(target), str(link), str(tmp_path)]))
    looked = result["looked"]
    assert looked[str(target)]["type"] == "file" and looked[str(target)]["mode"] == "0600"
    assert looked[str(target)]["uid"] == os.getuid()
    assert looked[str(link)]["type"] == "link" and looked[str(tmp_path)]["type"] == "directory"


@pytest.mark.parametrize("group", ["directories", "files", "data_files", "attributes"])
def test_a_link_is_refused_never_followed(tmp_path, group):
    victim = tmp_path / "victim"
    victim.mkdir() if group == "directories" else victim.write_text("precious: true\n")
    os.chmod(victim, 0o700)
    link = tmp_path / "planted"
    link.symlink_to(victim)
    entry = {"path": str(link), "mode": "0777"}
    if group == "files":
        entry["content"] = "overwritten\n"
    if group == "data_files":
        entry["data"] = {"overwritten": True}
    result = run({group: [entry]})
    assert result["failed"] is True
    assert result["msg"].startswith(str(link)) and "link" in result["msg"]
    assert mode_of(victim) == 0o700 and os.path.islink(link)
    if group != "directories":
        assert victim.read_text() == "precious: true\n"


def test_a_file_where_a_directory_belongs_is_named(tmp_path):
    (tmp_path / "data").write_text("")
    result = run(dict(directories=[{"path": str(tmp_path / "data")}]))
    assert result["failed"] is True and result["msg"] == "%s: is not a directory; expected a directory " \
        "(move it away, the next run creates it)" % (tmp_path / "data")


def test_a_failing_entry_names_its_path_and_keeps_the_earlier_ones(tmp_path):
    good = tmp_path / "good"
    result = run(dict(directories=[{"path": str(good)}],
                      files=[{"path": str(tmp_path / "missing" / "deeper" / "file"), "content": "x"}]))
    assert result["failed"] is True
    assert str(tmp_path / "missing" / "deeper" / "file") in result["msg"]
    assert good.is_dir() and result["changed_paths"] == [str(good)]


def test_invalid_yaml_is_not_overwritten_unless_forced(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("key: [unclosed\n")
    entry = {"path": str(path), "data": {"key": 1}}
    refused = run(dict(data_files=[entry]))
    assert refused["failed"] is True and "force: true" in refused["msg"]
    assert path.read_text() == "key: [unclosed\n"
    assert run(dict(data_files=[dict(entry, force=True)]))["changed"] is True
    assert yaml.safe_load(path.read_text()) == {"key": 1}


def test_yaml_formatting_alone_is_not_drift(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("{a: 1, b: {c: 2}}\n")
    assert run(dict(data_files=[{"path": str(path), "data": {"a": 1, "b": {"c": 2}}}]))["changed"] is False


def test_attributes_leave_a_missing_file_missing(tmp_path):
    present = tmp_path / "signing.key"
    present.write_text("key")
    os.chmod(present, 0o644)
    result = run(dict(attributes=[{"path": str(tmp_path / "absent"), "mode": "0600"},
                                  {"path": str(present), "mode": "0600"}]))
    assert result["changed_paths"] == [str(present)] and mode_of(present) == 0o600
    assert not (tmp_path / "absent").exists()


def test_content_and_secret_content_together_are_refused(tmp_path):
    result = run(dict(files=[{"path": str(tmp_path / "f"), "content": "a", "secret_content": "b"}]))
    assert result["failed"] is True and "either content or secret_content" in result["msg"]


def test_relative_paths_are_refused(tmp_path):
    result = run(dict(directories=[{"path": "relative/dir"}]))
    assert result["failed"] is True and "absolute" in result["msg"]


def test_a_directory_of_another_owner_stops_everything_when_asked(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    other_owner = os.getuid() + 1
    args = dict(look=[str(base)],
                directories=[{"path": str(base), "owner": str(other_owner), "stop_if_owned_by_another": True},
                             {"path": str(base / "data")}],
                files=[{"path": str(base / "config"), "content": "x"}])
    result = run(args)
    assert result["changed"] is False and result["stopped_at"] == str(base)
    assert result["looked"][str(base)]["uid"] == os.getuid()
    assert list(base.iterdir()) == []
    args["directories"][0]["owner"] = str(os.getuid())
    done = run(args)
    assert done["stopped_at"] is None and (base / "data").is_dir() and (base / "config").read_text() == "x"


def test_read_returns_the_text_of_existing_files_never_through_a_link(tmp_path):
    token = tmp_path / "token"
    token.write_text("syt_secret\n")
    result = run(dict(read=[str(token), str(tmp_path / "absent")]))
    assert result["read"] == {str(token): "syt_secret\n"}
    link = tmp_path / "link"
    link.symlink_to(token)
    refused = run(dict(read=[str(link)]))
    assert refused["failed"] is True and refused["msg"].startswith(str(link)) and "link" in refused["msg"]


def test_absent_removes_files_and_links_never_their_targets_nor_directories(tmp_path):
    record = tmp_path / "record.json"
    record.write_text("{}")
    target = tmp_path / "target"
    target.write_text("kept")
    link = tmp_path / "link"
    link.symlink_to(target)
    check = run(dict(absent=[str(record), str(link), str(tmp_path / "missing")]), check_mode=True)
    assert check["changed_paths"] == [str(record), str(link)] and record.exists()
    done = run(dict(absent=[str(record), str(link), str(tmp_path / "missing")]))
    assert done["changed_paths"] == [str(record), str(link)]
    assert not record.exists() and not os.path.lexists(link) and target.read_text() == "kept"
    refused = run(dict(absent=[str(tmp_path)]))
    assert refused["failed"] is True and "is a directory" in refused["msg"] and tmp_path.is_dir()


def test_validate_checks_the_new_file_and_a_refusal_leaves_the_old_one(tmp_path):
    path = tmp_path / "Caddyfile"
    path.write_text("old\n")
    refused = run(dict(files=[{"path": str(path), "content": "bad\n", "validate": "grep -q good %s"}]))
    assert refused["failed"] is True and refused["msg"].startswith(str(path))
    assert "not accepted by `validate`" in refused["msg"] and path.read_text() == "old\n"
    accepted = run(dict(files=[{"path": str(path), "content": "good\n", "validate": "grep -q good %s"}]))
    assert accepted["changed"] is True and path.read_text() == "good\n"
    missing = run(dict(files=[{"path": str(path), "content": "x\n", "validate": "true"}]))
    assert missing["failed"] is True and "must contain %s" in missing["msg"]
