"""homeserver_check against real TLS on 127.0.0.1: a test CA, a proxy that answers like Caddy's
configuration does, and a Synapse; each fault is one a self-hoster meets."""
from __future__ import annotations

import datetime
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.switchboard.matrix.plugins.modules import homeserver_check
from .utils import run_module

SERVER, DOMAIN = "example.test", "matrix.example.test"


def certificate(subject, issuer_key, issuer_name, key, names=(), ca=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)]), ca_key, ca_name, key,
                       names=[DOMAIN, SERVER])
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "leaf.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return directory


class Site:
    """What the proxy and Synapse answer, by Host header and path; tests change it."""

    def __init__(self):
        self.answers = {
            (DOMAIN, "/_matrix/client/versions"): {"versions": ["v1.11", "v1.12"]},
            (DOMAIN, "/.well-known/matrix/client"): {"m.homeserver": {"base_url": "https://%s" % DOMAIN}},
            (SERVER, "/.well-known/matrix/server"): {"m.server": "%s:8448" % DOMAIN},
            (DOMAIN, "/_matrix/federation/v1/version"): {"server": {"name": "Synapse", "version": "1.163.2"}},
            (DOMAIN, "/_matrix/key/v2/server"): {"server_name": SERVER, "verify_keys": {"ed25519:a": {"key": "k"}}},
            ("synapse", "/_matrix/client/versions"): {"versions": ["v1.11", "v1.12"]},
        }
        self.cors = True


def serve(site, context=None):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # pylint: disable=invalid-name
            host = "synapse" if context is None else self.headers["Host"].split(":")[0]
            answer = site.answers.get((host, self.path))
            data = json.dumps(answer).encode()
            self.send_response(200 if answer is not None else 404)
            self.send_header("Content-Type", "application/json")
            if site.cors and self.path.startswith("/.well-known/matrix/client"):
                self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # pylint: disable=arguments-differ
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture
def stack(pki):
    site = Site()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pki / "leaf.pem", pki / "leaf.key")
    proxy, proxy_port = serve(site, tls)
    synapse, synapse_port = serve(site)
    args = dict(server_name=SERVER, matrix_domain=DOMAIN, federation_mode="port", server_wellknown_served=True,
                https_port=proxy_port, federation_port=proxy_port, ca_file=str(pki / "ca.pem"),
                synapse_url="http://127.0.0.1:%d" % synapse_port, timeout=5)
    yield site, args
    for server in (proxy, synapse):
        server.shutdown()
        server.server_close()


def test_a_good_deploy_passes_every_check(stack):
    _site, args = stack
    result = run_module(homeserver_check.main, args)
    assert not result.get("failed"), result
    assert [check["ok"] for check in result["checks"]] == [True] * 5
    assert result["changed"] is False and result["notes"] == []


def test_a_broken_server_wellknown_is_named_with_what_it_should_say(stack):
    site, args = stack
    site.answers[(SERVER, "/.well-known/matrix/server")] = {"m.server": "%s:443" % DOMAIN}
    result = run_module(homeserver_check.main, args)
    assert result["failed"]
    assert ('.well-known/matrix/server: m.server is "%s:443", expected "%s:8448"' % (DOMAIN, DOMAIN)) in result["msg"]
    assert "1 problem" in result["msg"]


def test_an_untrusted_certificate_fails_and_says_where_to_look(stack):
    _site, args = stack
    result = run_module(homeserver_check.main, dict(args, ca_file=None))
    assert result["failed"] and "the certificate is not valid" in result["msg"] and "docker logs caddy" in result["msg"]


def test_a_client_wellknown_without_cors_fails(stack):
    site, args = stack
    site.cors = False
    result = run_module(homeserver_check.main, args)
    assert result["failed"] and "Access-Control-Allow-Origin" in result["msg"]


def test_keys_of_another_server_fail(stack):
    site, args = stack
    site.answers[(DOMAIN, "/_matrix/key/v2/server")] = {"server_name": "other.test", "verify_keys": {}}
    result = run_module(homeserver_check.main, args)
    assert result["failed"] and 'server_name "other.test" with 0 key(s), expected "%s"' % SERVER in result["msg"]


def test_a_wellknown_served_elsewhere_is_a_note_not_a_check(stack):
    site, args = stack
    del site.answers[(SERVER, "/.well-known/matrix/server")]
    result = run_module(homeserver_check.main, dict(args, server_wellknown_served=False))
    assert not result.get("failed"), result
    assert result["notes"] == ['https://%s/.well-known/matrix/server is served elsewhere: it must answer '
                               '{"m.server": "%s:8448"} (docs/INSTALL.md, step 3)' % (SERVER, DOMAIN)]


def test_without_the_proxy_only_synapse_is_checked(stack):
    site, args = stack
    site.answers.clear()
    site.answers[("synapse", "/_matrix/client/versions")] = {"versions": ["v1.12"]}
    result = run_module(homeserver_check.main, dict(args, matrix_domain=""))
    assert not result.get("failed") and [check["name"] for check in result["checks"]] == ["Synapse"]


def test_synapse_down_fails(stack):
    _site, args = stack
    result = run_module(homeserver_check.main, dict(args, synapse_url="http://127.0.0.1:1"))
    assert result["failed"] and "Synapse: http://127.0.0.1:1/_matrix/client/versions: no answer" in result["msg"]


def test_federation_off_wants_the_federation_api_closed(stack):
    site, args = stack
    result = run_module(homeserver_check.main, dict(args, federation_mode="off"))
    # The federation API still answers: federation is not off from the outside.
    assert result["failed"] and "/_matrix/federation/v1/version: HTTP 200, expected 404" in result["msg"]
    assert "synapse_federation_enabled is false" in result["msg"]
    for path in ("/_matrix/federation/v1/version", "/_matrix/key/v2/server", "/.well-known/matrix/server"):
        site.answers.pop((DOMAIN, path), None)
    site.answers.pop((SERVER, "/.well-known/matrix/server"))
    result = run_module(homeserver_check.main, dict(args, federation_mode="off"))
    assert not result.get("failed"), result
    assert result["checks"][-1]["detail"] == "closed: the federation API answers 404 on %s" % DOMAIN
    assert result["notes"] == []
