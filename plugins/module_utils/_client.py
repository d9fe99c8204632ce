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
import math
import os
import stat
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

# Bounds of the connection options: whatever the options, a module run ends in bounded time.
MAX_TIMEOUT = 3600
MAX_RETRIES = 100
# Synapse's answers are small (a page of a listing is well under a megabyte); a bigger one is not Synapse.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
MAX_CA_BYTES = 16 * 1024 * 1024


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


def connection_problem(params):
    """Why the HOMESERVER_ARGS in `params` cannot be used, as 'option: problem', or None."""
    url = params["homeserver_url"]
    if any(char.isspace() or not char.isprintable() for char in url):
        return "homeserver_url: must not contain spaces or control characters, got %r" % url
    try:
        parts = urllib.parse.urlsplit(url)
        usable = (parts.scheme in ("http", "https") and parts.hostname and parts.port != 0
                  and not parts.query and not parts.fragment)
    except ValueError as exc:  # a port that is no number, or out of range
        return "homeserver_url: %r is not a URL: %s" % (url, exc)
    if not usable:
        return ("homeserver_url: must be an http:// or https:// URL with a host and without ? or #, "
                "such as http://127.0.0.1:8008, got %r" % url)
    if not 1 <= params["timeout"] <= MAX_TIMEOUT:
        return "timeout: must be 1 to %d seconds, got %d" % (MAX_TIMEOUT, params["timeout"])
    if params["retries"] > MAX_RETRIES:
        return "retries: must be at most %d, got %d" % (MAX_RETRIES, params["retries"])
    ca_path = params["ca_path"]
    if ca_path is not None:
        try:
            info = os.stat(ca_path)
        except (OSError, ValueError) as exc:
            return "ca_path: cannot read %r: %s" % (ca_path, getattr(exc, "strerror", None) or exc)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CA_BYTES:
            return "ca_path: %s must be a PEM file of CA certificates (a regular file of at most %d bytes)" % (
                ca_path, MAX_CA_BYTES)
    return None


def header_value_problem(value):
    """Why `value` (a token) cannot go into an HTTP header, or None."""
    if not value or any(not 32 < ord(char) < 127 for char in value):
        return "must be printable ASCII without spaces, as tokens are"
    return None


_JSON_NAMES = {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "a list",
               dict: "an object", type(None): "null"}


def answer_problem(answer, fields=None):
    """Why `answer` (decoded JSON) is not an object with `fields`, or None.

    `fields` maps keys to a type or a tuple of types (type(None): may be missing or null),
    or to a list [type] for a list of items of that type.
    """
    if not isinstance(answer, dict):
        return "not a JSON object but %s" % _json_name(answer)
    for key, kinds in (fields or {}).items():
        value = answer.get(key)
        got = _json_name(value) if key in answer else "nothing"
        if isinstance(kinds, list):
            wrong = [item for item in value if not isinstance(item, kinds[0])] if isinstance(value, list) else [value]
            if not wrong:
                continue
            wanted = "a list of %ss" % _JSON_NAMES[kinds[0]].split(" ", 1)[1]
            if isinstance(value, list):
                got = "a list holding %s" % _json_name(wrong[0])
        elif isinstance(value, kinds):
            continue
        else:
            wanted = " or ".join(_JSON_NAMES[kind] for kind in (kinds if isinstance(kinds, tuple) else (kinds,)))
        return "'%s' should be %s, got %s" % (key, wanted, got)
    return None


def _json_name(value):
    return _JSON_NAMES.get(type(value), type(value).__name__)


def unexpected_answer(method, url, problem, status=200):
    """The HomeserverError for an answer that is not what Synapse sends."""
    return HomeserverError(method, url, status=status,
                           error="unexpected answer (%s); is homeserver_url Synapse's client listener?" % problem)


def _read(response, timeout):
    """The body of `response`, all of it within `timeout` seconds; None when it is bigger than MAX_ANSWER_BYTES."""
    deadline = time.monotonic() + timeout
    read = getattr(response, "read1", None) or response.read
    chunks, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the answer took more than %d seconds to arrive" % timeout)
        chunk = read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        chunks.append(chunk)


def _retry_after(answer, default):
    """Seconds to wait after a 429: Synapse's retry_after_ms, within 0 and MAX_RATELIMIT_WAIT."""
    after = answer.get("retry_after_ms")
    if isinstance(after, bool) or not isinstance(after, (int, float)) or isinstance(after, float) and math.isnan(after):
        after = default * 1000
    return max(min(after, MAX_RATELIMIT_WAIT * 1000), 0) / 1000


def _is_refused(exc):
    """True when the TCP connection was refused, so the request surely never reached Synapse."""
    return isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)


def _decode(raw):
    try:
        return json.loads(raw.decode("utf-8")) if raw else {}
    except (ValueError, RecursionError):
        return None


class Homeserver:
    """Talks JSON to one homeserver with the shared connection options of HOMESERVER_ARGS."""

    def __init__(self, module):
        params = module.params
        problem = connection_problem(params)
        if problem:
            module.fail_json(msg=problem)
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

    def request(self, method, path, query=None, body=None, token=None, resend=True, expect=None):
        """Send one request and return the decoded JSON answer; raise HomeserverError on failure.

        Connection errors, 5xx and 429 are retried. resend=False is for requests that must not
        reach Synapse twice (a registration with its one-use nonce): those are retried only when
        the connection was refused or Synapse rate-limited them, when nothing was done.

        The answer must be a JSON object with the fields in `expect` (see answer_problem), of at
        most MAX_ANSWER_BYTES, and arrive within the timeout.
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
                raw = _read(response, self.timeout)
                if raw is None:
                    raise unexpected_answer(method, url, "more than %d bytes" % MAX_ANSWER_BYTES, response.status)
                answer = _decode(raw)
                if answer is None:
                    raise HomeserverError(method, url, status=response.status,
                                          error="answer is not JSON; is homeserver_url Synapse's client listener?")
                problem = answer_problem(answer, expect)
                if problem:
                    raise unexpected_answer(method, url, problem, response.status)
                return answer
            except urllib.error.HTTPError as exc:
                try:
                    answer = _decode(_read(exc, self.timeout) or b"")
                except (OSError, http.client.HTTPException):
                    answer = None
                if not isinstance(answer, dict):
                    answer = {}
                errcode, error = (value if isinstance(value, str) else None
                                  for value in (answer.get("errcode"), answer.get("error")))
                failure = HomeserverError(method, url, status=exc.code, errcode=errcode,
                                          error=error or exc.reason, attempts=attempt)
                retryable = exc.code == 429 or (exc.code >= 500 and resend)
                if last or not retryable:
                    raise failure
                if exc.code == 429:
                    wait = _retry_after(answer, wait)
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
