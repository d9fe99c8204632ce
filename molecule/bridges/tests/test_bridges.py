"""Four bridges on one Synapse: each bot answers a real Matrix client, each token works."""
from __future__ import annotations

import asyncio
import secrets

import pytest
import yaml
from matrix_dm import ask_in_a_dm

SERVER = "switchboard.test"
BRIDGES = {  # name: bot localpart
    "telegram": "telegrambot",
    "whatsapp": "whatsappbot",
    "discord": "discordbot",
    "wechat": "wechatbot",
}


def as_token(host, name):
    return host.file(f"/matrix/secrets/bridge-{name}-as-token").content_string.strip()


def test_synapse_lists_all_four_registrations(host):
    config = yaml.safe_load(host.file("/matrix/synapse/data/homeserver.yaml").content_string)
    assert sorted(config["app_service_config_files"]) == sorted(
        f"/bridges/{name}/registration.yaml" for name in BRIDGES)


@pytest.mark.parametrize("name", sorted(BRIDGES))
def test_as_token_is_accepted(host, http, homeserver_url, name):
    status, _headers, body = http(f"{homeserver_url}/_matrix/client/v3/account/whoami",
                                  headers={"Authorization": f"Bearer {as_token(host, name)}"})
    assert status == 200, body
    assert body["user_id"] == f"@{BRIDGES[name]}:{SERVER}"


@pytest.mark.parametrize("name", ["telegram", "whatsapp", "discord"])
def test_bridge_database_is_in_postgresql(host, name):
    owner = host.check_output(
        f"docker exec postgres psql -U postgres -tAc \"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{name}'\"")
    assert owner.strip() == name


def test_registrations_and_configs_are_private(host):
    for name in BRIDGES:
        registration = host.file(f"/matrix/bridges/{name}/registration.yaml")
        config = host.file(f"/matrix/bridges/{name}/config.yaml")
        assert registration.mode == 0o640 and registration.gid == 991, name
        assert config.mode == 0o600 and config.uid == 1337, name


def test_synapse_started_once_then_restarted_once(host):
    """Created and started by the synapse role, restarted once for all four bridges, never by the no-op run."""
    # By ID: a name filter would also match the one-shot synapse-generate container.
    container_id = host.check_output("docker inspect --format '{{.Id}}' synapse")
    events = host.check_output(f"docker events --since 0 --until $(date +%s) --filter container={container_id} "
                               "--filter event=start --format '{{.Status}}'")
    assert len(events.split()) == 2, events


@pytest.mark.parametrize("name", sorted(BRIDGES))
def test_bot_answers_help_in_a_dm(register_user, homeserver_url, name):
    localpart = f"user-{name}-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    user_id = register_user(localpart, password)
    replies = asyncio.run(ask_in_a_dm(homeserver_url, user_id, password, f"@{BRIDGES[name]}:{SERVER}", "help", "help"))
    assert replies
