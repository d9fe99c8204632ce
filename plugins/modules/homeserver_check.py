#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: homeserver_check
short_description: Check a deployed homeserver as clients and other servers see it
version_added: 0.1.0
description:
  - Runs on the homeserver's host and checks what a deploy is for - Synapse answers; with the
    reverse proxy, its certificate is valid for the Matrix domain; the client and server
    well-known files say what they should; the federation endpoint answers on the port or
    delegation in use, with this server's signing key.
  - Every HTTPS request goes to O(address) (the host itself by default) with the real domain
    as TLS server name and Host header, so it tests this host's proxy and certificate whatever
    DNS says. The certificate is verified - against the system's trust store, or O(ca_file) for
    an internal CA - and never skipped.
  - All checks run; the module fails if any failed, with one line per failure saying what
    was found, what was expected and how to fix it.
author:
  - Switchboard developers (@switchboard)
extends_documentation_fragment:
  - switchboard.matrix._attributes
attributes:
  check_mode:
    support: full
    details:
      - It only reads, in check mode too.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  server_name:
    description: The homeserver's server name (C(synapse_server_name)).
    type: str
    required: true
  synapse_url:
    description: Synapse as the host reaches it directly (its published loopback port).
    type: str
    default: http://127.0.0.1:8008
  matrix_domain:
    description:
      - The domain clients and servers connect to (C(proxy_matrix_domain)). Empty - no proxy,
        only Synapse is checked.
    type: str
    default: ""
  federation_mode:
    description:
      - How other servers reach this one (C(proxy_federation_mode)), or C(off) when federation
        is off (C(synapse_federation_enabled=false)) - then the federation API must answer 404.
    type: str
    choices: [port, wellknown, "off"]
    default: port
  server_wellknown_served:
    description:
      - Whether this host serves C(https://<server_name>/.well-known/matrix/server). When it does
        not (the file lives on another web server), that file is not checked here and the
        result says what it must hold.
    type: bool
    default: false
  address:
    description: Where the proxy is reached from this host.
    type: str
    default: 127.0.0.1
  https_port:
    description: The proxy's HTTPS port on O(address).
    type: int
    default: 443
  federation_port:
    description: The proxy's federation port on O(address) (used in C(port) mode).
    type: int
    default: 8448
  public_federation_port:
    description: The federation port other servers are told (in C(port) mode).
    type: int
    default: 8448
  ca_file:
    description:
      - A CA certificate to verify the proxy's certificate with, instead of the system's trust
        store (the internal CA's root in C(proxy_tls_mode=internal)).
    type: path
  timeout:
    description: Seconds each request may take.
    type: int
    default: 10
"""

EXAMPLES = r"""
- name: Check the homeserver from the outside in
  switchboard.matrix.homeserver_check:
    server_name: example.org
    matrix_domain: matrix.example.org
    federation_mode: port
"""

RETURN = r"""
checks:
  description: Each check with its result.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "certificate of matrix.example.org", "ok": true, "detail": "valid"}]
notes:
  description: What could not be checked from here, with what it must hold.
  returned: always
  type: list
  elements: str
"""

import http.client
import json
import socket
import ssl

from ansible.module_utils.basic import AnsibleModule


class Problem(Exception):
    """A check failed; the message says what was found and how to fix it."""


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address, with `server_name` for SNI, the Host header and the
    certificate's name check."""

    def __init__(self, address, port, server_name, context, timeout):
        super().__init__(server_name, port, context=context, timeout=timeout)
        self._address, self._server_name, self._tls = address, server_name, context

    def connect(self):
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self._server_name)


