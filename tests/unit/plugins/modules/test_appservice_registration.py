# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
import re
import stat

import pytest
import yaml

from ansible_collections.switchboard.matrix.plugins.module_utils._appservice import check_registration
from ansible_collections.switchboard.matrix.plugins.modules import appservice_registration
from .utils import run_module

NAMESPACES = {
    "users": [{"regex": "@telegram_.*:example\\.org", "exclusive": True}],
    "aliases": [{"regex": "#telegram_.*:example\\.org", "exclusive": True}],
}


def run(args, check_mode=False, diff=False):
    """Run the module; return (result, failed)."""
    result = run_module(appservice_registration.main, args, check_mode, diff)
    return result, bool(result.get("failed"))


@pytest.fixture
def path(tmp_path):
    return tmp_path / "registration.yaml"


def args_for(path, **changes):
    args = dict(path=str(path), id="telegram", url="http://telegram:29317",
                sender_localpart="telegrambot", namespaces=NAMESPACES)
    args.update(changes)
    return args


def read(path):
    return yaml.safe_load(path.read_text())


def test_creates_valid_registration_with_generated_tokens(path):
    result, failed = run(args_for(path, protocols=["telegram"], extra={"receive_ephemeral": True}))
    assert not failed, result
    assert result["changed"] is True
    data = read(path)
    check_registration(data, str(path))
    assert list(data) == ["id", "url", "as_token", "hs_token", "sender_localpart", "rate_limited",
                          "namespaces", "protocols", "receive_ephemeral"]
    assert data["rate_limited"] is False and data["protocols"] == ["telegram"]
    for key in ("as_token", "hs_token"):
        assert re.fullmatch(r"[0-9a-f]{64}", data[key])
    assert data["as_token"] != data["hs_token"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_result_never_holds_tokens(path):
    result, failed = run(args_for(path, as_token="given-as", hs_token="given-hs"), diff=True)
    assert not failed
    assert set(result) >= {"id", "sender_localpart", "path", "changed"}
    assert "as_token" not in result and "hs_token" not in result
    dumped = json.dumps(result)
    assert "given-as" not in dumped and "given-hs" not in dumped


def test_generated_tokens_are_kept_on_later_runs(path):
    run(args_for(path))
    first = read(path)
    mtime = os.stat(path).st_mtime_ns
    result, failed = run(args_for(path))
    assert not failed and result["changed"] is False
    assert read(path) == first
    assert os.stat(path).st_mtime_ns == mtime


def test_tokens_differ_between_files(tmp_path):
    run(args_for(tmp_path / "a.yaml"))
    run(args_for(tmp_path / "b.yaml"))
    assert read(tmp_path / "a.yaml")["as_token"] != read(tmp_path / "b.yaml")["as_token"]


def test_given_tokens_are_used_and_then_kept(path):
    result, failed = run(args_for(path, as_token="as-secret", hs_token="hs-secret"))
    assert not failed and result["changed"]
    assert (read(path)["as_token"], read(path)["hs_token"]) == ("as-secret", "hs-secret")
    result, failed = run(args_for(path))
    assert not failed and result["changed"] is False
    assert read(path)["as_token"] == "as-secret"


def test_new_token_replaces_old_one(path):
    run(args_for(path))
    old = read(path)
    result, failed = run(args_for(path, as_token="rotated"))
    assert not failed and result["changed"] is True
    assert read(path)["as_token"] == "rotated"
    assert read(path)["hs_token"] == old["hs_token"]


def test_diff_masks_tokens(path):
    run(args_for(path))
    tokens = read(path)
    result, failed = run(args_for(path, url="http://other:1", as_token="rotated"), diff=True)
    assert not failed and result["changed"]
    diff = result["diff"]
    text = diff["before"] + diff["after"]
    for secret in (tokens["as_token"], tokens["hs_token"], "rotated"):
        assert secret not in text
    assert "as_token: '******** (changed)'" in diff["after"]
    assert "hs_token: '********'" in diff["after"]
    assert "url: http://other:1" in diff["after"] and "url: http://telegram:29317" in diff["before"]
    assert diff["before_header"] == str(path)


def test_changing_a_field_keeps_tokens(path):
    run(args_for(path))
    old = read(path)
    result, failed = run(args_for(path, rate_limited=True))
    assert not failed and result["changed"]
    new = read(path)
    assert new["rate_limited"] is True
    assert (new["as_token"], new["hs_token"]) == (old["as_token"], old["hs_token"])


def test_null_url(path):
    result, failed = run(args_for(path, url=None))
    assert not failed, result
    data = read(path)
    assert "url" in data and data["url"] is None


def test_keeps_comments_and_drops_unknown_keys(path):
    run(args_for(path, as_token="a", hs_token="h"))
    path.write_text("# written by the bridge\n" + path.read_text() + "stale_key: 1\n")
    result, failed = run(args_for(path))
    assert not failed and result["changed"]
    assert path.read_text().startswith("# written by the bridge\n")
    assert "stale_key" not in read(path)


def test_check_mode_does_not_create(path):
    result, failed = run(args_for(path), check_mode=True)
    assert not failed and result["changed"] is True
    assert not path.exists()
    assert os.listdir(path.parent) == []


def test_check_mode_does_not_modify(path):
    run(args_for(path))
    before = path.read_bytes()
    result, failed = run(args_for(path, url="http://changed"), check_mode=True)
    assert not failed and result["changed"] is True
    assert path.read_bytes() == before


def test_mode_option_and_default(path):
    run(args_for(path, mode="0640"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    result, failed = run(args_for(path))  # content same, mode back to the default
    assert not failed and result["changed"] is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_existing_non_string_token_is_replaced(path):
    run(args_for(path))
    data = read(path)
    data["as_token"] = 12345
    path.write_text(yaml.safe_dump(data))
    result, failed = run(args_for(path))
    assert not failed and result["changed"]
    assert re.fullmatch(r"[0-9a-f]{64}", read(path)["as_token"])


@pytest.mark.parametrize("content, fragment", [
    ("- a list\n", "must be a YAML mapping, got list"),
    ("", "must be a YAML mapping, got null"),
    ("id: [broken\n", "invalid YAML"),
])
def test_existing_file_that_is_not_a_mapping_is_left_alone(path, content, fragment):
    path.write_text(content)
    result, failed = run(args_for(path))
    assert failed
    assert str(path) in result["msg"] and fragment in result["msg"]
    assert path.read_text() == content


def test_directory_in_the_way(path):
    path.mkdir()
    result, failed = run(args_for(path))
    assert failed and str(path) in result["msg"]


@pytest.mark.parametrize("changes, fragment", [
    ({"id": "tele|gram"}, "'id' must not contain '|'"),
    ({"sender_localpart": "bad bot"}, "'sender_localpart'"),
    ({"url": 42}, "'url' must be a string or null, got int"),
    ({"namespaces": {"users": [{"regex": "(", "exclusive": True}]}}, "'namespaces.users[0].regex' is not a valid"),
    ({"namespaces": {"users": [{"regex": "x", "exclusive": "yes"}]}}, "'namespaces.users[0].exclusive' must be a bool"),
    ({"namespaces": {"rooms": "x"}}, "'namespaces.rooms' must be a list"),
    ({"extra": {"id": "other"}}, "extra: key 'id'"),
    ({"extra": {"org.matrix.msc3202": "yes"}}, "'org.matrix.msc3202' must be a bool"),
])
def test_invalid_registration_is_not_written(path, changes, fragment):
    result, failed = run(args_for(path, **changes))
    assert failed, result
    assert fragment in result["msg"]
    assert not path.exists()
