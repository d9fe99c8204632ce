# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import stat

import pytest
import yaml

from ansible_collections.switchboard.matrix.plugins.modules import synapse_appservices
from .utils import run_module

HOMESERVER = """\
# Configuration file for Synapse.
server_name: "example.org"
pid_file: /data/homeserver.pid
listeners:
  - port: 8008
    tls: false
    resources:
      - names: [client, federation]
        compress: false
# Database
database:
  name: psycopg2
  args:
    user: 'synapse'   # role-managed
enable_registration: no
report_stats: false
"""


def run(args, check_mode=False, diff=False):
    """Run the module; return (result, failed)."""
    result = run_module(synapse_appservices.main, args, check_mode, diff)
    return result, bool(result.get("failed"))


def registration(name, **changes):
    data = {
        "id": name,
        "url": "http://%s:29317" % name,
        "as_token": "as-%s" % name,
        "hs_token": "hs-%s" % name,
        "sender_localpart": "%sbot" % name,
        "rate_limited": False,
        "namespaces": {"users": [{"regex": "@%s_.*:example\\.org" % name, "exclusive": True}]},
    }
    for key, value in changes.items():
        if value is DELETE:
            del data[key]
        else:
            data[key] = value
    return data


DELETE = object()


class Setup:
    """A host with Synapse's data dir and bridge dirs, mapped as in a container deployment."""

    def __init__(self, root):
        self.root = root
        self.hs = root / "synapse" / "data" / "homeserver.yaml"
        self.hs.parent.mkdir(parents=True)
        self.hs.write_text(HOMESERVER)
        self.path_map = {str(root / "synapse" / "data"): "/data", str(root / "bridges"): "/bridges"}

    def reg_path(self, name):
        return self.root / "bridges" / name / "registration.yaml"

    def write_reg(self, name, data=None, text=None):
        path = self.reg_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text is not None else yaml.safe_dump(data if data is not None else registration(name)))
        return str(path)

    def list_existing(self, entries):
        """Give homeserver.yaml an app_service_config_files list (container paths)."""
        self.hs.write_text(HOMESERVER + "app_service_config_files:\n" + "".join("  - %s\n" % e for e in entries))

    def args(self, *names, **extra):
        args = dict(path=str(self.hs), registrations=[str(self.reg_path(n)) for n in names], path_map=self.path_map)
        args.update(extra)
        return args


@pytest.fixture
def host(tmp_path):
    return Setup(tmp_path)


# --- every way a run must fail: (setup, expected fragments of the message) ---------------
# Each setup returns the module arguments; fragments use {hs} and {reg} placeholders.

def _hs_text(text):
    def setup(h):
        h.write_reg("telegram")
        h.hs.write_text(text)
        return h.args("telegram")
    return setup


def _reg(**changes):
    def setup(h):
        h.write_reg("telegram", registration("telegram", **changes))
        return h.args("telegram")
    return setup


def _reg_text(text):
    def setup(h):
        h.write_reg("telegram", text=text)
        return h.args("telegram")
    return setup


def _missing_hs(h):
    h.write_reg("telegram")
    h.hs.unlink()
    return h.args("telegram")


def _missing_reg(h):
    return h.args("telegram")


def _duplicate_new(key):
    def setup(h):
        h.write_reg("telegram")
        h.write_reg("whatsapp", registration("whatsapp", **{key: registration("telegram")[key]}))
        return h.args("telegram", "whatsapp")
    return setup


def _duplicate_listed(h):
    h.write_reg("whatsapp")
    h.list_existing(["/bridges/whatsapp/registration.yaml"])
    h.write_reg("telegram", registration("telegram", id="whatsapp"))
    return h.args("telegram")


def _listed_missing(h):
    h.write_reg("telegram")
    h.list_existing(["/bridges/gone/registration.yaml"])
    return h.args("telegram")


def _listed_invalid(h):
    h.write_reg("telegram")
    h.write_reg("old", registration("old", hs_token=DELETE))
    h.list_existing(["/bridges/old/registration.yaml"])
    return h.args("telegram")


def _listed_unmappable(h):
    h.write_reg("telegram")
    h.list_existing(["/elsewhere/old.yaml"])
    return h.args("telegram")