class Checker:
    def __init__(self, params):
        self.params = params
        self.checks, self.notes = [], []
        self.context = ssl.create_default_context(cafile=params["ca_file"] or None)

    def run(self, name, check):
        try:
            detail = check()
            self.checks.append(dict(name=name, ok=True, detail=detail))
        except Problem as problem:
            self.checks.append(dict(name=name, ok=False, detail=str(problem)))

    def get(self, url_name, connection, path, expect=200):
        try:
            connection.request("GET", path, headers={"Accept": "application/json"})
            response = connection.getresponse()
            body = response.read(1024 * 1024)
        except ssl.SSLCertVerificationError as err:
            raise Problem("%s: the certificate is not valid: %s" % (url_name, err.verify_message or err)) from None
        except (OSError, http.client.HTTPException) as err:
            raise Problem("%s: no answer: %s" % (url_name, err)) from None
        finally:
            connection.close()
        if response.status != expect:
            raise Problem("%s: HTTP %d, expected %d" % (url_name, response.status, expect))
        if expect != 200:
            return None, response
        try:
            data = json.loads(body)
        except ValueError:
            raise Problem("%s: the answer is not JSON: %r" % (url_name, body[:200])) from None
        return data, response

    def https(self, domain, port, path, expect=200):
        url = "https://%s%s%s" % (domain, "" if port == 443 else ":%d" % port, path)
        connection = PinnedHTTPSConnection(self.params["address"], port, domain, self.context, self.params["timeout"])
        return url, self.get(url, connection, path, expect)

    def synapse(self):
        base = self.params["synapse_url"].rstrip("/")
        host_port = base.split("://", 1)[1]
        host, _colon, port = host_port.partition(":")
        connection = http.client.HTTPConnection(host, int(port or 80), timeout=self.params["timeout"])
        data, _response = self.get(base + "/_matrix/client/versions", connection, "/_matrix/client/versions")
        if not data.get("versions"):
            raise Problem("%s/_matrix/client/versions: no versions listed" % base)
        return "answers (%s)" % ", ".join(data["versions"][-2:])

    def certificate_and_client_api(self):
        domain = self.params["matrix_domain"]
        try:
            url, (data, _response) = self.https(domain, self.params["https_port"], "/_matrix/client/versions")
        except Problem as problem:
            raise Problem("%s. The certificate comes from the proxy (docker logs caddy): with ACME, the DNS record "
                          "of %s must point at this host and ports 80 and 443 be open" % (problem, domain)) from None
        if not data.get("versions"):
            raise Problem("%s: no versions listed" % url)
        return "valid, and Synapse answers through the proxy"

    def client_wellknown(self):
        domain = self.params["matrix_domain"]
        url, (data, response) = self.https(domain, self.params["https_port"], "/.well-known/matrix/client")
        expected = "https://%s" % domain
        found = ((data.get("m.homeserver") or {}).get("base_url") or "") if isinstance(data, dict) else ""
        if found.rstrip("/") != expected:
            raise Problem('%s: m.homeserver.base_url is %s, expected "%s"' % (url, json.dumps(found), expected))
        if response.getheader("Access-Control-Allow-Origin") != "*":
            raise Problem("%s: no 'Access-Control-Allow-Origin: *' header: web clients cannot read it" % url)
        return "points clients at %s" % expected

    def expected_server(self):
        port = self.params["public_federation_port"] if self.params["federation_mode"] == "port" else 443
        return "%s:%d" % (self.params["matrix_domain"], port)

    def server_wellknown(self):
        url, (data, _response) = self.https(self.params["server_name"], self.params["https_port"],
                                            "/.well-known/matrix/server")
        found = data.get("m.server") if isinstance(data, dict) else None
        if found != self.expected_server():
            raise Problem('%s: m.server is %s, expected "%s": other servers would not find this one. '
                          "Run site.yml to put back the proxy's configuration"
                          % (url, json.dumps(found), self.expected_server()))
        return "delegates to %s" % found

    def federation(self):
        domain = self.params["matrix_domain"]
        port = self.params["federation_port"] if self.params["federation_mode"] == "port" else self.params["https_port"]
        url, (data, _response) = self.https(domain, port, "/_matrix/federation/v1/version")
        if not isinstance(data, dict) or "server" not in data:
            raise Problem("%s: not a federation answer: %s" % (url, json.dumps(data)[:200]))
        url, (keys, _response) = self.https(domain, port, "/_matrix/key/v2/server")
        if not isinstance(keys, dict) or keys.get("server_name") != self.params["server_name"] or not keys.get("verify_keys"):
            raise Problem('%s: server_name %s with %d key(s), expected "%s" with its signing key'
                          % (url, json.dumps(keys.get("server_name") if isinstance(keys, dict) else None),
                             len(keys.get("verify_keys") or {}) if isinstance(keys, dict) else 0, self.params["server_name"]))
        return "answers on %s:%d with the signing key of %s" % (domain, port, self.params["server_name"])

    def federation_closed(self):
        domain = self.params["matrix_domain"]
        for path in ("/_matrix/federation/v1/version", "/_matrix/key/v2/server"):
            try:
                self.https(domain, self.params["https_port"], path, expect=404)
            except Problem as problem:
                raise Problem("%s, but synapse_federation_enabled is false. Run site.yml to put back the proxy's "
                              "configuration" % problem) from None
        return "closed: the federation API answers 404 on %s" % domain

    def all(self):
        self.run("Synapse", self.synapse)
        domain = self.params["matrix_domain"]
        if not domain:
            return
        self.run("certificate of %s" % domain, self.certificate_and_client_api)
        self.run("https://%s/.well-known/matrix/client" % domain, self.client_wellknown)
        if self.params["federation_mode"] == "off":
            self.run("federation of %s" % self.params["server_name"], self.federation_closed)
            return
        if self.params["server_wellknown_served"] or self.params["server_name"] == domain:
            self.run("https://%s/.well-known/matrix/server" % self.params["server_name"], self.server_wellknown)
        else:
            self.notes.append('https://%s/.well-known/matrix/server is served elsewhere: it must answer '
                              '{"m.server": "%s"} (docs/INSTALL.md, step 3)' % (self.params["server_name"], self.expected_server()))
        self.run("federation of %s" % self.params["server_name"], self.federation)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            server_name=dict(type="str", required=True),
            synapse_url=dict(type="str", default="http://127.0.0.1:8008"),
            matrix_domain=dict(type="str", default=""),
            federation_mode=dict(type="str", choices=["port", "wellknown", "off"], default="port"),
            server_wellknown_served=dict(type="bool", default=False),
            address=dict(type="str", default="127.0.0.1"),
            https_port=dict(type="int", default=443),
            federation_port=dict(type="int", default=8448),
            public_federation_port=dict(type="int", default=8448),
            ca_file=dict(type="path"),
            timeout=dict(type="int", default=10),
        ),
        supports_check_mode=True,
    )
    if not module.params["synapse_url"].startswith("http://") or "/" in module.params["synapse_url"][7:].rstrip("/"):
        module.fail_json(msg="synapse_url must be http://host[:port], got %r" % module.params["synapse_url"])
    try:
        checker = Checker(module.params)
    except (OSError, ssl.SSLError) as err:
        module.fail_json(msg="ca_file %s cannot be used: %s" % (module.params["ca_file"], err))
    checker.all()
    failed = [check for check in checker.checks if not check["ok"]]
    if failed:
        module.fail_json(msg="The homeserver check found %d problem(s):\n%s"
                         % (len(failed), "\n".join("- %s: %s" % (check["name"], check["detail"]) for check in failed)),
                         checks=checker.checks, notes=checker.notes)
    module.exit_json(changed=False, checks=checker.checks, notes=checker.notes)


if __name__ == "__main__":
    main()
