"""A real Matrix client against the deployed Synapse: register, log in, talk."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import urllib.request

from nio import AsyncClient, LoginResponse, RoomCreateResponse, RoomMessagesResponse, RoomSendResponse


def _http_json(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def register_with_shared_secret(homeserver_url, secret, localpart, password):
    """Synapse's shared-secret registration, written from its admin API docs (not via our module)."""
    endpoint = f"{homeserver_url}/_synapse/admin/v1/register"
    nonce = _http_json(endpoint)["nonce"]
    mac = hmac.new(secret.encode(), b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), b"notadmin"]),
                   hashlib.sha1).hexdigest()
    return _http_json(endpoint, {"nonce": nonce, "username": localpart, "password": password, "admin": False, "mac": mac})


def test_versions_endpoint(homeserver_url):
    versions = _http_json(f"{homeserver_url}/_matrix/client/versions")
    assert "v1.1" in versions["versions"]


def test_open_registration_is_refused(homeserver_url):
    request = urllib.request.Request(f"{homeserver_url}/_matrix/client/v3/register", method="POST",
                                     data=json.dumps({"username": "intruder", "password": "x" * 16}).encode())
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("open registration answered 200")
    except urllib.error.HTTPError as err:
        assert err.code == 403
        assert json.load(err)["errcode"] == "M_FORBIDDEN"


def test_register_login_and_message_round_trip(homeserver_url, homeserver_config):
    localpart = f"e2e-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    registered = register_with_shared_secret(homeserver_url, homeserver_config["registration_shared_secret"],
                                             localpart, password)
    assert registered["user_id"] == f"@{localpart}:switchboard.test"

    async def round_trip():
        client = AsyncClient(homeserver_url, f"@{localpart}:switchboard.test")
        try:
            login = await client.login(password)
            assert isinstance(login, LoginResponse), login
            room = await client.room_create(name="switchboard e2e")
            assert isinstance(room, RoomCreateResponse), room
            body = f"hello from the e2e test {secrets.token_hex(4)}"
            sent = await client.room_send(room.room_id, "m.room.message", {"msgtype": "m.text", "body": body})
            assert isinstance(sent, RoomSendResponse), sent
            messages = await client.room_messages(room.room_id, limit=20)
            assert isinstance(messages, RoomMessagesResponse), messages
            return [getattr(event, "body", None) for event in messages.chunk], body
        finally:
            await client.close()

    bodies, body = asyncio.run(round_trip())
    assert body in bodies
