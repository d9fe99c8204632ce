"""One homeserver over three VPS hosts (molecule.yml): PostgreSQL on db, Synapse and Caddy on hs,
the legacy mautrix-telegram on br. Each part runs on its own host only, publishes what the others
use on its host's private address only, and the parts work together across the hosts: a client
through the proxy, Synapse's data in PostgreSQL on db, the bridge bot answering through Synapse.

Each test runs once (conftest.py). No secret is printed: tokens are compared by their digests,
and no assertion's expression holds a secret or a file that contains one.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import urllib.parse

import pytest
import yaml
from matrix_dm import ask_in_a_dm
from nio import AsyncClient, LoginResponse, RoomCreateResponse, RoomMessagesResponse, RoomSendResponse
from playbook_runs import ansible_playbook

SERVER = "switchboard.test"
# The VPS of each part (molecule.yml's platforms; conftest.py reaches them as `vps`).
VPS = {"db": "switchboard-vps-db", "hs": "switchboard-vps-hs", "br": "switchboard-vps-br"}
# Each host's switchboard_private_address (molecule.yml).
ADDRESS = {"db": "10.213.61.10", "hs": "10.213.61.11", "br": "10.213.61.12"}
# The containers each host runs, and the images prepare gave it (name parts).
CONTAINERS = {"db": {"postgres"}, "hs": {"synapse", "caddy"}, "br": {"mautrix-telegram"}}
IMAGES = {"db": ["postgres"], "hs": ["synapse", "caddy"], "br": ["telegram"]}
# Synapse's 8008 on hs, published to the test machine: it lands on hs's private address.
SYNAPSE_VIA_PRIVATE_ADDRESS = "http://127.0.0.1:34008"
BRIDGE_PORT = 29317
BRIDGE_CONFIG = "/matrix/bridges/telegram/config.yaml"
BRIDGE_REGISTRATION = "/matrix/bridges/telegram/registration.yaml"
TELEGRAM_BOT = f"@telegrambot:{SERVER}"
# mautrix-telegram 0.15.3's own help text (as in molecule/bridges).
TELEGRAM_HELP = "Get instructions on how to log in."
# Shared between the tests of this module, in file order.
STATE: dict = {}

PROBE = ("import socket, sys\n"
         "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
         "except OSError:\n    sys.exit(1)\n")


def inspect(host, name):
    return json.loads(host.check_output(f"docker inspect {name}"))[0]


def bindings(host, name):
    """The container's published ports: {(container port, host address, host port)}."""
    ports = inspect(host, name)["HostConfig"]["PortBindings"] or {}
    return {(port, binding["HostIp"], binding["HostPort"]) for port, found in ports.items() for binding in found or []}


def connects(host, address, port):
    """Whether a TCP connection from the VPS to address:port is accepted."""
    return host.run("python3 -c %s %s %s", PROBE, address, str(port)).rc == 0


def psql(db, database, query):
    """One query as the superuser in the PostgreSQL container on db: its rows, unaligned."""
    return db.check_output("docker exec postgres psql -U postgres -d %s -tAc %s", database, query).split()


def read_yaml(host, path):
    """A YAML file of a VPS; a parse error is reported without the file's text (it may hold secrets)."""
    text = host.file(path).content_string
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise AssertionError(f"{path} on {host.backend.name} is not YAML") from None


def digest(value):
    """What a secret can be compared by in a test report."""
    return hashlib.sha256(str(value).encode()).hexdigest()[:16]


def uri_host(uri):
    return urllib.parse.urlsplit(uri).hostname


def secret_files(host):
    """{name: (mode, uid)} of the files in /matrix/secrets on the VPS (none when it is absent)."""
    listing = host.run("find /matrix/secrets -mindepth 1 -maxdepth 1 -printf '%f %m %U\\n'")
    if listing.rc != 0 and not host.file("/matrix/secrets").exists:
        return {}
    assert listing.rc == 0, listing.stderr
    return {name: (mode, int(uid)) for name, mode, uid in (line.split() for line in listing.stdout.splitlines())}


