"""Two homeservers deployed by site.yml federate over TLS: a.test delegates by its well-known to
matrix.a.test:443, b.test serves federation on 8448. The test client reaches each through its
own proxy (published on 127.0.0.1); the servers reach each other by their names on the test
network, and trust each other's certificate only through synapse_federation_ca_bundle.

The tests run in file order and build on each other (users, a room, messages, keys, a restore).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import testinfra
import yaml

from matrix_fixtures import REGISTER_IN_VPS
from playbook_runs import ansible_playbook

A, B = "switchboard-vps-fed-a", "switchboard-vps-fed-b"
CLIENT = {A: "https://matrix.a.test:58443", B: "https://b.test:59443"}
SERVER = {A: "a.test", B: "b.test"}
STATE = {}  # what earlier tests leave for later ones


@pytest.fixture(scope="module")
def vps():
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return {name: testinfra.get_host("ansible://" + name, ansible_inventory=inventory) for name in (A, B)}


@pytest.fixture(scope="module")
def tls():
    ca = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "pki", "ca.pem")
    return ssl.create_default_context(cafile=ca)


def call(tls, host, method, path, token=None, body=None, query=None, base=None):
    url = (base or CLIENT[host]) + path + ("?" + urllib.parse.urlencode(query) if query else "")
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": "Bearer " + token} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=60, context=tls) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw or b"null")
        except ValueError:
            return err.code, raw.decode(errors="replace")


def register_and_login(vps, tls, host, localpart):
    config = yaml.safe_load(vps[host].file("/matrix/synapse/data/homeserver.yaml").content_string)
    password = "pw-" + secrets.token_hex(8)
    stdin = "\n".join([config["registration_shared_secret"], localpart, password, ""])
    result = vps[host].run(f"python3 -c {shlex.quote(REGISTER_IN_VPS)} <<'EOF'\n{stdin}EOF")
    assert result.rc == 0, result.stderr
    return login(tls, host, localpart, password), password


def login(tls, host, localpart, password):
    status, body = call(tls, host, "POST", "/_matrix/client/v3/login", body={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart}, "password": password})
    assert status == 200, body
    return body


def send(tls, host, token, room_id, text):
    status, body = call(tls, host, "PUT", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/send/m.room.message/"
                        f"{secrets.token_hex(6)}", token=token, body={"msgtype": "m.text", "body": text})
    assert status == 200, body


def wait_for(what, probe, timeout=90):
    """Call probe() until it returns something true; fail with what was awaited and the last answer."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        ok, last = probe()
        if ok:
            return last
        time.sleep(1)
    pytest.fail(f"{what}: not within {timeout} s; last answer: {json.dumps(last)[:800]}")


def reads(tls, host, token, room_id, text, sender=None):
    """A probe for wait_for: the room's last messages, read on `host`, hold `text` (sent by `sender`)."""
    def probe():
        status, body = call(tls, host, "GET", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/messages",
                            token=token, query={"dir": "b", "limit": 50})
        said = [e["content"].get("body", "") for e in (body.get("chunk", []) if status == 200 else [])
                if e["type"] == "m.room.message" and sender in (None, e["sender"])]
        return any(text in body_text for body_text in said), body
    return probe


def notary_fetches(tls, host, other):
    """A probe for wait_for: `host`'s Synapse fetches `other`'s signing keys by their IDs."""
    now_ms = int(time.time() * 1000)
    wanted = {"server_keys": {SERVER[other]: {key_id: {"minimum_valid_until_ts": now_ms}
                                              for key_id in STATE["keys"][other]}}}

    def probe():
        status, body = call(tls, host, "POST", "/_matrix/key/v2/query", body=wanted)
        found = [key for entry in (body.get("server_keys", []) if status == 200 else [])
                 if entry.get("server_name") == SERVER[other] for key in entry.get("verify_keys", {})]
        return bool(found), body
    return probe


def test_each_server_answers_federation_where_it_says(tls):
    """Synapse's federation endpoints through each proxy, as another server finds them."""
    status, wellknown = call(tls, A, "GET", "/.well-known/matrix/server", base="https://a.test:58443")
    assert status == 200 and wellknown == {"m.server": "matrix.a.test:443"}, wellknown
    for host, base in ((A, "https://matrix.a.test:58443"), (B, "https://b.test:59448")):
        status, version = call(tls, host, "GET", "/_matrix/federation/v1/version", base=base)
        assert status == 200 and version["server"]["name"] == "Synapse", version
        status, keys = call(tls, host, "GET", "/_matrix/key/v2/server", base=base)
        assert status == 200 and keys["server_name"] == SERVER[host] and keys["verify_keys"], keys
        STATE.setdefault("keys", {})[host] = keys["verify_keys"]


