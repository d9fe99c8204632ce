"""The default chatbot in encrypted and unencrypted direct chats, across restarts.

The tests run in file order and build on each other: an encrypted DM first, then the same
room after a container restart, after the container is re-created by site.yml, and last
what happens when the crypto store is lost. Every test takes testinfra's `host` fixture
(pytest groups tests by it; mixing would reorder them).
"""
from __future__ import annotations

import asyncio
import json
import secrets
import shlex
import time

from encrypted_dm import EncryptedClient
from matrix_dm import ask_in_a_dm
from playbook_runs import ansible_playbook

SERVER = "switchboard.test"
BOT = f"@switchboard-bot:{SERVER}"
DEVICE = "SWITCHBOARD"
STORE = "/matrix/bot/store"
STORE_FILE = f"{STORE}/{BOT}_{DEVICE}.db"
STATE = {}  # what earlier tests leave for later ones


def bot_device_key(http, homeserver_url, token):
    status, _headers, body = http(f"{homeserver_url}/_matrix/client/v3/keys/query",
                                  {"device_keys": {BOT: [DEVICE]}}, headers={"Authorization": f"Bearer {token}"})
    assert status == 200, body
    return body["device_keys"].get(BOT, {}).get(DEVICE, {}).get("keys", {}).get(f"ed25519:{DEVICE}")


def wait_until_synced(host, problem="", timeout=90):
    """The bot's health check after its first sync with Synapse: healthy, or reporting the problem."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check = host.run("docker exec matrix-bot python3 /opt/switchboard-bot/switchboard_bot.py --healthcheck")
        if (check.rc == 0 and not problem) or (check.rc == 1 and problem and problem in check.stdout):
            return
        time.sleep(1)
    raise AssertionError(host.run("docker logs --tail 30 matrix-bot").stdout)


def new_user(register_user, name):
    localpart, password = f"{name}-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    return register_user(localpart, password), password


def ask_encrypted(homeserver_url, tmp_dir, text, answer, room_id=None, login=None):
    """As STATE's user, in its kept client session (or a new login): returns (room ID, replies)."""
    async def talk():
        client = EncryptedClient(homeserver_url, STATE["user"], tmp_dir)
        try:
            if login:
                STATE["device"], STATE["token"] = await client.login(login)
            else:
                await client.resume(STATE["device"], STATE["token"])
            room = room_id or await client.open_dm(BOT)
            return room, await client.ask(room, BOT, text, answer)
        finally:
            await client.close()
    return asyncio.run(talk())


def test_bot_answers_in_an_unencrypted_dm(host, homeserver_url, register_user):
    user, password = new_user(register_user, "plain")
    assert asyncio.run(ask_in_a_dm(homeserver_url, user, password, BOT, "!ping", "pong"))


def test_bot_answers_ping_and_help_in_an_encrypted_dm(host, homeserver_url, register_user, http, tmp_path_factory):
    STATE["user"], password = new_user(register_user, "secret")
    STATE["client_store"] = tmp_path_factory.mktemp("client-store")
    room, replies = ask_encrypted(homeserver_url, STATE["client_store"], "!ping", "pong", login=password)
    assert replies == ["pong"]
    STATE["room"] = room
    _room, replies = ask_encrypted(homeserver_url, STATE["client_store"], "help", "!ping", room_id=room)
    assert "I answer in encrypted rooms too." in replies[0]
    # What the server stored is ciphertext, both ways.
    status, _headers, body = http(f"{homeserver_url}/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=20",
                                  headers={"Authorization": f"Bearer {STATE['token']}"})
    assert status == 200, body
    assert {event["sender"] for event in body["chunk"] if event["type"] == "m.room.encrypted"} == {STATE["user"], BOT}
    assert not [event for event in body["chunk"] if event["type"] == "m.room.message"]
    STATE["bot_key"] = bot_device_key(http, homeserver_url, STATE["token"])
    assert STATE["bot_key"]