def test_each_host_runs_its_own_parts_only(vps):
    for part, host in vps.items():
        running = set(host.check_output("docker ps --format '{{.Names}}'").split())
        assert running == CONTAINERS[part], part
        images = host.check_output("docker image ls --format '{{.Repository}}'").split()
        assert images and all(any(name in image for name in IMAGES[part]) for image in images), (part, images)


def test_each_host_publishes_what_the_others_use_on_its_private_address_only(vps):
    db, hs, br = vps["db"], vps["hs"], vps["br"]
    assert bindings(db, "postgres") == {("5432/tcp", ADDRESS["db"], "5432")}
    assert bindings(hs, "synapse") == {("8008/tcp", "127.0.0.1", "8008"), ("8008/tcp", ADDRESS["hs"], "8008")}
    assert bindings(br, "mautrix-telegram") == {(f"{BRIDGE_PORT}/tcp", ADDRESS["br"], str(BRIDGE_PORT))}
    # Caddy listens on unprivileged ports inside its container: its host ports are the public ones.
    caddy = {host_port for _port, _address, host_port in bindings(hs, "caddy")}
    assert "443" in caddy and caddy <= {"80", "443", "8448"}, caddy


def test_the_hosts_reach_each_other_on_the_private_addresses_and_nowhere_else(vps, http):
    db, hs, br = vps["db"], vps["hs"], vps["br"]
    reached = {
        "PostgreSQL from hs": connects(hs, ADDRESS["db"], 5432),
        "PostgreSQL from br": connects(br, ADDRESS["db"], 5432),
        "Synapse from br": connects(br, ADDRESS["hs"], 8008),
        "Synapse on hs's loopback": connects(hs, "127.0.0.1", 8008),
        "the bridge from hs": connects(hs, ADDRESS["br"], BRIDGE_PORT),
    }
    assert all(reached.values()), reached
    not_reached = {
        "PostgreSQL on db's loopback": connects(db, "127.0.0.1", 5432),
        "PostgreSQL on hs's loopback": connects(hs, "127.0.0.1", 5432),
        "Synapse on db's address": connects(hs, ADDRESS["db"], 8008),
        "the bridge on br's loopback": connects(br, "127.0.0.1", BRIDGE_PORT),
        "the bridge on hs's loopback": connects(hs, "127.0.0.1", BRIDGE_PORT),
    }
    assert not any(not_reached.values()), not_reached
    # From the test machine, to hs's published 8008: it lands on the private address binding.
    status, _headers, body = http(f"{SYNAPSE_VIA_PRIVATE_ADDRESS}/_matrix/client/versions")
    assert status == 200 and body["versions"], body


def test_each_secret_is_kept_on_the_host_that_owns_it_only(vps):
    on_db, on_hs, on_br = (secret_files(vps[part]) for part in ("db", "hs", "br"))
    assert {"postgres-superuser", "postgres-synapse", "postgres-telegram"} <= set(on_db), sorted(on_db)
    assert all(name.startswith("postgres-") for name in on_db), sorted(on_db)
    assert {on_db[name] for name in on_db} == {("600", 0)}, on_db
    tokens = {name: found for name, found in on_hs.items() if name.startswith("bridge-telegram-")}
    assert {"bridge-telegram-as-token", "bridge-telegram-hs-token"} <= set(tokens), sorted(on_hs)
    assert set(tokens.values()) == {("600", 0)}, tokens
    assert not on_br, sorted(on_br)


