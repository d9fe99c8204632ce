"""Secure defaults, checked from outside through the proxy and on the VPS."""
from __future__ import annotations

import pytest

from conftest import inspect, vps

CLIENT = "https://matrix.switchboard.test:58443"
CONTAINERS = ["synapse", "postgres", "caddy", "mautrix-whatsapp", "matrix-bot"]


def test_registration_is_closed(http, homeserver_config):
    assert homeserver_config["enable_registration"] is False
    status, _headers, body = http(f"{CLIENT}/_matrix/client/v3/register",
                                  body={"username": "intruder", "password": "intruder-password-1",
                                        "auth": {"type": "m.login.dummy"}}, method="POST")
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"


@pytest.mark.parametrize("path", ["/_synapse/admin/v1/server_version", "/_synapse/admin/v1/register",
                                  "/_synapse/admin/v2/users"])
def test_admin_api_is_not_reachable_through_the_proxy(http, path):
    assert http(f"{CLIENT}{path}")[0] in (403, 404)


@pytest.mark.parametrize("name", CONTAINERS)
def test_containers_are_unprivileged(name):
    container = inspect(name)
    assert container["HostConfig"]["Privileged"] is False
    assert "no-new-privileges:true" in container["HostConfig"]["SecurityOpt"]
    assert container["Config"]["User"] not in ("", "0", "root", "0:0")
    assert not container["HostConfig"]["CapAdd"]
    assert container["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"


def test_postgres_is_not_published():
    container = inspect("postgres")
    assert not container["HostConfig"]["PortBindings"]
    assert not any(container["NetworkSettings"]["Ports"].values())
    assert list(container["NetworkSettings"]["Networks"]) == ["matrix"]
    # Nothing listens on 5432 on the VPS itself.
    assert vps("python3 -c \"import socket; socket.create_connection(('127.0.0.1', 5432), 2)\"", check=False).returncode != 0


def test_synapse_is_published_on_loopback_only():
    bindings = inspect("synapse")["HostConfig"]["PortBindings"]
    assert {binding["HostIp"] for ports in bindings.values() for binding in ports} == {"127.0.0.1"}


def test_a_value_set_in_the_inventorys_group_vars_all_wins_over_the_wiring():
    """synapse_public_baseurl in group_vars/all, which the wiring would derive from proxy_matrix_domain."""
    config = vps("grep -E '^public_baseurl:' /matrix/synapse/data/homeserver.yaml").stdout.strip()
    assert config.replace("'", "").replace('"', "") == "public_baseurl: https://matrix.switchboard.test:443/", config


def test_the_users_databases_and_the_playbooks_are_all_there():
    """postgres_databases (the user's) and the playbook's own list are added, never replaced."""
    names = set(vps("docker exec postgres psql -U postgres -tAc 'SELECT datname FROM pg_database'").stdout.split())
    assert {"synapse", "extra_app", "whatsapp"} <= names, names
