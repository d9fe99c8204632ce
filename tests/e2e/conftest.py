"""Fixtures for the end-to-end checks with a real Matrix client (matrix-nio).

They run on the test machine against the homeserver a Molecule scenario published on
127.0.0.1, and read what they need from the VPS through testinfra's `host` fixture.
A scenario describes its endpoint with environment variables (molecule.yml, verifier.env):
  SWITCHBOARD_HOMESERVER_URL        client API base URL (default http://127.0.0.1:18008)
  SWITCHBOARD_RESOLVE_TO_LOCALHOST  comma-separated host names that resolve to 127.0.0.1
                                    in this test process only (no DNS, no /etc/hosts edits)
  SWITCHBOARD_CA_IN_VPS             path in the VPS of the CA certificate to trust for TLS
"""
from __future__ import annotations

import json
import os
import socket
import ssl
import urllib.error
import urllib.request

import pytest
import yaml

LOCAL_NAMES = {name for name in os.environ.get("SWITCHBOARD_RESOLVE_TO_LOCALHOST", "").split(",") if name}


@pytest.fixture(scope="session", autouse=True)
def resolve_test_names_to_localhost():
    if not LOCAL_NAMES:
        yield
        return
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real_getaddrinfo("127.0.0.1" if host in LOCAL_NAMES else host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    yield
    socket.getaddrinfo = real_getaddrinfo


@pytest.fixture(scope="session")
def homeserver_url():
    return os.environ.get("SWITCHBOARD_HOMESERVER_URL", "http://127.0.0.1:18008")


@pytest.fixture(scope="module")
def homeserver_config(host):
    return yaml.safe_load(host.file("/matrix/synapse/data/homeserver.yaml").content_string)


@pytest.fixture(scope="module")
def tls_context(host, tmp_path_factory):
    """An SSL context trusting the scenario's CA, or None for plain HTTP."""
    ca_in_vps = os.environ.get("SWITCHBOARD_CA_IN_VPS")
    if not ca_in_vps:
        return None
    ca_file = tmp_path_factory.mktemp("ca") / "root.crt"
    ca_file.write_text(host.file(ca_in_vps).content_string)
    return ssl.create_default_context(cafile=str(ca_file))


@pytest.fixture(scope="module")
def http(tls_context):
    """http(url, body=None, method=None, headers=None) -> (status, headers, parsed JSON or None)."""
    def request(url, body=None, method=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=15, context=tls_context) as response:
                status, response_headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as err:
            status, response_headers, raw = err.code, err.headers, err.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return status, response_headers, parsed
    return request
