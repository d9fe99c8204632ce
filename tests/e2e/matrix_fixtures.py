"""Fixtures for the end-to-end checks with a real Matrix client (matrix-nio); see conftest.py.

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
import shlex
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


REGISTER_IN_VPS = """
import hashlib, hmac, json, sys, urllib.request
secret, localpart, password = sys.stdin.read().split("\\n")[:3]
endpoint = "http://127.0.0.1:8008/_synapse/admin/v1/register"
nonce = json.load(urllib.request.urlopen(endpoint, timeout=10))["nonce"]
mac = hmac.new(secret.encode(), b"\\0".join([nonce.encode(), localpart.encode(), password.encode(), b"notadmin"]),
               hashlib.sha1).hexdigest()
body = json.dumps({"nonce": nonce, "username": localpart, "password": password, "admin": False, "mac": mac})
request = urllib.request.Request(endpoint, data=body.encode(), headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(request, timeout=10))["user_id"])
"""


@pytest.fixture(scope="module")
def register_user(host, homeserver_config):
    """Shared-secret registration (Synapse's admin API docs; not our module) from inside the VPS.

    The admin API is reachable only on the server's loopback, as an admin on the server would use it.
    Returns the new user's ID.
    """
    def register(localpart, password):
        stdin = "\n".join([homeserver_config["registration_shared_secret"], localpart, password, ""])
        result = host.run(f"python3 -c {shlex.quote(REGISTER_IN_VPS)} <<'EOF'\n{stdin}EOF")
        assert result.rc == 0, result.stderr
        return result.stdout.strip()
    return register


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
