"""Synapse as the roles left it on the VPS, checked from outside with testinfra."""
from __future__ import annotations

import json

import pytest
import yaml

DATA = "/matrix/synapse/data"


@pytest.fixture(scope="module")
def synapse(host):
    return json.loads(host.check_output("docker inspect synapse"))[0]


def test_runs_as_991(synapse):
    assert synapse["State"]["Running"] is True
    assert synapse["Config"]["User"] == "991:991"


def test_restart_policy_and_hardening(synapse):
    assert synapse["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert synapse["HostConfig"]["Privileged"] is False
    assert "no-new-privileges:true" in synapse["HostConfig"]["SecurityOpt"]


def test_on_the_matrix_network(synapse):
    assert list(synapse["NetworkSettings"]["Networks"]) == ["matrix"]


def test_started_with_synapses_own_entrypoint(synapse):
    assert synapse["Config"]["Entrypoint"] == ["python", "-m", "synapse.app.homeserver"]


def test_homeserver_yaml_is_private(host):
    config = host.file(f"{DATA}/homeserver.yaml")
    assert config.uid == 991
    assert config.mode == 0o600


def test_signing_key_is_private(host):
    key = host.file(f"{DATA}/switchboard.test.signing.key")
    assert key.uid == 991
    assert key.mode == 0o600


def test_registration_closed_and_secret_kept(host):
    config = yaml.safe_load(host.file(f"{DATA}/homeserver.yaml").content_string)
    assert config["enable_registration"] is False
    assert config["server_name"] == "switchboard.test"
    assert len(config["registration_shared_secret"]) >= 32


def test_health_answers_inside_the_vps(host):
    assert host.check_output("curl -fsS http://127.0.0.1:8008/health") == "OK"
