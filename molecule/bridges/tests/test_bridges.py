"""Four bridges on one Synapse, as a real Matrix client and Synapse itself see them.

mautrix-whatsapp (Go, built from its Go module) and the legacy mautrix-telegram (Python,
from PyPI) are the real programs: their answers are asserted on upstream's own words.
mautrix-discord and the Go matrix-wechat run the test stand-in (the Go module proxy does
not serve them here); their tests check the wiring, and the stand-in says what it is.
"""
from __future__ import annotations

import asyncio
import json
import secrets

import pytest
import yaml
from matrix_dm import ask_in_a_dm

SERVER = "switchboard.test"
BRIDGES = {  # name: (bot localpart, container, runs the real upstream program)
    "telegram": ("telegrambot", "mautrix-telegram", True),
    "whatsapp": ("whatsappbot", "mautrix-whatsapp", True),
    "discord": ("discordbot", "mautrix-discord", False),
    "wechat": ("wechatbot", "matrix-wechat", False),
}
REAL = sorted(name for name, (_bot, _container, real) in BRIDGES.items() if real)
STAND_INS = sorted(set(BRIDGES) - set(REAL))
# What upstream answers, word for word from its source: bridgev2's command help and login
# reply (mautrix-go v0.29, mautrix-whatsapp v0.2607.0), mautrix-telegram 0.15.3's.
HELP_WORDS = {
    "whatsapp": ["#### Authentication", "**login**", "Log into the bridge"],
    "telegram": ["Get instructions on how to log in."],
}
LOGIN_WORDS = {
    "whatsapp": ["Please specify a login flow", "Scan a QR code to pair the bridge to your WhatsApp account"],
    "telegram": ["Please send your phone number (or bot auth token) here to start the login process."],
}
# A table each real bridge creates in its own database at its first start.
OWN_TABLE = {"whatsapp": "whatsapp_history_sync_message", "telegram": "telegram_file"}


def secret(host, name):
    return host.file(f"/matrix/secrets/{name}").content_string.strip()


def in_synapse_container(host, url, token, method="GET"):
    """(status, body) of a request from Synapse's container, where the bridges' names resolve."""
    script = ("import json, os, sys, urllib.error, urllib.request\n"
              "req = urllib.request.Request(sys.argv[1], method=sys.argv[2], data=b'{}' if sys.argv[2] == 'POST' else None,"
              " headers={'Authorization': 'Bearer ' + os.environ['TOKEN'], 'Content-Type': 'application/json'})\n"
              "try:\n    r = urllib.request.urlopen(req, timeout=10); print(r.status); print(r.read().decode())\n"
              "except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n")
    out = host.check_output("docker exec -e TOKEN=%s synapse python -c %s %s %s",
                            token, script, url, method)
    status, body = out.split("\n", 1)
    return int(status), body


