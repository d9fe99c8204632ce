# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import re

import pytest

from ansible_collections.switchboard.matrix.plugins.module_utils._appservice import (
    PathMap,
    RegistrationError,
    build_registration,
    check_registration,
    check_unique,
    generate_token,
    plan_list,
)


def valid(**changes):
    data = {
        "id": "telegram",
        "url": "http://telegram:29317",
        "as_token": "as",
        "hs_token": "hs",
        "sender_localpart": "telegrambot",
        "namespaces": {"users": [{"regex": "@telegram_.*", "exclusive": True}]},
    }
    data.update(changes)
    return data


def test_valid_registrations_pass():
    check_registration(valid(), "/r.yaml")
    check_registration(valid(url=None, namespaces={}, protocols=None, rate_limited=True), "/r.yaml")
    check_registration(valid(protocols=[], ip_range_whitelist=["10.0.0.0/8"]), "/r.yaml")
    check_registration(valid(namespaces={"aliases": [], "rooms": [{"regex": "!x", "exclusive": False}]}), "/r.yaml")


@pytest.mark.parametrize("changes, key", [
    ({"as_token": 1}, "as_token"),
    ({"url": []}, "url"),
    ({"id": "a|b"}, "id"),
    ({"sender_localpart": "bot/x?"}, "sender_localpart"),
    ({"io.element.msc4190": "true"}, "io.element.msc4190"),
    ({"namespaces": None}, "namespaces"),
    ({"namespaces": {"users": [{"regex": "[", "exclusive": True}]}}, "namespaces.users[0].regex"),
    ({"ip_range_whitelist": "10.0.0.0/8"}, "ip_range_whitelist"),
])
def test_problems_name_file_and_key(changes, key):
    with pytest.raises(RegistrationError) as info:
        check_registration(valid(**changes), "/x/telegram.yaml")
    assert str(info.value).startswith("/x/telegram.yaml: key '%s' " % key)


def test_message_format_from_spec():
    with pytest.raises(RegistrationError, match=r"^/x/telegram\.yaml: key 'as_token' must be a string, got int$"):
        check_registration(valid(as_token=5), "/x/telegram.yaml")


def test_check_unique():
    check_unique([("/a", valid()), ("/b", valid(id="other", as_token="other"))])
    with pytest.raises(RegistrationError, match="^/b: key 'id' 'telegram' is already used by /a"):
        check_unique([("/a", valid()), ("/b", valid(as_token="other"))])
    with pytest.raises(RegistrationError) as info:
        check_unique([("/a", valid()), ("/b", valid(id="other", as_token="as"))])
    assert "/b: key 'as_token' is already used by /a" in str(info.value)
    assert "'as'" not in str(info.value)


def test_generate_token():
    tokens = {generate_token() for _attempt in range(50)}
    assert len(tokens) == 50
    assert all(re.fullmatch(r"[0-9a-f]{64}", token) for token in tokens)


def test_build_registration():
    registration = build_registration(
        appservice_id="tg", url=None, sender_localpart="bot", namespaces={"rooms": [], "users": []},
        rate_limited=False, as_token="a", hs_token="h", protocols=["telegram"], extra={"receive_ephemeral": True},
    )
    assert list(registration) == ["id", "url", "as_token", "hs_token", "sender_localpart", "rate_limited",
                                  "namespaces", "protocols", "receive_ephemeral"]
    assert list(registration["namespaces"]) == ["users", "rooms"]
    with pytest.raises(RegistrationError, match="extra: key 'as_token'"):
        build_registration(appservice_id="tg", url=None, sender_localpart="bot", namespaces={}, rate_limited=False,
                           as_token="a", hs_token="h", extra={"as_token": "x"})


def test_path_map_longest_prefix_and_components():
    path_map = PathMap({"/matrix/bridges": "/bridges", "/matrix/bridges/telegram": "/tg", "/matrix/synapse/data/": "/data"})
    assert path_map.to_container("/matrix/bridges/wa/r.yaml") == "/bridges/wa/r.yaml"
    assert path_map.to_container("/matrix/bridges/telegram/r.yaml") == "/tg/r.yaml"
    assert path_map.to_container("/matrix/synapse/data/x.yaml") == "/data/x.yaml"
    assert path_map.to_host("/tg/r.yaml") == "/matrix/bridges/telegram/r.yaml"
    assert path_map.to_host("/bridges") == "/matrix/bridges"
    with pytest.raises(RegistrationError, match="/matrix/bridges2/r.yaml is outside every host path"):
        path_map.to_container("/matrix/bridges2/r.yaml")
    with pytest.raises(RegistrationError, match="/bridgesX/r.yaml is outside every container path"):
        path_map.to_host("/bridgesX/r.yaml")


def test_path_map_root_and_identity():
    assert PathMap({"/": "/host"}).to_container("/etc/r.yaml") == "/host/etc/r.yaml"
    assert PathMap(None).to_container("/a/../b.yaml") == "/a/../b.yaml"
    with pytest.raises(RegistrationError, match="absolute"):
        PathMap({"relative": "/x"})


def test_plan_list():
    current = ["/a", "/b"]
    assert plan_list(current, {"/c": "h"}, "present", False) == ["/a", "/b", "/c"]
    assert plan_list(current, {"/b": "h"}, "present", False) == current
    assert plan_list(current, {"/c": "h", "/b": "h"}, "present", True) == ["/b", "/c"]
    assert plan_list(current + ["/b"], {"/b": "h"}, "present", True) == ["/b"]
    assert plan_list(["/x/../a", "/b"], {"/a": "h"}, "absent", False) == ["/b"]
