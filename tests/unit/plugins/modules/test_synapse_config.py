# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import shlex
import stat
import sys

import pytest
import yaml

from ansible_collections.switchboard.matrix.plugins.modules import synapse_config
from .utils import run_module

HOMESERVER = """\
# Configuration file for Synapse.
server_name: "example.org"
# Where clients reach us
public_baseurl: https://matrix.example.org/
database:
  name: sqlite3
  args:
    database: /data/homeserver.db   # local file
# Registration
enable_registration: false
registration_shared_secret: "old-shared-secret"
macaroon_secret_key: 'old-macaroon'
report_stats: false
"""


def run(args, check_mode=False, diff=False):
    """Run the module; return (result, failed)."""
    result = run_module(synapse_config.main, args, check_mode, diff)
    return result, bool(result.get("failed"))


@pytest.fixture
def hs(tmp_path):
    path = tmp_path / "homeserver.yaml"
    path.write_text(HOMESERVER)
    return path


def test_updates_scalar_in_place_keeping_quoting(hs):
    result, failed = run(dict(path=str(hs), settings={"server_name": "matrix.org", "report_stats": True}))
    assert not failed and result["changed"] is True
    expected = HOMESERVER.replace('server_name: "example.org"', 'server_name: "matrix.org"')
    expected = expected.replace("report_stats: false", "report_stats: true")
    assert hs.read_text() == expected
    assert result["changed_keys"] == ["server_name", "report_stats"]


def test_same_values_change_nothing(hs):
    settings = {"server_name": "example.org", "enable_registration": False,
                "database": {"name": "sqlite3", "args": {"database": "/data/homeserver.db"}}}
    mtime = os.stat(hs).st_mtime_ns
    result, failed = run(dict(path=str(hs), settings=settings))
    assert not failed and result["changed"] is False and result["changed_keys"] == []
    assert os.stat(hs).st_mtime_ns == mtime


def test_boolean_is_not_a_number(hs):
    result, failed = run(dict(path=str(hs), settings={"enable_registration": 0}))
    assert not failed and result["changed"] is True
    assert yaml.safe_load(hs.read_text())["enable_registration"] == 0


def test_nested_mapping_replaced_keeping_comments_of_what_stays(hs):
    database = {"name": "psycopg2", "args": {"database": "/data/homeserver.db", "user": "synapse", "password": "pw"}}
    result, failed = run(dict(path=str(hs), settings={"database": database}))
    assert not failed and result["changed"]
    text = hs.read_text()
    assert yaml.safe_load(text)["database"] == database
    assert "    database: /data/homeserver.db   # local file\n" in text
    assert "# Registration\nenable_registration: false\n" in text
    assert text.startswith("# Configuration file for Synapse.\nserver_name:")


def test_new_key_appended_at_the_end(hs):
    result, failed = run(dict(path=str(hs), settings={"max_upload_size": "50M", "experimental_features": {"msc3266_enabled": True}}))
    assert not failed and result["changed"]
    assert hs.read_text() == HOMESERVER + "max_upload_size: 50M\nexperimental_features:\n  msc3266_enabled: true\n"


def test_string_that_yaml_11_reads_as_bool_is_quoted(hs):
    run(dict(path=str(hs), settings={"some_flag": "yes"}))
    assert yaml.safe_load(hs.read_text())["some_flag"] == "yes"


def test_remove_keeps_comment_below(hs):
    result, failed = run(dict(path=str(hs), remove=["public_baseurl", "database", "not_there"]))
    assert not failed and result["changed"]
    assert result["changed_keys"] == ["public_baseurl", "database"]
    text = hs.read_text()
    assert "public_baseurl" not in text and "database" not in text
    assert "# Where clients reach us\n# Registration\nenable_registration: false\n" in text


def test_remove_missing_key_is_a_no_op(hs):
    result, failed = run(dict(path=str(hs), remove=["not_there"]))
    assert not failed and result["changed"] is False
    assert hs.read_text() == HOMESERVER


def test_key_in_settings_and_remove_fails(hs):
    result, failed = run(dict(path=str(hs), settings={"report_stats": True}, remove=["report_stats"]))
    assert failed and "report_stats" in result["msg"]
    assert hs.read_text() == HOMESERVER


def test_check_mode_writes_nothing(hs):
    result, failed = run(dict(path=str(hs), settings={"report_stats": True}), check_mode=True)
    assert not failed and result["changed"] is True
    assert hs.read_text() == HOMESERVER