def test_crypto_store_is_private_to_the_bot(host):
    store = host.file(STORE)
    assert (store.mode, store.uid, store.gid) == (0o700, 993, 993)
    assert host.file(STORE_FILE).exists
    files = host.check_output(f"find {STORE} -mindepth 1 -printf '%m %U %G %y %p\\n'").splitlines()
    assert files and all(line.startswith("600 993 993 f ") for line in files), files
    bot = json.loads(host.check_output("docker inspect matrix-bot"))[0]
    assert f"{STORE}:/var/lib/switchboard-bot:rw" in bot["HostConfig"]["Binds"]
    assert bot["HostConfig"]["ReadonlyRootfs"] is True


def test_encrypted_dm_works_after_a_container_restart(host, homeserver_url, http):
    host.run_expect([0], "docker restart matrix-bot")
    wait_until_synced(host)
    _room, replies = ask_encrypted(homeserver_url, STATE["client_store"], "!ping", "pong", room_id=STATE["room"])
    assert replies == ["pong"]
    assert bot_device_key(http, homeserver_url, STATE["token"]) == STATE["bot_key"]


def store_secrets(host):
    """The pickled Olm account in the store (ciphertext, but the store's content all the same)."""
    script = ("import sqlite3, sys\n"
              "for (account,) in sqlite3.connect(sys.argv[1]).execute('select account from accounts'):\n"
              "    print(account.decode() if isinstance(account, bytes) else account)\n")
    return [line for line in host.check_output(f"python3 -c {shlex.quote(script)} {shlex.quote(STORE_FILE)}").splitlines()
            if line]


def test_encrypted_dm_works_after_site_yml_recreates_the_container(host, homeserver_url, http):
    old_id = host.check_output("docker inspect --format '{{.Id}}' matrix-bot")
    host.run_expect([0], "docker rm -f matrix-bot")
    run = ansible_playbook("site.yml", "-vvv")
    assert run.rc == 0, run.output[-6000:]
    assert host.check_output("docker inspect --format '{{.Id}}' matrix-bot") != old_id
    _room, replies = ask_encrypted(homeserver_url, STATE["client_store"], "!ping", "pong", room_id=STATE["room"])
    assert replies == ["pong"]
    assert bot_device_key(http, homeserver_url, STATE["token"]) == STATE["bot_key"]
    # Nothing of the store, nor the bot's token, in Ansible's output.
    token = host.file("/matrix/bot/secrets/access_token").content_string.strip()
    leaked = [secret for secret in [token, *store_secrets(host)] if secret in run.output]
    assert not leaked


def test_a_lost_store_leaves_the_bot_running_and_site_yml_renews_the_device(host, homeserver_url, http, register_user,
                                                                            tmp_path_factory):
    old_token = host.file("/matrix/bot/secrets/access_token").content_string.strip()
    host.run_expect([0], f"docker stop matrix-bot && rm -f {shlex.quote(STORE)}/* && docker start matrix-bot")
    # It comes up, says why it is unhealthy, and creates no store for keys it cannot have.
    wait_until_synced(host, problem="the store was lost")
    assert not host.file(STORE_FILE).exists
    # Without its keys it still answers where there is no encryption.
    user, password = new_user(register_user, "plain")
    assert asyncio.run(ask_in_a_dm(homeserver_url, user, password, BOT, "!ping", "pong"))

    # Docker marks it unhealthy after its health check's retries (about 2 minutes), and the
    # fast path would then do a full run; not waited for here.
    run = ansible_playbook("site.yml", "-vvv", "-e", "switchboard_fast_noop=false")
    assert run.rc == 0, run.output[-6000:]
    assert old_token not in run.output
    new_token = host.file("/matrix/bot/secrets/access_token").content_string.strip()
    assert new_token != old_token
    assert host.file(STORE_FILE).exists
    new_key = bot_device_key(http, homeserver_url, STATE["token"])
    assert new_key and new_key != STATE["bot_key"]
    # A user whose client never saw the old keys talks to the renewed device.
    STATE["user"], password = new_user(register_user, "renewed")
    _room, replies = ask_encrypted(homeserver_url, tmp_path_factory.mktemp("renewed-store"), "!ping", "pong",
                                   login=password)
    assert replies == ["pong"]
