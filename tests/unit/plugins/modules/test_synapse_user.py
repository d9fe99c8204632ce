from __future__ import annotations

import os
import socket

import pytest

from ansible_collections.switchboard.matrix.plugins.modules import synapse_user
from .fake_synapse import FakeSynapse, serve
from .utils import AnsibleFailJson, run_module, set_module_args


@pytest.fixture
def fake():
    synapse = FakeSynapse()
    server, synapse.url = serve(synapse)
    yield synapse
    server.shutdown()
    server.server_close()


def run(fake, check_mode=False, diff=False, **args):
    params = dict(homeserver_url=fake.url, localpart="alice", password="pw", registration_shared_secret="s3cret")
    params.update(args)
    params = {key: value for key, value in params.items() if value is not None}
    return run_module(synapse_user.main, params, check_mode, diff)


def test_registers_then_is_idempotent(fake):
    first = run(fake, admin=True, user_type="bot")
    assert first["changed"] is True and first["user_id"] == "@alice:test.local"
    assert fake.users["alice"] == dict(password="pw", admin=True, user_type="bot", avatar_url=None)
    second = run(fake, admin=True, user_type="bot")
    assert second == dict(changed=False, user_id="@alice:test.local")
    assert "access_token" not in first


@pytest.mark.parametrize("registration_open", [True, False])
def test_check_mode_predicts_without_posting(fake, registration_open):
    fake.registration_open = registration_open
    result = run(fake, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"]["exists"] is False and result["diff"]["after"]["exists"] is True
    assert fake.posts() == [] and fake.users == {}
    run(fake)
    again = run(fake, check_mode=True)
    assert again["changed"] is False and again["user_id"] == "@alice:test.local"


def test_wrong_secret(fake):
    result = run(fake, registration_shared_secret="nope")
    assert result["failed"] and result["status"] == 403
    assert result["msg"] == ("POST %s/_synapse/admin/v1/register failed: HTTP 403 M_UNKNOWN: HMAC incorrect. "
                             "Is registration_shared_secret right?" % fake.url)
    assert fake.users == {}


def test_shared_secret_not_configured(fake):
    fake.secret = None
    result = run(fake)
    assert "Shared secret registration is not enabled. Set registration_shared_secret" in result["msg"]


def test_invalid_localpart_fails_before_any_request(fake):
    result = run(fake, localpart="Alice")
    assert result["failed"] and "'A'" in result["msg"] and "a-z" in result["msg"]
    assert fake.requests == []


def test_token_for_new_and_existing_user(fake):
    new = run(fake, return_access_token=True, device_id="DEV")
    assert new["changed"] and new["access_token"] == "token-of-alice" and new["device_id"] == "DEV"
    existing = run(fake, return_access_token=True, device_id="DEV")
    assert not existing["changed"] and existing["access_token"] == "token-of-alice"
    assert ("POST", "/_matrix/client/v3/login") in fake.requests


def test_no_token_wanted_leaves_no_device(fake):
    run(fake)
    assert fake.requests[-1] == ("POST", "/_synapse/admin/v1/register")


def test_wrong_password_of_existing_user(fake):
    run(fake)
    result = run(fake, password="other", return_access_token=True)
    assert result["failed"] and "sets the password only when it creates the user" in result["msg"]


def test_retries_server_errors_but_never_resends_a_nonce(fake, monkeypatch):
    sleeps = []
    monkeypatch.setattr("time.sleep", sleeps.append)
    fake.fail_next = [502, 429]
    assert run(fake, retries=2)["changed"] is True
    assert sleeps == [0.5, 0.01]  # the 429's retry_after_ms is honoured
    calls = []
    original = fake.handle

    def flaky(method, path, *rest):
        if method == "POST":
            calls.append(path)
            return 500, {"errcode": "M_UNKNOWN", "error": "Internal server error"}
        return original(method, path, *rest)

    fake.handle = flaky
    result = run(fake, localpart="bob", retries=3)
    assert result["failed"] and "HTTP 500" in result["msg"] and len(calls) == 1


def test_unreachable_homeserver(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    sleeps = []
    monkeypatch.setattr("time.sleep", sleeps.append)
    params = dict(homeserver_url="http://127.0.0.1:%d" % port, localpart="alice", password="pw",
                  registration_shared_secret="s", retries=1)
    with set_module_args(params):
        with pytest.raises(AnsibleFailJson) as result:
            synapse_user.main()
    msg = result.value.args[0]["msg"]
    assert msg.startswith("GET http://127.0.0.1:%d/_synapse/admin/v1/register failed after 2 attempts: " % port)
    assert "refused" in msg and "Is the homeserver running" in msg
    assert sleeps == [0.5]


def test_reads_the_secret_from_homeserver_yaml(fake, tmp_path):
    config = tmp_path / "homeserver.yaml"
    config.write_text("server_name: test.local\nregistration_shared_secret: s3cret\n")
    result = run(fake, registration_shared_secret=None, synapse_config_path=str(config))
    assert result["changed"] is True and "alice" in fake.users
    assert "s3cret" not in repr(result)


@pytest.mark.parametrize("make, expected", [
    (lambda path: path.symlink_to("/etc/passwd"), "is a symbolic link"),
    (os.mkfifo, "not a regular file"),
    (lambda path: path.write_text("server_name: test.local\n"), "has no registration_shared_secret"),
    (lambda path: path.write_text("registration_shared_secret: [1]\n"), "has no registration_shared_secret"),
    (lambda path: None, "file does not exist"),
])
def test_a_homeserver_yaml_it_cannot_trust_fails_before_any_request(fake, tmp_path, make, expected):
    config = tmp_path / "homeserver.yaml"
    make(config)
    result = run(fake, registration_shared_secret=None, synapse_config_path=str(config))
    assert result["failed"] and expected in result["msg"] and str(config) in result["msg"]
    assert fake.posts() == [] and fake.users == {}


def test_the_secret_comes_from_one_place_only(fake, tmp_path):
    result = run(fake, synapse_config_path=str(tmp_path / "homeserver.yaml"))
    assert result["failed"] and "mutually exclusive" in result["msg"]
    assert fake.posts() == []
