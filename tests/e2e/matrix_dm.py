"""Ask a bot something in a new direct chat, as a real Matrix client (matrix-nio) does."""
from __future__ import annotations

import asyncio
import time

from nio import AsyncClient, LoginResponse, RoomCreateResponse, RoomMessagesResponse


async def ask_in_a_dm(homeserver_url, user_id, password, bot, text, answer_contains, timeout=60):
    """Log in, open a DM with the bot, wait until it joins, send text; return its replies containing the answer."""
    client = AsyncClient(homeserver_url, user_id)
    try:
        login = await client.login(password)
        assert isinstance(login, LoginResponse), login
        room = await client.room_create(is_direct=True, invite=[bot])
        assert isinstance(room, RoomCreateResponse), room
        # The bot joins on invite; wait until it has (bounded, no fixed sleep).
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            members = await client.joined_members(room.room_id)
            if bot in [member.user_id for member in getattr(members, "members", [])]:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"{bot} did not join the DM")
        await client.room_send(room.room_id, "m.room.message", {"msgtype": "m.text", "body": text})
        while time.monotonic() < deadline:
            messages = await client.room_messages(room.room_id, limit=50)
            assert isinstance(messages, RoomMessagesResponse), messages
            replies = [event.body for event in messages.chunk
                       if getattr(event, "sender", None) == bot and getattr(event, "body", None)
                       and answer_contains in event.body.lower()]
            if replies:
                return replies
            await asyncio.sleep(0.5)
        raise AssertionError(f"{bot} did not answer {text!r}")
    finally:
        await client.close()