def _outside_path_map(h):
    path = h.root / "bridges2" / "registration.yaml"  # /bridges must not match /bridges2
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(registration("telegram")))
    return dict(h.args(), registrations=[str(path)])


def _relative_path_map(h):
    h.write_reg("telegram")
    return dict(h.args("telegram"), path_map={str(h.root / "bridges"): "bridges"})


BAD = {
    "homeserver missing": (_missing_hs, ["{hs}", "does not exist"]),
    "homeserver invalid YAML": (_hs_text("server_name: [unclosed\n"), ["{hs}", "invalid YAML"]),
    "homeserver a list": (_hs_text("- a\n- b\n"), ["{hs}", "must be a YAML mapping, got list"]),
    "homeserver a scalar": (_hs_text("just text\n"), ["{hs}", "must be a YAML mapping, got string"]),
    "homeserver empty": (_hs_text(""), ["{hs}", "must be a YAML mapping, got null"]),
    "list is a string": (_hs_text(HOMESERVER + "app_service_config_files: /data/a.yaml\n"),
                         ["{hs}", "'app_service_config_files'", "got string"]),
    "list is a mapping": (_hs_text(HOMESERVER + "app_service_config_files:\n  a: b\n"),
                          ["{hs}", "'app_service_config_files'", "got mapping"]),
    "list holds a number": (_hs_text(HOMESERVER + "app_service_config_files:\n  - /bridges/telegram/registration.yaml\n  - 5\n"),
                            ["{hs}", "'app_service_config_files[1]'", "must be a string, got int"]),
    "registration missing": (_missing_reg, ["{reg}", "does not exist"]),
    "registration invalid YAML": (_reg_text("id: [telegram\n"), ["{reg}", "invalid YAML"]),
    "registration a list": (_reg_text("- id\n"), ["{reg}", "must be a YAML mapping, got list"]),
    "registration empty": (_reg_text(""), ["{reg}", "must be a YAML mapping, got null"]),
    "id missing": (_reg(id=DELETE), ["{reg}", "'id' is missing"]),
    "as_token missing": (_reg(as_token=DELETE), ["{reg}", "'as_token' is missing"]),
    "hs_token missing": (_reg(hs_token=DELETE), ["{reg}", "'hs_token' is missing"]),
    "sender_localpart missing": (_reg(sender_localpart=DELETE), ["{reg}", "'sender_localpart' is missing"]),
    "id not a string": (_reg(id=7), ["{reg}", "'id' must be a string, got int"]),
    "as_token not a string": (_reg(as_token=12345), ["{reg}", "'as_token' must be a string, got int"]),
    "hs_token not a string": (_reg(hs_token=["x"]), ["{reg}", "'hs_token' must be a string, got list"]),
    "sender_localpart not a string": (_reg(sender_localpart=None), ["{reg}", "'sender_localpart' must be a string, got null"]),
    "sender_localpart needs URL encoding": (_reg(sender_localpart="tele bot"), ["{reg}", "'sender_localpart'", "URL encoding"]),
    "url missing": (_reg(url=DELETE), ["{reg}", "'url' is missing"]),
    "url a number": (_reg(url=8080), ["{reg}", "'url' must be a string or null, got int"]),
    "namespaces missing": (_reg(namespaces=DELETE), ["{reg}", "'namespaces' is missing"]),
    "namespaces a list": (_reg(namespaces=[]), ["{reg}", "'namespaces' must be a mapping, got list"]),
    "users not a list": (_reg(namespaces={"users": {"regex": "x", "exclusive": True}}),
                         ["{reg}", "'namespaces.users' must be a list, got mapping"]),
    "aliases entry not a mapping": (_reg(namespaces={"aliases": ["#x_.*"]}), ["{reg}", "'namespaces.aliases[0]' must be a mapping"]),
    "regex missing": (_reg(namespaces={"users": [{"exclusive": True}]}), ["{reg}", "'namespaces.users[0].regex' is missing"]),
    "regex not a string": (_reg(namespaces={"rooms": [{"regex": 5, "exclusive": True}]}),
                           ["{reg}", "'namespaces.rooms[0].regex' must be a string, got int"]),
    "regex invalid": (_reg(namespaces={"users": [{"regex": "@x_(.*", "exclusive": True}]}),
                      ["{reg}", "'namespaces.users[0].regex' is not a valid regular expression"]),
    "exclusive missing": (_reg(namespaces={"users": [{"regex": "@x_.*"}]}), ["{reg}", "'namespaces.users[0].exclusive' is missing"]),
    "exclusive not a bool": (_reg(namespaces={"users": [{"regex": "@x_.*", "exclusive": "true"}]}),
                             ["{reg}", "'namespaces.users[0].exclusive' must be a bool, got string"]),
    "id with a pipe": (_reg(id="tele|gram"), ["{reg}", "'id' must not contain '|'"]),
    "rate_limited not a bool": (_reg(rate_limited="no"), ["{reg}", "'rate_limited' must be a bool, got string"]),
    "msc3202 flag not a bool": (_reg(**{"org.matrix.msc3202": 1}), ["{reg}", "'org.matrix.msc3202' must be a bool"]),
    "protocols not a list": (_reg(protocols="telegram"), ["{reg}", "'protocols' must be a list of strings, got string"]),
    "protocols not strings": (_reg(protocols=["telegram", 3]), ["{reg}", "'protocols[1]' must be a string, got int"]),
    "duplicate id among new files": (_duplicate_new("id"), ["{whatsapp}", "'id' 'telegram' is already used by {reg}"]),
    "duplicate as_token among new files": (_duplicate_new("as_token"), ["{whatsapp}", "'as_token' is already used by {reg}"]),
    "duplicate id with a listed file": (_duplicate_listed, ["{reg}", "'id' 'whatsapp' is already used by {whatsapp}"]),
    "listed file missing": (_listed_missing, ["{gone}", "does not exist", "{hs}", "'app_service_config_files'",
                                              "Synapse would fail to start"]),
    "listed file invalid": (_listed_invalid, ["{old}", "'hs_token' is missing", "{hs}", "'app_service_config_files'"]),
    "listed file outside path_map": (_listed_unmappable, ["/elsewhere/old.yaml", "outside every container path", "{hs}",
                                                          "'app_service_config_files'"]),
    "registration outside path_map": (_outside_path_map, ["bridges2/registration.yaml", "outside every host path in path_map"]),
    "path_map not absolute": (_relative_path_map, ["path_map", "absolute"]),
}