def test_the_bridge_and_synapse_share_the_tokens_and_each_knows_where_the_other_is(vps):
    hs, br = vps["hs"], vps["br"]
    assert not br.file(BRIDGE_REGISTRATION).exists
    config_file = br.file(BRIDGE_CONFIG)
    assert (config_file.mode, config_file.uid) == (0o640, 0)
    config = read_yaml(br, BRIDGE_CONFIG)
    registration = read_yaml(hs, BRIDGE_REGISTRATION)
    kept = {name: hs.file(f"/matrix/secrets/bridge-telegram-{name}").content_string.strip()
            for name in ("as-token", "hs-token")}
    in_bridge = [digest(config["appservice"]["as_token"]), digest(config["appservice"]["hs_token"])]
    in_registration = [digest(registration["as_token"]), digest(registration["hs_token"])]
    in_store = [digest(kept["as-token"]), digest(kept["hs-token"])]
    assert in_bridge == in_registration == in_store
    assert registration["url"] == f"http://{ADDRESS['br']}:{BRIDGE_PORT}"
    homeserver = config["homeserver"]["address"]
    assert homeserver == f"http://{ADDRESS['hs']}:8008"
    synapse = read_yaml(hs, "/matrix/synapse/data/homeserver.yaml")
    assert "/bridges/telegram/registration.yaml" in synapse["app_service_config_files"]


def test_synapse_keeps_its_data_in_postgresql_on_db(vps, homeserver_config, register_user, homeserver_url, http):
    database_host = homeserver_config["database"]["args"]["host"]
    assert database_host == ADDRESS["db"]
    localpart = f"hosts-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    user_id = register_user(localpart, password)
    assert user_id == f"@{localpart}:{SERVER}"
    status, _headers, body = http(f"{homeserver_url}/_matrix/client/v3/login", body={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart}, "password": password})
    assert status == 200, body
    device = body["device_id"]
    assert psql(vps["db"], "synapse", f"SELECT name FROM users WHERE name = '{user_id}'") == [user_id]
    # The login through the proxy wrote its device there too.
    assert psql(vps["db"], "synapse",
                f"SELECT device_id FROM devices WHERE user_id = '{user_id}' AND device_id = '{device}'") == [device]
    STATE.update(user_id=user_id, password=password)


def test_a_client_round_trip_through_the_proxy(vps, homeserver_url, tls_context):
    """Log in, create a room, send, read back through Caddy on hs; the message is in PostgreSQL on db."""
    user_id, password = STATE["user_id"], STATE["password"]
    text = f"across three hosts {secrets.token_hex(4)}"

    async def round_trip():
        client = AsyncClient(homeserver_url, user_id, ssl=tls_context)
        try:
            login = await client.login(password)
            assert isinstance(login, LoginResponse), login
            room = await client.room_create(name="switchboard hosts")
            assert isinstance(room, RoomCreateResponse), room
            sent = await client.room_send(room.room_id, "m.room.message", {"msgtype": "m.text", "body": text})
            assert isinstance(sent, RoomSendResponse), sent
            messages = await client.room_messages(room.room_id, limit=20)
            assert isinstance(messages, RoomMessagesResponse), messages
            return room.room_id, sent.event_id, [getattr(event, "body", None) for event in messages.chunk]
        finally:
            await client.close()

    room_id, event_id, bodies = asyncio.run(round_trip())
    assert text in bodies
    assert psql(vps["db"], "synapse",
                f"SELECT room_id FROM events WHERE event_id = '{event_id}' AND type = 'm.room.message'") == [room_id]


def test_the_bridge_bot_on_br_answers_through_synapse_on_hs(register_user):
    """A DM with the bot: Synapse on hs sends the invite and the message to the bridge on br, which
    answers through Synapse's client API on hs's private address."""
    localpart = f"hosts-bot-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    user_id = register_user(localpart, password)
    replies = asyncio.run(ask_in_a_dm(SYNAPSE_VIA_PRIVATE_ADDRESS, user_id, password, TELEGRAM_BOT,
                                      "help", TELEGRAM_HELP.lower()))
    assert any(TELEGRAM_HELP in reply for reply in replies), replies


