"""Fixtures for the end-to-end checks with a real Matrix client (matrix-nio).

They run from the test machine against the homeserver that a Molecule scenario
published on 127.0.0.1, and read the registration secret from the VPS through
testinfra's `host` fixture.
"""
from __future__ import annotations

import os

import pytest
import yaml


@pytest.fixture(scope="session")
def homeserver_url():
    return os.environ.get("SWITCHBOARD_HOMESERVER_URL", "http://127.0.0.1:18008")


@pytest.fixture(scope="module")
def homeserver_config(host):
    return yaml.safe_load(host.file("/matrix/synapse/data/homeserver.yaml").content_string)
