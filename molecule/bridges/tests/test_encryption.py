"""Encryption, double puppeting and the other bridge features, with the real bridges.

A client that really encrypts (matrix-nio with its e2e extra, tests/e2e/encrypted_dm.py)
opens an encrypted DM with each real bridge's bot, as Element does, sends `help` encrypted
and reads the answer (WhatsApp's encrypted, decrypted by the client; see ENCRYPTED_ANSWER
for the legacy Telegram bridge); after the bridge restarts, the same room still works with
the same bot device (its keys were kept). The stand-ins (Discord, WeChat) do no encryption, so they
are not asked. The tests run in file order and build on each other; every test takes
testinfra's `host` fixture so pytest keeps that order.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.parse

import pytest
import yaml
from deployed_secrets import deployed_secrets, occurrences
from encrypted_dm import EncryptedClient
from playbook_runs import ansible_playbook
from test_bridges import BRIDGES, HELP_WORDS, REAL, SERVER, in_synapse_container, new_user, secret

DOUBLE_PUPPET_REGISTRATION = "/matrix/bridges/double-puppet.yaml"
DOUBLE_PUPPET_TOKEN = "appservice-double-puppet-as-token"
ADMIN = f"@bridge-admin:{SERVER}"
STATE = {}  # per bridge: the user, its client session and store, the room, the bot's device keys
# The legacy (Python) bridge decrypts what it is sent in its management room but answers
# there unencrypted: mautrix-python 0.20 encrypts only what its portals send, its bot's
# command replies go out as they are. Its answer to an encrypted `help` still proves that
# it decrypted it (the server holds only the ciphertext).
ENCRYPTED_ANSWER = {"whatsapp": True, "telegram": False}


def bot(name):
    return f"@{BRIDGES[name][0]}:{SERVER}"


def config(host, name):
    return yaml.safe_load(host.check_output(f"cat /matrix/bridges/{name}/config.yaml"))


def ask_encrypted(homeserver_url, name, text, answer, login=None):
    """As the bridge's test user, in its kept client session (or a first login): the bot's replies."""
    state = STATE[name]

    async def talk():
        client = EncryptedClient(homeserver_url, state["user"], state["store"])
        try:
            if login:
                state["device"], state["token"] = await client.login(login)
                state["room"] = await client.open_dm(bot(name), timeout=90)
            else:
                await client.resume(state["device"], state["token"])
            return await client.ask(state["room"], bot(name), text, answer, timeout=90,
                                    encrypted_answer=ENCRYPTED_ANSWER[name])
        finally:
            await client.close()
    return asyncio.run(talk())


def bot_device_keys(http, homeserver_url, name):
    """Every device of the bridge's bot and its keys, as other users' clients see them."""
    status, _headers, body = http(f"{homeserver_url}/_matrix/client/v3/keys/query", {"device_keys": {bot(name): []}},
                                  headers={"Authorization": f"Bearer {STATE[name]['token']}"})
    assert status == 200, body
    return {device: info["keys"] for device, info in body["device_keys"].get(bot(name), {}).items()}


def wait_for_ping(http, homeserver_url, host, name, timeout=120):
    """Synapse's appservice ping, until the restarted bridge answers it."""
    token = secret(host, f"bridge-{name}-as-token")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _headers, body = http(f"{homeserver_url}/_matrix/client/v1/appservice/{name}/ping", body={},
                                      headers={"Authorization": f"Bearer {token}"})
        if status == 200:
            return
        time.sleep(1)
    raise AssertionError(f"{name}: no ping after the restart: {body}; "
                         + host.run(f"docker logs --tail 30 {BRIDGES[name][1]}").stdout)


@pytest.mark.parametrize("name", REAL)
def test_real_bridge_config_turns_encryption_on(host, name):
    section = config(host, name)["encryption" if name == "whatsapp" else "bridge"]
    section = section if name == "whatsapp" else section["encryption"]
    assert (section["allow"], section["default"], section["require"], section["msc4190"]) == (True, True, False, True)
    registration = yaml.safe_load(host.check_output(f"cat /matrix/bridges/{name}/registration.yaml"))
    assert registration["io.element.msc4190"] is True


@pytest.mark.parametrize("name", REAL)
def test_real_bot_answers_help_in_an_encrypted_dm(host, http, homeserver_url, register_user, tmp_path_factory, name):
    user, password = new_user(register_user, f"{name}-e2ee")
    STATE[name] = {"user": user, "store": tmp_path_factory.mktemp(f"{name}-client-store")}
    words = HELP_WORDS[name]
    replies = ask_encrypted(homeserver_url, name, "help", words[0].lower(), login=password)
    for expected in words:
        assert any(expected in reply for reply in replies), replies
    # The server holds ciphertext only, both ways.
    status, _headers, body = http(f"{homeserver_url}/_matrix/client/v3/rooms/{STATE[name]['room']}/messages?dir=b&limit=50",
                                  headers={"Authorization": f"Bearer {STATE[name]['token']}"})
    assert status == 200, body
    senders = {kind: {event["sender"] for event in body["chunk"] if event["type"] == kind}
               for kind in ("m.room.encrypted", "m.room.message")}
    if ENCRYPTED_ANSWER[name]:
        assert senders == {"m.room.encrypted": {user, bot(name)}, "m.room.message": set()}, body["chunk"]
    else:
        assert senders == {"m.room.encrypted": {user}, "m.room.message": {bot(name)}}, body["chunk"]
    STATE[name]["keys"] = bot_device_keys(http, homeserver_url, name)
    assert len(STATE[name]["keys"]) == 1, STATE[name]["keys"]