def test_the_bridge_keeps_its_data_in_postgresql_on_db(vps):
    config = read_yaml(vps["br"], BRIDGE_CONFIG)
    database_host = uri_host(config["appservice"]["database"])
    assert database_host == ADDRESS["db"]
    db = vps["db"]
    owner = psql(db, "postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'telegram'")
    assert owner == ["telegram"]
    tables = psql(db, "telegram", "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert "telegram_file" in tables, tables
    owners = psql(db, "telegram", "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    assert owners == ["telegram"]


@pytest.mark.parametrize("part", ["hs", "br"])
def test_no_postgresql_data_outside_db(vps, part):
    assert not vps[part].file("/matrix/postgres").exists, part


def test_the_day2_playbooks_run_on_synapses_host_or_refuse(vps):
    """register_user.yml and check.yml act on Synapse's host only (the check from the proxy's,
    here the same host), and backup.yml, which works on one host's data, refuses before
    anything changes."""
    localpart = f"hosts-day2-{secrets.token_hex(3)}"
    run = ansible_playbook("playbooks/register_user.yml", "-e", f"user={localpart}",
                           "-e", f"password={secrets.token_urlsafe(12)}")
    assert run.rc == 0, run.output[-4000:]
    assert f"@{localpart}:{SERVER} is registered" in run.output, run.output[-4000:]
    assert psql(vps["db"], "synapse", f"SELECT name FROM users WHERE name = '@{localpart}:{SERVER}'") == \
        [f"@{localpart}:{SERVER}"]
    for part in ("db", "br"):
        assert run.recap(VPS[part]).get("changed", 0) == 0, run.output[-4000:]

    check = ansible_playbook("playbooks/check.yml", "-v")
    assert check.rc == 0, check.output[-4000:]
    # Synapse on hs pinged the bridge on br (the wait phase, run on hs only).
    assert re.search(r"Wait until Synapse reaches the bridge telegram\]\s*\**\s*ok: \[switchboard-vps-hs\]",
                     check.output), check.output[-4000:]
    assert "valid, and Synapse answers through the proxy" in check.output, check.output[-4000:]

    backup = ansible_playbook("playbooks/backup.yml")
    assert backup.rc != 0
    assert "backup.yml works on a deployment on one host" in " ".join(backup.output.split()), backup.output[-4000:]
    for name in VPS.values():
        assert backup.recap(name).get("changed", 0) == 0, backup.output[-4000:]
    assert vps["hs"].run("ls /matrix/backups 2>/dev/null").stdout.strip() == ""


def started_at(vps):
    """Each container's start time, on every host."""
    return {part: {name: inspect(host, name)["State"]["StartedAt"] for name in CONTAINERS[part]}
            for part, host in vps.items()}


# Last: these run site.yml again. Molecule's idempotence step stopped at the fast no-op;
# here every task runs, on all three hosts together, and again for one bridge's tag.
@pytest.mark.parametrize("args", [(), ("--tags", "telegram")], ids=["all", "tags-telegram"])
def test_a_full_second_run_changes_nothing_on_any_host(vps, args):
    before = started_at(vps)
    run = ansible_playbook("site.yml", "-e", "switchboard_fast_noop=false", *args)
    assert run.rc == 0, run.output[-4000:]
    for name in VPS.values():
        recap = run.recap(name)
        assert recap.get("changed") == 0 and recap.get("failed") == 0, (name, recap, run.output[-4000:])
    assert started_at(vps) == before


def test_a_run_that_leaves_synapses_host_out_is_refused(vps):
    """The bridges' host alone cannot read the tokens kept on Synapse's host: refused in the
    first play, naming the hosts, with nothing changed."""
    before = started_at(vps)
    run = ansible_playbook("site.yml", "-e", "switchboard_fast_noop=false", "--limit", VPS["br"])
    assert run.rc != 0
    assert "no --limit leaving one out" in run.output, run.output[-4000:]
    assert all(name in run.output for name in VPS.values()), run.output[-4000:]
    assert run.recap(VPS["br"]).get("changed") == 0, run.output[-4000:]
    assert started_at(vps) == before