def test_each_server_fetches_the_others_keys_over_tls(tls):
    """The notary endpoint makes each Synapse fetch the other's signing key itself: name resolution,
    delegation or port 8448, and the certificate checked against the test CA. (Asked for a key
    by its ID: asked for all keys, Synapse answers from its cache only.)"""
    for host, other in ((A, B), (B, A)):
        body = wait_for(f"{SERVER[host]} fetching the keys of {SERVER[other]}", notary_fetches(tls, host, other), timeout=60)
        found = {key for entry in body["server_keys"] for key in entry["verify_keys"]}
        assert found == set(STATE["keys"][other]), body


def test_a_user_on_b_joins_a_room_on_a_and_both_read_each_other(vps, tls):
    alice, alice_password = register_and_login(vps, tls, A, "alice")
    bob, bob_password = register_and_login(vps, tls, B, "bob")
    STATE.update(alice=alice, alice_password=alice_password, bob=bob, bob_password=bob_password)
    status, room = call(tls, A, "POST", "/_matrix/client/v3/createRoom", token=alice["access_token"],
                        body={"name": "across", "invite": [bob["user_id"]], "preset": "private_chat"})
    assert status == 200, room
    room_id = STATE["room"] = room["room_id"]

    def invited():
        status, body = call(tls, B, "GET", "/_matrix/client/v3/sync", token=bob["access_token"], query={"timeout": 1000})
        return status == 200 and room_id in body.get("rooms", {}).get("invite", {}), body
    wait_for("bob sees alice's invite on b.test", invited)
    status, body = call(tls, B, "POST", f"/_matrix/client/v3/join/{urllib.parse.quote(room_id)}",
                        token=bob["access_token"], query={"server_name": "a.test"}, body={})
    assert status == 200, body

    from_a, from_b = "from a.test " + secrets.token_hex(4), "from b.test " + secrets.token_hex(4)
    send(tls, A, alice["access_token"], room_id, from_a)
    wait_for("bob reads alice's message", reads(tls, B, bob["access_token"], room_id, from_a))
    send(tls, B, bob["access_token"], room_id, from_b)
    wait_for("alice reads bob's message", reads(tls, A, alice["access_token"], room_id, from_b))


def test_device_keys_are_queried_across_servers(tls):
    bob, alice = STATE["bob"], STATE["alice"]
    device = bob["device_id"]
    device_keys = {"user_id": bob["user_id"], "device_id": device,
                   "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                   "keys": {f"curve25519:{device}": secrets.token_hex(16), f"ed25519:{device}": secrets.token_hex(16)},
                   "signatures": {bob["user_id"]: {f"ed25519:{device}": secrets.token_hex(32)}}}
    status, body = call(tls, B, "POST", "/_matrix/client/v3/keys/upload", token=bob["access_token"],
                        body={"device_keys": device_keys})
    assert status == 200, body
    status, body = call(tls, A, "POST", "/_matrix/client/v3/keys/query", token=alice["access_token"],
                        body={"device_keys": {bob["user_id"]: []}})
    assert status == 200 and not body.get("failures"), body
    assert body["device_keys"][bob["user_id"]][device]["keys"] == device_keys["keys"], body


def test_a_user_on_b_sees_what_the_bridge_bot_of_a_says(tls):
    """a.test's WhatsApp bridge (the real mautrix-whatsapp) in a room a user of b.test joins: the
    bot's answer to a command reaches b.test."""
    alice, bob, bot = STATE["alice"], STATE["bob"], "@whatsappbot:a.test"
    status, room = call(tls, A, "POST", "/_matrix/client/v3/createRoom", token=alice["access_token"],
                        body={"name": "bridged", "invite": [bob["user_id"], bot], "preset": "private_chat"})
    assert status == 200, room
    room_id = urllib.parse.quote(room["room_id"])

    def joined(user, host, token):
        def probe():
            status, body = call(tls, host, "GET", f"/_matrix/client/v3/rooms/{room_id}/state/m.room.member/{user}",
                                token=token)
            return status == 200 and body.get("membership") == "join", body
        return probe
    wait_for("the bridge bot joining", joined(bot, A, alice["access_token"]))

    def bob_joins():
        status, body = call(tls, B, "POST", f"/_matrix/client/v3/join/{room_id}", token=bob["access_token"],
                            query={"server_name": "a.test"}, body={})
        return status == 200, body
    wait_for("bob joining", bob_joins)
    send(tls, A, alice["access_token"], room["room_id"], "!wa help")
    wait_for("bob reading the bridge bot's help",
             reads(tls, B, bob["access_token"], room["room_id"], "Log into the bridge", sender=bot))