@pytest.mark.parametrize("setup, fragments", list(BAD.values()), ids=list(BAD))
def test_bad_input_fails_and_leaves_homeserver_alone(host, setup, fragments):
    args = setup(host)
    before = host.hs.read_bytes() if host.hs.exists() else None

    result, failed = run(args)

    assert failed, result
    names = {"hs": host.hs, "reg": host.reg_path("telegram"), "whatsapp": host.reg_path("whatsapp"),
             "gone": host.reg_path("gone"), "old": host.reg_path("old")}
    for fragment in fragments:
        assert fragment.format(**names) in result["msg"]
    assert (host.hs.read_bytes() if host.hs.exists() else None) == before
    assert sorted(os.listdir(host.hs.parent)) == (["homeserver.yaml"] if before is not None else [])


def test_at_least_thirty_bad_inputs():
    assert len(BAD) >= 30


# --- good paths ----------------------------------------------------------------------------

def test_adds_registration_with_container_path(host):
    host.write_reg("telegram")
    result, failed = run(host.args("telegram"))
    assert not failed, result
    assert result["changed"] is True
    assert result["app_service_config_files"] == ["/bridges/telegram/registration.yaml"]
    assert host.hs.read_text() == HOMESERVER + "app_service_config_files:\n  - /bridges/telegram/registration.yaml\n"


def test_second_run_is_a_no_op(host):
    host.write_reg("telegram")
    run(host.args("telegram"))
    before = os.stat(host.hs)
    result, failed = run(host.args("telegram"))
    assert not failed and result["changed"] is False
    after = os.stat(host.hs)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_appends_after_existing_entries_and_keeps_them(host):
    host.write_reg("telegram")
    host.write_reg("whatsapp")
    host.list_existing(["/bridges/whatsapp/registration.yaml"])
    result, failed = run(host.args("telegram"))
    assert not failed, result
    assert result["app_service_config_files"] == ["/bridges/whatsapp/registration.yaml", "/bridges/telegram/registration.yaml"]