def test_diff_masks_secrets(hs):
    settings = {
        "registration_shared_secret": "new-shared-secret",
        "database": {"name": "psycopg2", "args": {"user": "synapse", "password": "db-pw"}},
        "email": {"smtp_host": "mail", "smtp_pass": "mail-pw"},
        "report_stats": True,
    }
    result, failed = run(dict(path=str(hs), settings=settings), diff=True)
    assert not failed and result["changed"]
    diff = result["diff"]
    text = diff["before"] + diff["after"]
    for secret in ("old-shared-secret", "new-shared-secret", "old-macaroon", "db-pw", "mail-pw"):
        assert secret not in text
    assert 'registration_shared_secret: "******** (changed)"' in diff["after"]
    assert "macaroon_secret_key: '********'" in diff["after"]
    assert "macaroon_secret_key: '********'" in diff["before"]
    assert "report_stats: false" in diff["before"] and "report_stats: true" in diff["after"]
    # The file itself holds the real values.
    data = yaml.safe_load(hs.read_text())
    assert data["database"]["args"]["password"] == "db-pw"
    assert data["registration_shared_secret"] == "new-shared-secret"


def test_keeps_mode(hs):
    os.chmod(hs, 0o640)
    run(dict(path=str(hs), settings={"report_stats": True}))
    assert stat.S_IMODE(os.stat(hs).st_mode) == 0o640


@pytest.mark.parametrize("content, fragment", [
    (None, "does not exist"),
    ("- a\n", "must be a YAML mapping, got list"),
    ("text\n", "must be a YAML mapping, got string"),
    ("a: [b\n", "invalid YAML"),
])
def test_bad_homeserver_fails_unchanged(tmp_path, content, fragment):
    hs = tmp_path / "homeserver.yaml"
    if content is not None:
        hs.write_text(content)
    result, failed = run(dict(path=str(hs), settings={"report_stats": True}))
    assert failed
    assert str(hs) in result["msg"] and fragment in result["msg"]
    assert (hs.read_text() if content is not None else not hs.exists()) == (content if content is not None else True)


def test_expect_mismatch_fails_and_leaves_file_untouched(hs):
    before = hs.read_bytes()
    result, failed = run(dict(path=str(hs), settings={"enable_registration": True},
                              expect={"server_name": "other.example"}))
    assert failed
    assert "server_name" in result["msg"] and str(hs) in result["msg"] and "other.example" in result["msg"]
    assert hs.read_bytes() == before


def test_expect_match_lets_the_change_through(hs):
    result, failed = run(dict(path=str(hs), settings={"enable_registration": True},
                              expect={"server_name": "example.org"}))
    assert not failed and result["changed"] is True
    assert yaml.safe_load(hs.read_text())["enable_registration"] is True


def test_secret_settings_are_merged_and_never_shown(hs):
    result, failed = run(dict(path=str(hs), settings={"database": {"name": "psycopg2", "args": {"user": "synapse"}}},
                              secret_settings={"email": {"smtp_pass": "hunter2-smtp"}}), diff=True)
    assert not failed and result["changed"] is True
    assert yaml.safe_load(hs.read_text())["email"]["smtp_pass"] == "hunter2-smtp"
    assert "hunter2-smtp" not in str(result)


def test_secret_settings_complete_a_mapping_from_settings(hs):
    result, failed = run(dict(path=str(hs),
                              settings={"database": {"name": "psycopg2", "args": {"user": "synapse", "host": "postgres"}}},
                              secret_settings={"database": {"args": {"password": "pg-secret-123"}}}), diff=True)
    assert not failed
    database = yaml.safe_load(hs.read_text())["database"]
    assert database == {"name": "psycopg2", "args": {"user": "synapse", "host": "postgres", "password": "pg-secret-123"}}
    assert "pg-secret-123" not in str(result)


def test_diff_masks_secrets_it_does_not_list(hs):
    """An OIDC client_secret deep in a list, and a password in a connection string, are masked too."""
    hs.write_text(HOMESERVER + "oidc_providers:\n  - idp_id: sso\n    client_secret: old-oidc-secret\n"
                  "redis:\n  dsn: redis://:old-redis-pw@redis:6379\n")
    settings = {"oidc_providers": [{"idp_id": "sso", "client_secret": "new-oidc-secret"}], "report_stats": True}
    result, failed = run(dict(path=str(hs), settings=settings), diff=True)
    assert not failed and result["changed"]
    text = result["diff"]["before"] + result["diff"]["after"]
    for secret in ("old-oidc-secret", "new-oidc-secret", "old-redis-pw", "old-shared-secret", "old-macaroon"):
        assert secret not in text, secret
    assert "client_secret: '******** (changed)'" in result["diff"]["after"]


def test_expect_failure_on_a_secret_shows_no_value(hs):
    hs.write_text(HOMESERVER.replace("enable_registration: false", "database_password: current-db-pw"))
    result, failed = run(dict(path=str(hs), settings={}, expect={"database_password": "wanted-db-pw"}))
    assert failed and "database_password" in result["msg"]
    assert "current-db-pw" not in result["msg"] and "wanted-db-pw" not in result["msg"]


# validate and backup_path: a new file is checked before it replaces the old one, and the
# old text is kept for a roll-back.
CHECKER = (shlex.quote(sys.executable) + " -c \"import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); "
           "sys.exit('ValueError: bad size %r' % c['max_upload_size'] if c.get('max_upload_size') == 'lots' else 0)\" %s")


