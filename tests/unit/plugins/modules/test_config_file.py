# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import stat

import yaml

from ansible_collections.switchboard.matrix.plugins.modules import config_file
from .utils import run_module

CONTENT = {"homeserver": {"address": "http://synapse:8008", "domain": "example.org"},
           "appservice": {"port": 29318, "id": "whatsapp"}}
SECRETS = {"appservice": {"as_token": "as-secret-token-1", "hs_token": "hs-secret-token-2"}}


def run(args, check_mode=False, diff=False):
    return run_module(config_file.main, args, check_mode, diff)


def test_writes_merged_data_then_is_idempotent(tmp_path):
    path = tmp_path / "config.yaml"
    args = dict(path=str(path), content=CONTENT, secret_content=SECRETS, mode="0600")
    first = run(args)
    assert first["changed"] is True
    data = yaml.safe_load(path.read_text())
    assert data["appservice"] == {"port": 29318, "id": "whatsapp", "as_token": "as-secret-token-1",
                                  "hs_token": "hs-secret-token-2"}
    assert path.read_text().startswith("# Managed by Ansible")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert run(args)["changed"] is False


def test_formatting_changes_alone_are_not_drift(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**CONTENT}, default_flow_style=True))
    assert run(dict(path=str(path), content=CONTENT))["changed"] is False


def test_hand_edit_is_repaired_and_diffed(tmp_path):
    path = tmp_path / "config.yaml"
    run(dict(path=str(path), content=CONTENT))
    path.write_text(path.read_text().replace("29318", "1234"))
    result = run(dict(path=str(path), content=CONTENT), diff=True)
    assert result["changed"] is True
    assert "1234" in result["diff"]["before"] and "29318" in result["diff"]["after"]
    assert yaml.safe_load(path.read_text())["appservice"]["port"] == 29318


def test_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "config.yaml"
    result = run(dict(path=str(path), content=CONTENT), check_mode=True)
    assert result["changed"] is True and not path.exists()


def test_mode_drift_is_repaired(tmp_path):
    path = tmp_path / "config.yaml"
    run(dict(path=str(path), content=CONTENT, mode="0600"))
    os.chmod(path, 0o644)
    assert run(dict(path=str(path), content=CONTENT, mode="0600"))["changed"] is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_invalid_existing_file_is_not_overwritten(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("key: [unclosed\n")
    result = run(dict(path=str(path), content=CONTENT))
    assert result["failed"] and str(path) in result["msg"] and "force" in result["msg"]
    assert path.read_text() == "key: [unclosed\n"


def test_missing_directory_is_named(tmp_path):
    path = tmp_path / "nope" / "config.yaml"
    result = run(dict(path=str(path), content=CONTENT))
    assert result["failed"] and str(tmp_path / "nope") in result["msg"]


def test_diff_never_shows_old_or_new_secrets(tmp_path):
    """The old values are not parameters (no_log cannot hide them): the diff masks every secret-like key."""
    path = tmp_path / "config.yaml"
    old_secrets = {"appservice": {"as_token": "old-as-token-1", "hs_token": "old-hs-token-2"},
                   "database": {"uri": "postgres://whatsapp:old-db-password@postgres/whatsapp"},
                   "provisioning": {"shared_secret": "old-provisioning-secret"},
                   "encryption": {"pickle_key": "old-pickle-key"}}
    run(dict(path=str(path), content=CONTENT, secret_content=old_secrets))
    new_secrets = {"appservice": {"as_token": "new-as-token-1", "hs_token": "old-hs-token-2"},
                   "database": {"uri": "postgres://whatsapp:new-db-password@postgres/whatsapp"},
                   "provisioning": {"shared_secret": "new-provisioning-secret"},
                   "encryption": {"pickle_key": "old-pickle-key"}}
    result = run(dict(path=str(path), content=dict(CONTENT, network={"port": 1}), secret_content=new_secrets), diff=True)
    text = result["diff"]["before"] + result["diff"]["after"]
    for secret in ("old-as-token-1", "old-hs-token-2", "old-db-password", "old-provisioning-secret", "old-pickle-key",
                   "new-as-token-1", "new-db-password", "new-provisioning-secret"):
        assert secret not in text, secret
    assert "as_token: '******** (changed)'" in result["diff"]["after"]
    assert "hs_token: '********'" in result["diff"]["after"]
    assert "postgres://whatsapp:******** (changed)@postgres/whatsapp" in result["diff"]["after"]
    assert "network" in result["diff"]["after"] and "network" not in result["diff"]["before"]
    assert yaml.safe_load(path.read_text())["provisioning"]["shared_secret"] == "new-provisioning-secret"
