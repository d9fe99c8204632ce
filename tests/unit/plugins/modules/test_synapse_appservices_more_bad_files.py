# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""More bad files for synapse_appservices: the kinds test_synapse_appservices.BAD does not cover.

Same contract: the run fails with a message naming the file and the key, and homeserver.yaml
is byte-for-byte unchanged (and no other file appears next to it).
"""
from __future__ import annotations

import os

import pytest
import yaml

from .test_synapse_appservices import (  # noqa: F401  pylint: disable=unused-import
    BAD, HOMESERVER, _hs_text, _reg, _reg_text, host, registration, run)


def _reg_directory(h):
    h.reg_path("telegram").mkdir(parents=True)
    return h.args("telegram")


def _hs_directory(h):
    h.write_reg("telegram")
    h.hs.unlink()
    h.hs.mkdir()
    return h.args("telegram")


def _duplicate_as_token_with_listed(h):
    h.write_reg("whatsapp")
    h.list_existing(["/bridges/whatsapp/registration.yaml"])
    h.write_reg("telegram", registration("telegram", as_token="as-whatsapp"))
    return h.args("telegram")


def _same_file_listed_twice(h):
    h.write_reg("telegram")
    h.write_reg("whatsapp")
    h.list_existing(["/bridges/telegram/registration.yaml", "/bridges/telegram/../telegram/registration.yaml"])
    return h.args("whatsapp")


MORE_BAD = {
    "registration a scalar": (_reg_text("telegram\n"), ["{reg}", "must be a YAML mapping, got string"]),
    "registration a directory": (_reg_directory, ["{reg}", "is a directory"]),
    "homeserver a directory": (_hs_directory, ["{hs}", "is a directory"]),
    "url a list": (_reg(url=["http://a"]), ["{reg}", "'url' must be a string or null, got list"]),
    "rooms not a list": (_reg(namespaces={"rooms": "!x:example.org"}), ["{reg}", "'namespaces.rooms' must be a list, got string"]),
    "msc4190 flag not a bool": (_reg(**{"io.element.msc4190": "yes please"}), ["{reg}", "'io.element.msc4190' must be a bool"]),
    "ip_range_whitelist not a list": (_reg(ip_range_whitelist="10.0.0.0/8"), ["{reg}", "'ip_range_whitelist'"]),
    "ip_range_whitelist not an address": (_reg(ip_range_whitelist=["10.0.0.0/8", "intranet"]),
                                          ["{reg}", "'ip_range_whitelist[1]'", "'intranet'"]),
    "list holds null": (_hs_text(HOMESERVER + "app_service_config_files:\n  -\n"),
                        ["{hs}", "'app_service_config_files[0]' must be a string, got null"]),
    "duplicate as_token with a listed file": (_duplicate_as_token_with_listed,
                                              ["{reg}", "'as_token' is already used by {whatsapp}"]),
    "same file listed twice": (_same_file_listed_twice, ["'id' 'telegram' is already used by"]),
}


@pytest.mark.parametrize("setup, fragments", list(MORE_BAD.values()), ids=list(MORE_BAD))
def test_more_bad_input_fails_and_leaves_homeserver_alone(host, setup, fragments):
    args = setup(host)
    before = host.hs.read_bytes() if host.hs.is_file() else None
    listing = sorted(os.listdir(host.hs.parent))

    result, failed = run(args)

    assert failed, result
    names = {"hs": host.hs, "reg": host.reg_path("telegram"), "whatsapp": host.reg_path("whatsapp")}
    for fragment in fragments:
        assert fragment.format(**names) in result["msg"]
    assert "as-whatsapp" not in result["msg"]  # a duplicated token is never printed
    assert (host.hs.read_bytes() if host.hs.is_file() else None) == before
    assert sorted(os.listdir(host.hs.parent)) == listing


def test_the_file_battery_holds_at_least_thirty_cases():
    assert len(BAD) + len(MORE_BAD) >= 30
    assert not set(BAD) & set(MORE_BAD)


def test_valid_ip_ranges_pass(host):
    host.write_reg("telegram", registration("telegram", ip_range_whitelist=["10.0.0.0/8", "192.168.1.7", "fd00::/8"]))
    result, failed = run(host.args("telegram"))
    assert not failed, result
    assert yaml.safe_load(host.hs.read_text())["app_service_config_files"] == ["/bridges/telegram/registration.yaml"]