def leaf_values(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from leaf_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from leaf_values(value)
    else:
        yield node


def new_user(register_user, name):
    localpart = f"user-{name}-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    return register_user(localpart, password), password


def test_synapse_lists_all_four_registrations_and_the_double_puppet_one(host):
    config = yaml.safe_load(host.file("/matrix/synapse/data/homeserver.yaml").content_string)
    assert sorted(config["app_service_config_files"]) == sorted(
        [f"/bridges/{name}/registration.yaml" for name in BRIDGES] + ["/bridges/double-puppet.yaml"])


@pytest.mark.parametrize("name", sorted(BRIDGES))
def test_as_token_is_accepted(host, http, homeserver_url, name):
    token = secret(host, f"bridge-{name}-as-token")
    status, _headers, body = http(f"{homeserver_url}/_matrix/client/v3/account/whoami",
                                  headers={"Authorization": f"Bearer {token}"})
    assert status == 200, body
    # The appservice's own user is not the bot (Synapse serves the bot's encryption /sync only so),
    # except for matrix-wechat, whose framework needs its bot registered before its first request.
    sender = BRIDGES[name][0] if name == "wechat" else f"_switchboard_{name}_appservice"
    assert body["user_id"] == f"@{sender}:{SERVER}"
    bot = f"@{BRIDGES[name][0]}:{SERVER}"
    status, _headers, body = http(f"{homeserver_url}/_matrix/client/v3/account/whoami?user_id={bot}",
                                  headers={"Authorization": f"Bearer {token}"})
    assert (status, body["user_id"]) == (200, bot), body


@pytest.mark.parametrize("name", sorted(BRIDGES))
def test_synapse_appservice_ping_reaches_the_bridge(http, homeserver_url, host, name):
    """Synapse calls the bridge with the hs_token and the bridge accepts it: both directions work."""
    status, _headers, body = http(f"{homeserver_url}/_matrix/client/v1/appservice/{name}/ping", body={},
                                  headers={"Authorization": f"Bearer {secret(host, f'bridge-{name}-as-token')}"})
    assert status == 200, body
    assert "duration_ms" in body


@pytest.mark.parametrize("name", sorted(BRIDGES))
def test_bridge_database_is_in_postgresql(host, name):
    owner = host.check_output(
        f"docker exec postgres psql -U postgres -tAc \"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{name}'\"")
    assert owner.strip() == name


@pytest.mark.parametrize("name", REAL)
def test_real_bridge_created_its_own_tables(host, name):
    tables = host.check_output(
        f"docker exec postgres psql -U postgres -d {name} -tAc "
        "\"SELECT tablename FROM pg_tables WHERE schemaname = 'public'\"").split()
    assert OWN_TABLE[name] in tables, tables
    owners = host.check_output(
        f"docker exec postgres psql -U postgres -d {name} -tAc "
        "\"SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'\"").split()
    assert owners == [name]


def test_registrations_and_configs_are_private(host):
    for name in BRIDGES:
        registration = host.file(f"/matrix/bridges/{name}/registration.yaml")
        config = host.file(f"/matrix/bridges/{name}/config.yaml")
        assert (registration.mode, registration.uid, registration.gid) == (0o640, 0, 991), name
        assert (config.mode, config.uid, config.gid) == (0o640, 0, 1337), name


def test_synapse_has_the_users_mount_and_the_bridges_mount(host):
    mounts = json.loads(host.check_output("docker inspect synapse"))[0]["Mounts"]
    assert {(m["Source"], m["Destination"], m["RW"]) for m in mounts} >= {
        ("/matrix/synapse/extra", "/extra", False), ("/matrix/bridges", "/bridges", False)}


def test_synapse_started_once_with_every_registration_listed(host):
    """The bridges' registrations are written before Synapse is created: it starts once, with all four
    listed, and is never restarted, by the bridges or by the no-op run."""
    # By ID: a name filter would also match the one-shot synapse-generate container.
    container_id = host.check_output("docker inspect --format '{{.Id}}' synapse")
    events = host.check_output(f"docker events --since 0 --until $(date +%s) --filter container={container_id} "
                               "--filter event=start --format '{{.Status}}'")
    assert len(events.split()) == 1, events


@pytest.mark.parametrize("name", sorted(BRIDGES))
def test_generated_values_are_kept_in_the_config(host, name):
    """What upstream's example marks "generate" is generated once on the host and written, never left to each start."""
    text = host.run("cat /matrix/bridges/%s/config.yaml", name).stdout
    config = yaml.safe_load(text)
    # matrix-wechat has no provisioning API (bridge_wechat_provisioning_enabled: false).
    if name != "wechat":
        provisioning = secret(host, f"bridge-{name}-provisioning-secret")
        assert len(provisioning) == 64
        assert provisioning in text
    assert "generate" not in list(leaf_values(config))
    assert "example.com" not in text


def test_whatsapp_provisioning_api_takes_the_kept_secret(host):
    """The real bridge's provisioning API answers with the stored secret and refuses another one."""
    user_id = f"@provisioning-{secrets.token_hex(3)}:{SERVER}"
    url = f"http://mautrix-whatsapp:29318/_matrix/provision/v3/whoami?user_id={user_id}"
    status, body = in_synapse_container(host, url, secret(host, "bridge-whatsapp-provisioning-secret"))
    assert status == 200, body
    assert json.loads(body)["network"]["displayname"] == "WhatsApp"
    status, body = in_synapse_container(host, url, secrets.token_hex(32))
    assert status == 401, body


@pytest.mark.parametrize("command", ["help", "login"])
@pytest.mark.parametrize("name", REAL)
def test_real_bot_answers_in_upstreams_words(register_user, homeserver_url, name, command):
    """`help`, and `login` without an account: the bridge's own first answer, made without reaching its chat network."""
    words = (HELP_WORDS if command == "help" else LOGIN_WORDS)[name]
    user_id, password = new_user(register_user, name)
    replies = asyncio.run(ask_in_a_dm(homeserver_url, user_id, password, f"@{BRIDGES[name][0]}:{SERVER}",
                                      command, words[0].lower()))
    for expected in words:
        assert any(expected in reply for reply in replies), replies
    assert not any("stand-in" in reply for reply in replies)


@pytest.mark.parametrize("name", STAND_INS)
def test_stand_in_bot_answers_and_says_what_it_is(register_user, homeserver_url, name):
    user_id, password = new_user(register_user, name)
    replies = asyncio.run(ask_in_a_dm(homeserver_url, user_id, password, f"@{BRIDGES[name][0]}:{SERVER}",
                                      "help", "stand-in"))
    assert any(BRIDGES[name][1] in reply for reply in replies), replies


@pytest.mark.parametrize("name", sorted(BRIDGES))
def test_bridge_containers_are_unprivileged(host, name):
    """Own uid, no capability, no privilege gain, no port on the host (none is published by default)."""
    container = json.loads(host.check_output(f"docker inspect {BRIDGES[name][1]}"))[0]
    assert container["Config"]["User"] == "1337:1337"
    assert container["HostConfig"]["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in container["HostConfig"]["SecurityOpt"]
    assert not container["HostConfig"]["PortBindings"]


ATTEMPTS = {  # what a compromised bridge would try, from inside its container
    "append to the config": "echo 'x: 1' >> /config/config.yaml",
    "replace the config": "cp /config/config.yaml /tmp/c && mv /tmp/c /config/config.yaml",
    "read the registration": "cat /config/registration.yaml",
    "plant a file beside them": "touch /config/registration.yaml.new",
    "write its own files": "touch /data/.probe && rm /data/.probe",
}


def test_a_bridge_cannot_change_what_synapse_trusts(host):
    """A compromised bridge can neither widen its registration's namespace nor rewrite its
    config: both are root's, its config is mounted read-only, the registration not readable.
    (Last in this file: one `docker exec` per bridge, so Docker's short event history still
    holds Synapse's starts for the test above.)"""
    script = "".join(f"if ({command}) >/dev/null 2>&1; then echo '{what}: yes'; else echo '{what}: no'; fi\n"
                     for what, command in ATTEMPTS.items())
    for name, (_bot, container, _real) in BRIDGES.items():
        outcome = host.check_output("docker exec %s sh -c %s", container, script).splitlines()
        assert outcome == [f"{what}: {'yes' if what == 'write its own files' else 'no'}" for what in ATTEMPTS], name
