from __future__ import annotations

import hashlib
import hmac

import pytest

from ansible_collections.switchboard.matrix.plugins.module_utils._client import (
    HomeserverError,
    localpart_problem,
    registration_mac,
)


def test_mac_matches_openssl():
    # printf 'abc\0alice\0wonderland\0notadmin' | openssl dgst -sha1 -hmac 'shared'
    assert registration_mac("shared", "abc", "alice", "wonderland") == "3b63d4cb44243f12fc02911ffe961a5207df74db"
    # printf 'abc\0bot\0pw\0admin\0bot' | openssl dgst -sha1 -hmac 'shared'
    assert registration_mac("shared", "abc", "bot", "pw", admin=True, user_type="bot") == \
        "5f250463f42ac9e24db6b4a25dcdffabc3a5342f"


def test_mac_matches_hmac_over_literal_bytes():
    expected = hmac.new(b"k\xc3\xa9y", b"n\x00\xc3\xa9ve\x00p\x00notadmin", hashlib.sha1).hexdigest()
    assert registration_mac("k\u00e9y", "n", "\u00e9ve", "p", admin=False) == expected


def test_no_user_type_means_no_trailing_field():
    assert registration_mac("s", "n", "u", "p", user_type=None) == registration_mac("s", "n", "u", "p", user_type="")


@pytest.mark.parametrize("localpart", ["alice", "bot.telegram", "a_b=c-d/e+f", "0"])
def test_good_localparts(localpart):
    assert localpart_problem(localpart) is None


@pytest.mark.parametrize("localpart, shown", [("", "empty"), ("Alice", "'A'"), ("al ice", "' '"),
                                              ("al:ice", "':'"), ("\u00e9", "'\u00e9'")])
def test_bad_localparts_name_the_rule(localpart, shown):
    problem = localpart_problem(localpart)
    assert shown in problem
    assert "a-z" in problem and "0-9" in problem


def test_error_messages():
    http = HomeserverError("POST", "http://hs/_synapse/admin/v1/register", status=403,
                           errcode="M_FORBIDDEN", error="HMAC incorrect")
    assert str(http) == "POST http://hs/_synapse/admin/v1/register failed: HTTP 403 M_FORBIDDEN: HMAC incorrect"
    down = HomeserverError("GET", "http://hs/x", reason="Connection refused", attempts=3)
    assert str(down) == "GET http://hs/x failed after 3 attempts: Connection refused"
    assert str(HomeserverError("GET", "http://hs/x", status=502)) == "GET http://hs/x failed: HTTP 502"