def test_absent_removes_entry_without_needing_the_file(host):
    host.write_reg("whatsapp")
    host.list_existing(["/bridges/telegram/registration.yaml", "/bridges/whatsapp/registration.yaml"])
    result, failed = run(host.args("telegram", state="absent"))
    assert not failed, result
    assert result["changed"] is True
    assert result["app_service_config_files"] == ["/bridges/whatsapp/registration.yaml"]
    assert host.hs.read_text() == HOMESERVER + "app_service_config_files:\n  - /bridges/whatsapp/registration.yaml\n"


def test_absent_without_the_key_changes_nothing(host):
    result, failed = run(host.args("telegram", state="absent"))
    assert not failed and result["changed"] is False
    assert result["app_service_config_files"] == []
    assert host.hs.read_text() == HOMESERVER


def test_exclusive_makes_list_exactly_the_registrations(host):
    for name in ("telegram", "whatsapp", "discord"):
        host.write_reg(name)
    host.list_existing(["/bridges/discord/registration.yaml", "/bridges/whatsapp/registration.yaml"])
    result, failed = run(host.args("telegram", "whatsapp", exclusive=True))
    assert not failed, result
    assert result["app_service_config_files"] == ["/bridges/whatsapp/registration.yaml", "/bridges/telegram/registration.yaml"]
    assert yaml.safe_load(host.hs.read_text())["app_service_config_files"] == result["app_service_config_files"]


def test_exclusive_with_no_registrations_empties_the_list(host):
    host.list_existing(["/bridges/gone/registration.yaml"])
    result, failed = run(host.args(exclusive=True))
    assert not failed, result
    assert result["app_service_config_files"] == []
    assert yaml.safe_load(host.hs.read_text())["app_service_config_files"] == []


def test_null_list_is_replaced(host):
    host.write_reg("telegram")
    host.hs.write_text(HOMESERVER + "app_service_config_files:\n")
    result, failed = run(host.args("telegram"))
    assert not failed, result
    assert host.hs.read_text() == HOMESERVER + "app_service_config_files:\n  - /bridges/telegram/registration.yaml\n"


def test_everything_but_the_list_is_kept_byte_for_byte(host):
    head = (
        "# Top comment\n"
        "server_name:   \"example.org\"   # spacing kept\n"
        "public_baseurl: 'https://matrix.example.org/'\n"
        "email: null\n"
        "enable_registration: yes\n"
        "listeners: [ {port: 8008, type: http} ]\n"
        "# the bridges\n"
        "app_service_config_files:\n"
        "  - /bridges/whatsapp/registration.yaml   # whatsapp\n"
    )
    tail = (
        "# Stats\n"
        "report_stats: false\n"
        "trusted_key_servers:\n"
        "  - server_name: \"matrix.org\"\n"
        "\n"
        "# vim:ft=yaml\n"
    )
    host.write_reg("telegram")
    host.write_reg("whatsapp")
    host.hs.write_text(head + tail)
    result, failed = run(host.args("telegram"))
    assert not failed, result
    assert host.hs.read_text() == head + "  - /bridges/telegram/registration.yaml\n" + tail


def test_new_key_goes_above_trailing_comments(host):
    host.write_reg("telegram")
    host.hs.write_text(HOMESERVER + "\n\n# vim:ft=yaml\n")
    result, failed = run(host.args("telegram"))
    assert not failed, result
    assert host.hs.read_text() == (
        HOMESERVER + "app_service_config_files:\n  - /bridges/telegram/registration.yaml\n\n\n# vim:ft=yaml\n"
    )


def test_keeps_mode_and_owner(host):
    host.write_reg("telegram")
    os.chmod(host.hs, 0o640)
    before = os.stat(host.hs)
    result, failed = run(host.args("telegram"))
    assert not failed and result["changed"]
    after = os.stat(host.hs)
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino  # replaced, not rewritten in place


