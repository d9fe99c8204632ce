"""The three VPS hosts, each by name, and the Matrix client fixtures (tests/e2e/matrix_fixtures.py).

testinfra runs a test once per inventory host when the test uses its `host` fixture. Here
`host` is the homeserver VPS, named: the shared client fixtures read Synapse's config and
register users there, each test runs once, and reaches the other hosts through `vps`.
"""
from __future__ import annotations

import os
import sys

import pytest
import testinfra

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "e2e"))

# pylint: disable=unused-import,wrong-import-position
from matrix_fixtures import (  # noqa: E402,F401
    homeserver_config, homeserver_url, http, register_user, resolve_test_names_to_localhost, tls_context)

# Each part's VPS (molecule.yml's platforms).
VPS = {"db": "switchboard-vps-db", "hs": "switchboard-vps-hs", "br": "switchboard-vps-br"}


@pytest.fixture(scope="session")
def vps():
    return {part: testinfra.get_host("docker://" + name) for part, name in VPS.items()}


@pytest.fixture(scope="module")
def host(vps):  # pylint: disable=redefined-outer-name
    """Synapse's VPS, in place of testinfra's one-run-per-host fixture."""
    return vps["hs"]
