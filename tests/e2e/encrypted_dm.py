"""A client that really encrypts (matrix-nio with its e2e extra), to talk to the bot in an
encrypted direct chat as Element does: the room is encrypted from its creation, and the
client keeps its own crypto store in a directory, so a later session goes on where it left off.
"""
from __future__ import annotations

import asyncio
import secrets
import time

from nio import (AsyncClient, AsyncClientConfig, LoginResponse, MegolmEvent, RoomCreateResponse, RoomMessageNotice,
                 RoomSendResponse, SyncResponse)

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


class EncryptedClient:
    """One user's device: log in once (login), or go on with a kept session (resume)."""

    def __init__(self, homeserver_url, user_id, store_dir):
        # No kept sync token: each session's first sync is a full one, which lists the rooms.
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
        self.client = AsyncClient(homeserver_url, user_id, store_path=str(store_dir), config=config)
        self.notices = []  # (room ID, sender, body) of decrypted notices
        self.plain_notices = []  # ... and of notices sent unencrypted
        self.undecryptable = []

    async def login(self, password):
        answer = await self.client.login(password, device_name="switchboard e2e test")
        assert isinstance(answer, LoginResponse), answer
        await self.sync(0)
        return answer.device_id, answer.access_token

    async def resume(self, device_id, access_token):
        self.client.restore_login(self.client.user, device_id, access_token)
        await self.sync(0)

    async def sync(self, timeout_ms=1000):
        # Synapse answers a repeated initial sync from a cache (for two minutes): make each
        # session's first one unique, or a later session sees an older state, without its rooms.
        first = {"account_data": {"not_types": [f"org.switchboard.test.{secrets.token_hex(8)}"]}}
        answer = await self.client.sync(timeout=timeout_ms, sync_filter=None if self.client.next_batch else first)
        assert isinstance(answer, SyncResponse), answer
        for room_id, info in answer.rooms.join.items():
            for event in info.timeline.events:
                if isinstance(event, RoomMessageNotice):
                    (self.notices if event.decrypted else self.plain_notices).append((room_id, event.sender, event.body))
                elif isinstance(event, MegolmEvent):
                    self.undecryptable.append((room_id, event.sender))
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        if self.client.should_query_keys:
            await self.client.keys_query()
        return answer

    async def open_dm(self, bot, timeout=60):
        """An encrypted DM with the bot, returned once the bot has joined it."""
        room = await self.client.room_create(is_direct=True, invite=[bot], initial_state=[ENCRYPTION])
        assert isinstance(room, RoomCreateResponse), room
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.sync()
            joined = self.client.rooms.get(room.room_id)
            if joined is not None and bot in joined.users:
                assert joined.encrypted
                return room.room_id
        raise AssertionError(f"{bot} did not join the encrypted DM")

    async def ask(self, room_id, bot, text, answer_contains, timeout=60, encrypted_answer=True):
        """Send text encrypted; return the bot's decrypted notices (sent after it) containing the answer
        (with encrypted_answer=False: its notices sent unencrypted instead)."""
        notices = self.notices if encrypted_answer else self.plain_notices
        already = len(notices)
        sent = await self.client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text},
                                           ignore_unverified_devices=True)
        assert isinstance(sent, RoomSendResponse), sent
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.sync()
            replies = [body for room, sender, body in notices[already:]
                       if room == room_id and sender == bot and answer_contains in body.lower()]
            if replies:
                return replies
            await asyncio.sleep(0.2)
        others = [body for room, sender, body in (self.plain_notices if encrypted_answer else self.notices)
                  if room == room_id and sender == bot]
        raise AssertionError(f"{bot} did not answer {text!r} in {room_id}; undecryptable: {self.undecryptable};"
                             f" {'unencrypted' if encrypted_answer else 'encrypted'} notices instead: {others}")

    async def close(self):
        await self.client.close()