def test_the_allow_list_refuses_other_servers(vps, tls):
    """a.test may federate with b.test only (synapse_federation_domain_whitelist): c.test is refused
    by Synapse before any connection, while b.test still answers."""
    status, body = call(tls, A, "POST", "/_matrix/client/v3/keys/query", token=STATE["alice"]["access_token"],
                        body={"device_keys": {"@carol:c.test": [], STATE["bob"]["user_id"]: []}})
    assert status == 200 and "c.test" in body.get("failures", {}) and "b.test" not in body["failures"], body
    config = yaml.safe_load(vps[B].file("/matrix/synapse/data/homeserver.yaml").content_string)
    assert "federation_domain_whitelist" not in config  # b.test: every server


def test_after_restoring_a_from_its_backup_b_still_accepts_its_events(vps, tls):
    """Same signing key after a restore onto an emptied a.test: b.test accepts what a.test sends."""
    run = ansible_playbook("playbooks/backup.yml", "--limit", A)
    assert run.rc == 0, run.output[-4000:]
    archive = re.search(r"Wrote (/matrix/backups/switchboard-\S+\.tar\.gz)", run.output).group(1)
    vps[A].run_expect([0], "docker rm -f $(docker ps -aq)")
    vps[A].run_expect([0], "find /matrix -mindepth 1 -maxdepth 1 ! -name backups -exec rm -rf {} +")
    run = ansible_playbook("playbooks/restore.yml", "--limit", A, "-e", f"backup_archive={archive}")
    assert run.rc == 0, run.output[-6000:]

    status, keys = call(tls, A, "GET", "/_matrix/key/v2/server", base="https://matrix.a.test:58443")
    assert status == 200 and keys["verify_keys"] == STATE["keys"][A], keys
    alice = login(tls, A, "alice", STATE["alice_password"])
    text = "after the restore " + secrets.token_hex(4)
    send(tls, A, alice["access_token"], STATE["room"], text)
    wait_for("bob reads what restored a.test sent", reads(tls, B, STATE["bob"]["access_token"], STATE["room"], text))


def test_federation_off_closes_it_at_synapse_and_the_proxy(vps, tls):
    """synapse_federation_enabled: false on b.test: no 8448, the federation API answers 404 on 443,
    and a.test can no longer reach b.test; the client API still works."""
    run = ansible_playbook("playbooks/site.yml", "--limit", B, "-e", "synapse_federation_enabled=false", "-v")
    assert run.rc == 0, run.output[-6000:]
    assert "closed: the federation API answers 404 on b.test" in run.output
    with pytest.raises(OSError):
        with socket.create_connection(("127.0.0.1", 59448), timeout=5) as raw:
            with tls.wrap_socket(raw, server_hostname="b.test") as conn:
                conn.sendall(b"GET /_matrix/federation/v1/version HTTP/1.0\r\nHost: b.test\r\n\r\n")
                if not conn.recv(1):
                    raise OSError("closed without an answer")
    status, _body = call(tls, B, "GET", "/_matrix/federation/v1/version")
    assert status == 404
    status, body = call(tls, B, "GET", "/_matrix/client/versions")
    assert status == 200 and body["versions"], body
    config = yaml.safe_load(vps[B].file("/matrix/synapse/data/homeserver.yaml").content_string)
    assert config["federation_domain_whitelist"] == []
    assert all("federation" not in resource["names"] for listener in config["listeners"] for resource in listener["resources"])
    alice = login(tls, A, "alice", STATE["alice_password"])
    status, body = call(tls, A, "POST", "/_matrix/client/v3/keys/query", token=alice["access_token"],
                        body={"device_keys": {"@someone-new:b.test": []}})
    assert status == 200 and "b.test" in body.get("failures", {}), body
