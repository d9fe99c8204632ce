"""The production path: Synapse on PostgreSQL behind Caddy, checked from outside."""
from __future__ import annotations

import json
import secrets

import pytest
import yaml
from playbook_runs import ansible_playbook

CLIENT = "https://matrix.switchboard.test:28443"
BASE_DOMAIN = "https://switchboard.test:28443"
FEDERATION = "https://matrix.switchboard.test:28448"


def inspect(host, name):
    return json.loads(host.check_output(f"docker inspect {name}"))[0]


def test_client_wellknown_with_cors(http):
    status, headers, body = http(f"{BASE_DOMAIN}/.well-known/matrix/client")
    assert status == 200
    assert body["m.homeserver"]["base_url"] == "https://matrix.switchboard.test"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Content-Type"].startswith("application/json")


def test_server_wellknown_points_at_federation(http):
    status, _headers, body = http(f"{BASE_DOMAIN}/.well-known/matrix/server")
    assert status == 200
    assert body == {"m.server": "matrix.switchboard.test:8448"}


def test_federation_keys_on_the_federation_port(http):
    status, _headers, body = http(f"{FEDERATION}/_matrix/key/v2/server")
    assert status == 200
    assert body["server_name"] == "switchboard.test"
    assert body["verify_keys"]


@pytest.mark.parametrize("base", [CLIENT, FEDERATION])
def test_admin_api_is_refused_from_outside(http, base):
    status = http(f"{base}/_synapse/admin/v1/server_version")[0]
    assert status in (403, 404)


def test_postgres_is_not_published(host):
    assert not inspect(host, "postgres")["HostConfig"]["PortBindings"]


def test_synapse_is_published_on_loopback_only(host):
    bindings = inspect(host, "synapse")["HostConfig"]["PortBindings"]
    assert {binding["HostIp"] for ports in bindings.values() for binding in ports} == {"127.0.0.1"}


@pytest.mark.parametrize("name", ["synapse", "postgres", "caddy"])
def test_containers_are_hardened(host, name):
    container = inspect(host, name)
    assert container["HostConfig"]["Privileged"] is False
    assert "no-new-privileges:true" in container["HostConfig"]["SecurityOpt"]
    assert container["HostConfig"]["CapDrop"] == ["ALL"]
    assert container["Config"]["User"] not in ("", "0", "root", "0:0")
    assert container["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"


def test_users_live_in_postgresql(host, register_user, homeserver_config):
    """Register a user, then find it in PostgreSQL itself."""
    assert homeserver_config["database"]["name"] == "psycopg2"
    assert not host.file("/matrix/synapse/data/homeserver.db").exists
    localpart = f"pg-{secrets.token_hex(4)}"
    register_user(localpart, secrets.token_urlsafe(12))
    found = host.check_output(
        f"docker exec postgres psql -U postgres -d synapse -tAc \"SELECT name FROM users WHERE name = '@{localpart}:switchboard.test'\"")
    assert found.strip() == f"@{localpart}:switchboard.test"


def test_synapse_database_has_c_collation(host):
    row = host.check_output("docker exec postgres psql -U postgres -tAc "
                            "\"SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = 'synapse'\"")
    assert row.strip() == "UTF8|C|C"


def test_secrets_are_private(host):
    for path in ("/matrix/synapse/data/homeserver.yaml", "/matrix/secrets/postgres-synapse"):
        assert host.file(path).mode == 0o600, path


def test_go_telegram_config_passes_upstreams_start_checks(host, http):
    """The default (Go) Telegram flavor's rendered config, started by the stand-in that applies
    mautrix-telegram v0.2608.0's config checks: it is up (Synapse's ping reaches it) and its
    generated values are the kept ones, in the places bridgev2 reads them."""
    token = host.file("/matrix/secrets/bridge-telegram-as-token").content_string.strip()
    status, _headers, body = http("https://matrix.switchboard.test:28443/_matrix/client/v1/appservice/telegram/ping",
                                  body={}, headers={"Authorization": f"Bearer {token}"})
    assert status == 200, body
    config = yaml.safe_load(host.run("cat /matrix/bridges/telegram/config.yaml").stdout)
    assert config["database"]["uri"].startswith("postgres://telegram:")
    assert config["network"]["api_id"] == 94575
    for path, secret in ((("provisioning", "shared_secret"), "provisioning-secret"),
                         (("encryption", "pickle_key"), "pickle-key"),
                         (("public_media", "signing_key"), "public-media-key")):
        assert config[path[0]][path[1]] == host.file(f"/matrix/secrets/bridge-telegram-{secret}").content_string.strip()
    log = host.check_output("docker logs mautrix-telegram 2>&1")
    assert "stand-in for go.mau.fi/mautrix-telegram@v0.2608.0" in log and "config accepted" in log


def test_check_playbook_catches_a_broken_wellknown_and_site_repairs_it(host):
    """playbooks/check.yml passes on the deployed server, names a server well-known edited by hand
    with what it should say, and site.yml (whose own last step is the same check) puts it right."""
    good = ansible_playbook("playbooks/check.yml", "-v")
    assert good.rc == 0, good.output[-4000:]
    assert "delegates to matrix.switchboard.test:8448" in good.output
    assert "with the signing key of switchboard.test" in good.output

    caddyfile = "/matrix/proxy/etc/Caddyfile"
    original = host.file(caddyfile).content_string
    served = '"m.server": "matrix.switchboard.test:8448"'
    assert original.count(served) == 1
    host.run_expect([0], f"sed -i 's/{served}/{served.replace(':8448', ':9999')}/' {caddyfile}")
    host.run_expect([0], "docker exec caddy caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile")

    broken = ansible_playbook("playbooks/check.yml")
    assert broken.rc != 0
    assert ('https://switchboard.test/.well-known/matrix/server: m.server is \\"matrix.switchboard.test:9999\\", '
            'expected \\"matrix.switchboard.test:8448\\"') in broken.output, broken.output[-4000:]

    repaired = ansible_playbook("site.yml")
    assert repaired.rc == 0, repaired.output[-4000:]
    assert host.file(caddyfile).content_string == original
    assert ansible_playbook("playbooks/check.yml").rc == 0