@pytest.mark.parametrize("name", REAL)
def test_the_encrypted_dm_works_after_the_bridge_restarts(host, http, homeserver_url, name):
    host.run_expect([0], f"docker restart {BRIDGES[name][1]}")
    wait_for_ping(http, homeserver_url, host, name)
    words = HELP_WORDS[name]
    replies = ask_encrypted(homeserver_url, name, "help", words[0].lower())
    assert any(words[-1] in reply for reply in replies), replies
    # The same device with the same keys: the bridge kept them (in its database, under the kept pickle key).
    assert bot_device_keys(http, homeserver_url, name) == STATE[name]["keys"]


def test_the_double_puppet_registration_is_listed_and_private(host):
    listed = yaml.safe_load(host.check_output("cat /matrix/synapse/data/homeserver.yaml"))["app_service_config_files"]
    assert "/bridges/double-puppet.yaml" in listed
    registration = host.file(DOUBLE_PUPPET_REGISTRATION)
    assert (registration.mode, registration.uid, registration.gid) == (0o640, 0, 991)
    data = yaml.safe_load(host.check_output(f"cat {DOUBLE_PUPPET_REGISTRATION}"))
    assert data["url"] is None
    assert data["namespaces"]["users"] == [{"regex": "@.*:switchboard\\.test", "exclusive": False}]
    assert data["as_token"] == secret(host, DOUBLE_PUPPET_TOKEN)
    assert data["hs_token"] == secret(host, "appservice-double-puppet-hs-token")
    for name in ("appservice-double-puppet-as-token", "appservice-double-puppet-hs-token"):
        stored = host.file(f"/matrix/secrets/{name}")
        assert (stored.mode, stored.uid) == (0o600, 0), name
        assert len(secret(host, name)) == 64


def test_synapse_accepts_the_double_puppet_token_for_a_local_user(host, http, homeserver_url, register_user):
    user, _password = new_user(register_user, "double-puppet")
    token = secret(host, DOUBLE_PUPPET_TOKEN)

    def whoami(user_id, bearer):
        return http(f"{homeserver_url}/_matrix/client/v3/account/whoami?user_id={urllib.parse.quote(user_id)}",
                    headers={"Authorization": f"Bearer {bearer}"})
    status, _headers, body = whoami(user, token)
    assert (status, body["user_id"]) == (200, user), body
    # Only this server's users, and only with this token.
    status, _headers, body = whoami("@someone:other.test", token)
    assert status == 403, body
    status, _headers, body = whoami(user, secrets.token_hex(32))
    assert status == 401, body


@pytest.mark.parametrize("name", sorted(BRIDGES))
def test_each_bridge_holds_the_double_puppet_token(host, name):
    data = config(host, name)
    held = data["double_puppet"]["secrets"] if name == "whatsapp" else data["bridge"]["login_shared_secret_map"]
    assert held == {SERVER: f"as_token:{secret(host, DOUBLE_PUPPET_TOKEN)}"}


def test_relay_backfill_and_admins_reach_the_real_bridges(host):
    """As the scenario sets them; the bridges started with them (their pings and answers above)."""
    whatsapp, telegram = config(host, "whatsapp"), config(host, "telegram")
    assert whatsapp["bridge"]["relay"]["enabled"] is True
    assert whatsapp["backfill"]["enabled"] is True  # the role's default for WhatsApp
    assert whatsapp["bridge"]["permissions"] == {SERVER: "user", ADMIN: "admin"}
    assert telegram["bridge"]["backfill"]["enable"] is True  # upstream's default for the legacy bridge
    assert telegram["bridge"]["permissions"] == {SERVER: "full", ADMIN: "admin"}
    for name in REAL:
        assert host.check_output(f"docker inspect --format '{{{{.State.Running}}}}' {BRIDGES[name][1]}") == "true"


def test_telegram_metrics_answer_on_the_docker_network_only(host):
    assert config(host, "telegram")["metrics"] == {"enabled": True, "listen_port": 8000}
    status, body = in_synapse_container(host, "http://mautrix-telegram:8000/metrics", "unused")
    assert status == 200, body
    assert "python_info" in body and "# TYPE" in body
    container = json.loads(host.check_output("docker inspect mautrix-telegram"))[0]
    assert not container["HostConfig"]["PortBindings"]
    # Nothing listens for it on the VPS itself.
    refused = host.run("python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/metrics', timeout=5)\"")
    assert refused.rc != 0 and "Connection refused" in refused.stderr, refused.stderr


def test_a_run_that_rewrites_bridge_configs_prints_no_secret(host):
    """A changed bot name rewrites the WhatsApp config (with the double-puppet token and the pickle
    key in it) under --diff: none of the deployed secrets appears in Ansible's output."""
    name = f"WhatsApp bridge bot {secrets.token_hex(3)}"
    run = ansible_playbook("site.yml", "--diff", "-e", json.dumps({"bridge_whatsapp_bot_displayname": name}))
    assert run.rc == 0, run.output[-6000:]
    assert config(host, "whatsapp")["appservice"]["bot"]["displayname"] == name
    found = deployed_secrets(host.check_output)
    assert f"/matrix/secrets/{DOUBLE_PUPPET_TOKEN}" in found and "/bridges/double-puppet.yaml as_token" in found
    assert occurrences(found, {"site.yml --diff": run.output}) == {}
