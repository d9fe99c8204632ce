"""A real Matrix client against the deployed Synapse: register, log in, talk."""
from __future__ import annotations

import asyncio
import secrets

from nio import AsyncClient, LoginResponse, RoomCreateResponse, RoomMessagesResponse, RoomSendResponse


def test_versions_endpoint(http, homeserver_url):
    status, _headers, versions = http(f"{homeserver_url}/_matrix/client/versions")
    assert status == 200
    assert "v1.1" in versions["versions"]


def test_open_registration_is_refused(http, homeserver_url):
    status, _headers, body = http(f"{homeserver_url}/_matrix/client/v3/register",
                                  {"username": "intruder", "password": "x" * 16})
    assert status == 403
    assert body["errcode"] == "M_FORBIDDEN"


def test_register_login_and_message_round_trip(register_user, homeserver_url, homeserver_config, tls_context):
    server_name = homeserver_config["server_name"]
    localpart = f"e2e-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    assert register_user(localpart, password) == f"@{localpart}:{server_name}"

    async def round_trip():
        client = AsyncClient(homeserver_url, f"@{localpart}:{server_name}", ssl=tls_context)
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
