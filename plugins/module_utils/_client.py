# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to this collection: may change without notice.

"""A small JSON client for Synapse's client and admin APIs, built on Ansible's open_url.

Modules run on the managed host, which may not have `requests`; open_url is always there.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import string
import time
import urllib.error
import urllib.parse

from ansible.module_utils.urls import open_url

HOMESERVER_ARGS = dict(
    homeserver_url=dict(type="str", required=True),
    timeout=dict(type="int", default=10),
    retries=dict(type="int", default=5),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
)

# What Synapse accepts in the localpart of a new user ID (synapse.types.MXID_LOCALPART_ALLOWED_CHARACTERS).
LOCALPART_CHARACTERS = frozenset(string.ascii_lowercase + string.digits + "._=-/+")
LOCALPART_RULE = "lowercase letters a-z, digits 0-9 and the characters . _ = - / + only, at least one character"

# Backoff between attempts: short and growing, so a homeserver that is still starting gets a few
# seconds, while a dead one fails the task quickly.
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 5.0
# A 429 asks us to wait retry_after_ms; honour it, but never hang a play for minutes.
MAX_RATELIMIT_WAIT = 30.0

UNREACHABLE_HINT = "Is the homeserver running, and is homeserver_url right?"


class HomeserverError(Exception):
    """A request that failed for good: an HTTP error answer, or no answer after every attempt."""

    def __init__(self, method, url, status=None, errcode=None, error=None, reason=None, attempts=1):
        self.method = method
        self.url = url
        self.status = status
        self.errcode = errcode
        self.error = error
        self.reason = reason
        self.attempts = attempts
        super().__init__(self.describe())

    def describe(self):
        where = "%s %s failed" % (self.method, self.url)
        if self.status is None:
            tries = " after %d attempts" % self.attempts if self.attempts > 1 else ""
            return "%s%s: %s" % (where, tries, self.reason)
        detail = ": ".join(str(part) for part in (self.errcode, self.error) if part)
        return "%s: HTTP %s %s" % (where, self.status, detail) if detail else "%s: HTTP %s" % (where, self.status)


def registration_mac(shared_secret, nonce, user, password, admin=False, user_type=None):
    """Hex HMAC-SHA1 that Synapse's shared-secret registration expects.

    Over nonce NUL user NUL password NUL "admin"|"notadmin" [NUL user_type], keyed with the secret.
    """
    mac = hmac.new(shared_secret.encode("utf-8"), digestmod=hashlib.sha1)
    parts = [nonce, user, password, "admin" if admin else "notadmin"]
    if user_type:
        parts.append(user_type)
    mac.update(b"\x00".join(part.encode("utf-8") for part in parts))
    return mac.hexdigest()


def localpart_problem(localpart):
    """Why Synapse would refuse this localpart for a new user, or None if it would not."""
    if not localpart:
        return "the localpart is empty; allowed: %s" % LOCALPART_RULE
    bad = sorted(set(c for c in localpart if c not in LOCALPART_CHARACTERS))
    if bad:
        return "the localpart %r has characters Synapse does not allow (%s); allowed: %s" % (
            localpart, " ".join(repr(c) for c in bad), LOCALPART_RULE)
    return None


def _is_refused(exc):
    """True when the TCP connection was refused, so the request surely never reached Synapse."""
    return isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)


def _decode(raw):
    try:
        return json.loads(raw.decode("utf-8")) if raw else {}
    except ValueError:
        return None


class Homeserver:
    """Talks JSON to one homeserver with the shared connection options of HOMESERVER_ARGS."""

    def __init__(self, module):
        params = module.params
        self.module = module
        self.base_url = params["homeserver_url"].rstrip("/")
        self.timeout = params["timeout"]
        self.attempts = max(params["retries"], 0) + 1
        self.validate_certs = params["validate_certs"]
        self.ca_path = params["ca_path"]

    def url(self, path, query=None):
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        return url

    def request(self, method, path, query=None, body=None, token=None, resend=True):
        """Send one request and return the decoded JSON answer; raise HomeserverError on failure.

        Connection errors, 5xx and 429 are retried. resend=False is for requests that must not
        reach Synapse twice (a registration with its one-use nonce): those are retried only when
        the connection was refused or Synapse rate-limited them, when nothing was done.
        """
        url = self.url(path, query)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Bearer " + token

        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            wait = min(FIRST_BACKOFF * 2 ** (attempt - 1), MAX_BACKOFF)
            try:
                response = open_url(
                    url, data=data, headers=headers, method=method, timeout=self.timeout,
                    validate_certs=self.validate_certs, ca_path=self.ca_path,
                    http_agent="switchboard.matrix", follow_redirects="safe")
                answer = _decode(response.read())
                if answer is None:
                    raise HomeserverError(method, url, status=response.status,
                                          error="answer is not JSON; is homeserver_url Synapse's client listener?")
                return answer
            except urllib.error.HTTPError as exc:
                answer = _decode(exc.read()) or {}
                if not isinstance(answer, dict):
                    answer = {}
                failure = HomeserverError(method, url, status=exc.code, errcode=answer.get("errcode"),
                                          error=answer.get("error") or exc.reason, attempts=attempt)
                retryable = exc.code == 429 or (exc.code >= 500 and resend)
                if last or not retryable:
                    raise failure
                if exc.code == 429:
                    wait = min(float(answer.get("retry_after_ms") or wait * 1000) / 1000, MAX_RATELIMIT_WAIT)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", None) or exc
                if last or not (resend or _is_refused(exc)):
                    raise HomeserverError(method, url, reason=reason, attempts=attempt)
            time.sleep(wait)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def fail(self, error, hint=None, **result):
        """Fail the module with the one message format of this collection."""
        msg = str(error)
        if error.status is None:
            hint = hint or UNREACHABLE_HINT
        if hint:
            msg = "%s. %s" % (msg.rstrip("."), hint)
        self.module.fail_json(msg=msg, status=error.status, errcode=error.errcode, url=error.url, **result)