def test_validate_refuses_a_file_synapse_would_not_read_and_leaves_the_old_one(hs, tmp_path):
    backup = tmp_path / "previous" / "homeserver.yaml.previous"
    backup.parent.mkdir()
    result, failed = run(dict(path=str(hs), settings={"max_upload_size": "lots"}, validate=CHECKER,
                              backup_path=str(backup)))
    assert failed
    assert "not accepted by `validate`" in result["msg"] and "ValueError: bad size 'lots'" in result["msg"]
    assert str(hs) in result["msg"]
    assert hs.read_text() == HOMESERVER
    assert [name for name in os.listdir(hs.parent) if name.startswith(".homeserver.yaml")] == []


def test_validate_sees_the_whole_new_file_with_the_old_mode(hs, tmp_path):
    os.chmod(hs, 0o640)
    seen = tmp_path / "seen"
    command = f"sh -c 'stat -c %a \"$1\" > {seen} && cat \"$1\" >> {seen}' sh %s"
    result, failed = run(dict(path=str(hs), settings={"max_upload_size": "10M"}, validate=command))
    assert not failed and result["changed"] is True
    mode, text = seen.read_text().split("\n", 1)
    assert mode == "640" and text == hs.read_text() and "max_upload_size: 10M" in text


def test_backup_keeps_the_old_text_private_and_only_when_the_file_changes(hs, tmp_path):
    backup = tmp_path / "homeserver.yaml.previous"
    result, failed = run(dict(path=str(hs), settings={"report_stats": True}, backup_path=str(backup),
                              validate=CHECKER))
    assert not failed and result["backup_file"] == str(backup)
    assert backup.read_text() == HOMESERVER and stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    os.unlink(backup)
    result, failed = run(dict(path=str(hs), settings={"report_stats": True}, backup_path=str(backup)))
    assert not failed and not result["changed"] and "backup_file" not in result and not backup.exists()


def test_validate_needs_the_placeholder(hs):
    result, failed = run(dict(path=str(hs), settings={"report_stats": True}, validate="true"))
    assert failed and "validate must contain %s" in result["msg"]
    assert hs.read_text() == HOMESERVER


def test_check_mode_neither_validates_nor_backs_up(hs, tmp_path):
    backup = tmp_path / "homeserver.yaml.previous"
    result, failed = run(dict(path=str(hs), settings={"max_upload_size": "lots"}, validate=CHECKER,
                              backup_path=str(backup)), check_mode=True)
    assert not failed and result["changed"] is True and not backup.exists()


def _registration(path, appservice_id, token):
    path.write_text(yaml.safe_dump({
        "id": appservice_id, "url": None, "as_token": token, "hs_token": token + "-hs", "sender_localpart": appservice_id,
        "namespaces": {"users": [{"regex": "@%s_.*:example.org" % appservice_id, "exclusive": True}]}}))
    return str(path)


def test_appservices_are_listed_in_the_same_write_exactly_and_checked(tmp_path):
    hs = tmp_path / "homeserver.yaml"
    hs.write_text("server_name: example.org\napp_service_config_files:\n- /bridges/old/registration.yaml\n")
    (tmp_path / "bridges" / "a").mkdir(parents=True)
    first = _registration(tmp_path / "bridges" / "a" / "registration.yaml", "a", "token-a")
    args = dict(path=str(hs), settings={"report_stats": False},
                appservices={"registrations": [first], "path_map": {str(tmp_path / "bridges"): "/bridges"}})
    result = run_module(synapse_config.main, args)
    assert result["changed"] is True
    assert result["changed_keys"] == ["app_service_config_files", "report_stats"]
    data = yaml.safe_load(hs.read_text())
    assert data["app_service_config_files"] == ["/bridges/a/registration.yaml"] and data["report_stats"] is False
    assert run_module(synapse_config.main, args)["changed"] is False


def test_a_bad_registration_leaves_homeserver_yaml_untouched(tmp_path):
    hs = tmp_path / "homeserver.yaml"
    hs.write_text("server_name: example.org\n")
    bad = tmp_path / "registration.yaml"
    bad.write_text("id: a\n")
    args = dict(path=str(hs), settings={"report_stats": False}, appservices={"registrations": [str(bad)]})
    result = run_module(synapse_config.main, args)
    assert result["failed"] is True and str(bad) in result["msg"]
    assert hs.read_text() == "server_name: example.org\n"


def test_no_appservices_and_no_key_is_no_change(tmp_path):
    hs = tmp_path / "homeserver.yaml"
    hs.write_text("server_name: example.org\n")
    result = run_module(synapse_config.main, dict(path=str(hs), appservices={"registrations": []}))
    assert result["changed"] is False and hs.read_text() == "server_name: example.org\n"