def test_check_mode_reports_change_but_writes_nothing(host):
    host.write_reg("telegram")
    result, failed = run(host.args("telegram"), check_mode=True)
    assert not failed and result["changed"] is True
    assert result["app_service_config_files"] == ["/bridges/telegram/registration.yaml"]
    assert host.hs.read_text() == HOMESERVER
    assert os.listdir(host.hs.parent) == ["homeserver.yaml"]


def test_check_mode_lists_a_registration_an_earlier_task_would_write(host):
    """In check mode the bridge's registration task wrote nothing: the listing is still predicted."""
    result, failed = run(host.args("telegram"), check_mode=True)
    assert not failed, result
    assert result["changed"] is True and result["app_service_config_files"] == ["/bridges/telegram/registration.yaml"]
    assert host.hs.read_text() == HOMESERVER
    # For real, the missing file is refused: Synapse would not start.
    result, failed = run(host.args("telegram"))
    assert failed and "does not exist" in result["msg"] and host.hs.read_text() == HOMESERVER


def test_diff_mode_shows_file_before_and_after(host):
    host.write_reg("telegram")
    result, failed = run(host.args("telegram"), diff=True, check_mode=True)
    assert not failed
    diff = result["diff"]
    assert diff["before"] == HOMESERVER
    assert diff["after"] == HOMESERVER + "app_service_config_files:\n  - /bridges/telegram/registration.yaml\n"
    assert diff["before_header"] == diff["after_header"] == str(host.hs)


def test_no_diff_without_change(host):
    host.write_reg("telegram")
    run(host.args("telegram"))
    result, failed = run(host.args("telegram"), diff=True)
    assert not failed and "diff" not in result


def test_longest_prefix_wins(host):
    host.write_reg("telegram")
    args = host.args("telegram")
    args["path_map"] = {str(host.root / "bridges"): "/bridges", str(host.root / "bridges" / "telegram"): "/tg"}
    result, failed = run(args)
    assert not failed, result
    assert result["app_service_config_files"] == ["/tg/registration.yaml"]


def test_listed_entries_are_read_through_reverse_path_map(host):
    host.write_reg("telegram")
    host.write_reg("whatsapp", registration("whatsapp", as_token="as-telegram"))
    host.list_existing(["/bridges/whatsapp/registration.yaml"])
    result, failed = run(host.args("telegram"))
    assert failed  # found the listed file on the host, so saw the shared as_token
    assert str(host.reg_path("whatsapp")) in result["msg"]
    assert "as-telegram" not in result["msg"]  # tokens are never printed


def test_without_path_map_host_paths_are_listed(host):
    reg = host.write_reg("telegram")
    result, failed = run(dict(path=str(host.hs), registrations=[reg]))
    assert not failed, result
    assert result["app_service_config_files"] == [reg]


def test_synapse_style_yaml_11_booleans_are_accepted(host):
    text = yaml.safe_dump(registration("telegram")).replace("exclusive: true", "exclusive: yes")
    assert "exclusive: yes" in text
    host.write_reg("telegram", text=text)
    result, failed = run(host.args("telegram"))
    assert not failed, result


def test_prune_missing_unlists_deleted_files_and_keeps_the_rest(host):
    host.write_reg("whatsapp")
    host.list_existing(["/bridges/telegram/registration.yaml", "/bridges/whatsapp/registration.yaml"])
    result, failed = run(host.args(prune_missing=True))
    assert not failed, result
    assert result["changed"] is True
    assert result["app_service_config_files"] == ["/bridges/whatsapp/registration.yaml"]
    assert host.hs.read_text() == HOMESERVER + "app_service_config_files:\n  - /bridges/whatsapp/registration.yaml\n"
    # Nothing missing: nothing to do.
    result, failed = run(host.args(prune_missing=True))
    assert not failed and result["changed"] is False


def test_without_prune_missing_a_deleted_file_is_an_error(host):
    host.list_existing(["/bridges/telegram/registration.yaml"])
    before = host.hs.read_bytes()
    result, failed = run(host.args())
    assert failed and "/bridges/telegram/registration.yaml" in result["msg"]
    assert host.hs.read_bytes() == before
