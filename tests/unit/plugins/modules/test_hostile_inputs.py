# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hostile and odd inputs: every module answers with a message naming the option or the file.

Never a traceback, never a hang, never reading without end. Each case runs the module in a
child process that is killed after LIMIT seconds and may use little memory, so a case that
hangs or reads /dev/zero fails the test instead of stalling the suite.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import socket
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.switchboard.matrix.plugins.modules import (
    appservice_registration,
    config_file,
    deployment_state,
    stored_secrets,
    synapse_appservices,
    synapse_config,
    synapse_media_purge,
    synapse_user,
)
from .utils import run_module
from ..module_utils.test__fingerprint import FakeDocker

LIMIT = 10  # seconds a module may run
EXTRA_MEMORY = 512 * 1024 * 1024  # bytes of address space a module may add
DEEP = 20000  # levels of nesting in a hostile file


def run_bounded(main, args, check_mode=False):
    """Run a module's main() with `args` in a child process: (result, seconds).

    An exception that escapes the module comes back as result["uncaught"]; a module that
    runs longer than LIMIT is killed and fails the test.
    """
    with open("/proc/self/statm", encoding="ascii") as statm:
        memory = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE") + EXTRA_MEMORY
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.close(read_end)
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            try:
                result = run_module(main, args, check_mode)
            except BaseException:  # pylint: disable=broad-except
                result = {"uncaught": traceback.format_exc()}
            data = json.dumps(result, default=repr).encode()
            while data:
                data = data[os.write(write_end, data):]
        finally:
            os._exit(0)  # pylint: disable=protected-access
    os.close(write_end)
    chunks = []
    try:
        while True:
            ready = select.select([read_end], [], [], max(started + LIMIT - time.monotonic(), 0))[0]
            if not ready:
                os.kill(pid, signal.SIGKILL)
                pytest.fail("the module was still running after %d seconds" % LIMIT)
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b"{}"), time.monotonic() - started


# A homeserver that answers badly. homeserver_url is <server>/<behaviour>; the behaviour
# answers every request below it.

def _send(handler, status, body, length=True):
    data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    if length:
        handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _fixed(status, body):
    return lambda handler, path: _send(handler, status, body)


def _admin(users=None, rooms=None, media=None, delete=None, purge=None):
    """Answers of the admin API that synapse_media_purge reads, by endpoint."""
    def answer(handler, path):
        for part, body in (("/media/delete", delete), ("/purge_media_cache", purge), ("/v2/users", users),
                           ("/rooms", rooms), ("/media", media)):
            if part in path:
                return _send(handler, 200, body if body is not None else {})
        return _send(handler, 404, {"errcode": "M_UNRECOGNIZED"})
    return answer


def _never(handler, path):  # pylint: disable=unused-argument
    time.sleep(LIMIT + 5)


def _trickle(handler, path):  # pylint: disable=unused-argument
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _byte in range(100000):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.1)


def _huge(handler, path):  # pylint: disable=unused-argument
    handler.send_response(200)
    handler.end_headers()
    handler.wfile.write(b'{"nonce": "')
    for _mebibyte in range(64):
        handler.wfile.write(b"n" * (1 << 20))


BEHAVIOURS = {
    "garbage": _fixed(200, "<html>It works!</html>"),
    "list": _fixed(200, [1, 2]),
    "empty-object": _fixed(200, {}),
    "nonce-number": _fixed(200, {"nonce": 5}),
    "nonce-only": _fixed(200, {"nonce": "n"}),
    "deep": _fixed(200, "[" * 100000 + "]" * 100000),
    "error-numbers": _fixed(403, {"errcode": 5, "error": 7}),
    "ratelimit-soon": _fixed(429, {"retry_after_ms": "soon"}),
    "ratelimit-negative": _fixed(429, {"retry_after_ms": -5000}),
    "ratelimit-nan": _fixed(429, '{"retry_after_ms": NaN}'),
    "server-error": _fixed(500, "<html>oops</html>"),
    "never": _never,
    "trickle": _trickle,
    "huge": _huge,
    "users-strings": _admin(users={"users": ["alice"]}),
    "user-without-name": _admin(users={"users": [{}]}),
    "endless-users": _admin(users={"users": [{"name": "@a:b"}], "next_token": "1"}),
    "rooms-strings": _admin(users={"users": []}, rooms={"rooms": ["!r:b"]}),
    "media-strings": _admin(users={"users": [{"name": "@a:b"}]}, rooms={"rooms": []}, media={"media": ["m"]}),
    "media-without-id": _admin(users={"users": [{"name": "@a:b"}]}, rooms={"rooms": []},
                               media={"media": [{"media_length": 5, "created_ts": 1}]}),
    "media-length-string": _admin(users={"users": [{"name": "@a:b"}]}, rooms={"rooms": []},
                                  media={"media": [{"media_id": "m", "media_length": "big", "created_ts": 1}]}),
    "deleted-mixed": _admin(users={"users": []}, rooms={"rooms": []}, delete={"deleted_media": [1, "a"]}),
    "remote-deleted-string": _admin(users={"users": []}, rooms={"rooms": []}, delete={"deleted_media": []},
                                    purge={"deleted": "many"}),
}


@pytest.fixture(scope="module", name="server")
def fixture_server():
    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            name, _slash, rest = self.path.lstrip("/").partition("/")
            try:
                BEHAVIOURS[name](self, "/" + rest)
            except OSError:  # the module gave up on us
                pass

        do_GET = do_POST = _answer

        def log_message(self, *args):  # pylint: disable=arguments-differ
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


class Host:
    """The managed host of one case: files under tmp_path, and the bad homeserver."""

    def __init__(self, tmp_path, server):
        self.tmp = tmp_path
        self.server = server

    def path(self, name):
        return str(self.tmp / name)

    def file(self, name, data):
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return str(path)

    def fifo(self, name):
        os.mkfifo(self.tmp / name)
        return self.path(name)

    def directory(self, name):
        (self.tmp / name).mkdir(parents=True)
        return self.path(name)

    def link(self, name, target):
        os.symlink(target, self.tmp / name)
        return self.path(name)

    def url(self, behaviour):
        return "%s/%s" % (self.server, behaviour)

    @staticmethod
    def closed_port_url():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return "http://127.0.0.1:%d" % sock.getsockname()[1]  # nothing listens once the socket closes


def deep_list(levels=DEEP):
    return "key: " + "[" * levels + "]" * levels + "\n"


def deep_mapping(levels=DEEP):
    return "key: " + "{a: " * levels + "1" + "}" * levels + "\n"


REGISTRATION = dict(id="telegram", url="http://telegram:29317", sender_localpart="telegrambot")
HOMESERVER = "server_name: example.org\napp_service_config_files: []\n"
USER = dict(localpart="alice", password="pw", registration_shared_secret="s", retries=0, timeout=1)
PURGE = dict(access_token="admin-token", older_than="30d", retries=0, timeout=1)
RECORD = dict(state="record", inputs_digest="digest", docker_network="matrix")


def _reg(host, **args):
    return dict(dict(REGISTRATION, path=host.path("registration.yaml")), **args)


def _reg_file(content):
    return lambda host: dict(REGISTRATION, path=host.file("registration.yaml", content))


def _hs_file(content, **args):
    return lambda host: dict(path=host.file("homeserver.yaml", content), **args)


def _record(host, **args):
    return dict(dict(RECORD, path=host.path("state.json"), paths=[host.directory("matrix")]), **args)


def _fifo_in_directory(host, name):
    host.directory(os.path.dirname(name))
    return host.fifo(name)


def user_at(path):
    """synapse_user's arguments, against the hostile server's answer at `path`."""
    return lambda host: dict(USER, homeserver_url=host.url(path))


def purge_at(path):
    """synapse_media_purge's arguments, against the hostile server's answer at `path`."""
    return lambda host: dict(PURGE, homeserver_url=host.url(path))


# (module, builder of the module's arguments, words the message must hold: "{tmp}" is the case's
# directory). "before" notes what the module did before it answered with a message. A failed
# request is named by its URL, which is homeserver_url and the API path.
CASES = {
    # appservice_registration
    "registration under a missing directory (before: FileNotFoundError)":
        (appservice_registration, lambda host: _reg(host, path=host.path("nope/registration.yaml")),
         ["{tmp}/nope/registration.yaml", "{tmp}/nope does not exist"]),
    "registration under a regular file (before: NotADirectoryError)":
        (appservice_registration, lambda host: dict(REGISTRATION, path=host.file("plain", "x") + "/registration.yaml"),
         ["{tmp}/plain/registration.yaml", "not a directory"]),
    "registration path empty (before: FileNotFoundError)":
        (appservice_registration, lambda host: _reg(host, path=""), ["path:", "absolute"]),
    "registration path with a NUL byte (before: ValueError)":
        (appservice_registration, lambda host: _reg(host, path=host.path("reg\0.yaml")), ["path:", "NUL"]),
    "registration path relative (before: written wherever the module ran)":
        (appservice_registration, lambda host: _reg(host, path="registration.yaml"), ["path:", "absolute"]),
    "registration nested 20000 lists deep (before: hang, then RecursionError)":
        (appservice_registration, _reg_file(deep_list()), ["{tmp}/registration.yaml", "levels deep"]),
    "registration nested 20000 mappings deep (before: RecursionError)":
        (appservice_registration, _reg_file(deep_mapping()), ["{tmp}/registration.yaml", "levels deep"]),
    "registration nested 300 deep (before: RecursionError)":
        (appservice_registration, _reg_file(deep_list(300)), ["{tmp}/registration.yaml", "levels deep"]),
    "registration is a FIFO":
        (appservice_registration, lambda host: _reg(host, path=host.fifo("registration.yaml")),
         ["{tmp}/registration.yaml", "not a regular file"]),
    "registration is /dev/zero":
        (appservice_registration, lambda host: _reg(host, path="/dev/zero"), ["/dev/zero", "not a regular file"]),
    "registration is a link":
        (appservice_registration, lambda host: _reg(host, path=host.link("registration.yaml", "/dev/zero")),
         ["{tmp}/registration.yaml", "symbolic link"]),
    "registration is a directory":
        (appservice_registration, lambda host: _reg(host, path=host.directory("registration.yaml")),
         ["{tmp}/registration.yaml", "directory"]),
    "registration not UTF-8":
        (appservice_registration, _reg_file(b"id: \xff\xfe\n"), ["{tmp}/registration.yaml", "utf-8"]),
    "registration a YAML list":
        (appservice_registration, _reg_file("- id\n"), ["{tmp}/registration.yaml", "mapping, got list"]),
    "registration empty":
        (appservice_registration, _reg_file(""), ["{tmp}/registration.yaml", "mapping, got null"]),
    "registration with duplicate keys":
        (appservice_registration, _reg_file("id: a\nid: b\n"), ["{tmp}/registration.yaml", "duplicate key"]),
    "registration with a tab":
        (appservice_registration, _reg_file("id:\n\tx: 1\n"), ["{tmp}/registration.yaml", "invalid YAML"]),
    "namespace entry a string":
        (appservice_registration, lambda host: _reg(host, namespaces={"users": ["@telegram_.*"]}),
         ["{tmp}/registration.yaml", "namespaces.users[0]", "got string"]),
    "namespace a mapping":
        (appservice_registration, lambda host: _reg(host, namespaces={"users": {"regex": "x"}}),
         ["{tmp}/registration.yaml", "namespaces.users", "got mapping"]),
    "url a number":
        (appservice_registration, lambda host: _reg(host, url=29317), ["{tmp}/registration.yaml", "'url'", "got int"]),

    # config_file
    "config is a directory, force (before: YamlFileError traceback)":
        (config_file, lambda host: dict(path=host.directory("config.yaml"), content={"a": 1}, force=True),
         ["{tmp}/config.yaml", "directory"]),
    "config is a FIFO, force (before: YamlFileError traceback)":
        (config_file, lambda host: dict(path=host.fifo("config.yaml"), content={"a": 1}, force=True),
         ["{tmp}/config.yaml", "not a regular file"]),
    "config is a link, force (before: YamlFileError traceback)":
        (config_file, lambda host: dict(path=host.link("config.yaml", host.file("elsewhere", "a: 1\n")),
                                        content={"a": 2}, force=True),
         ["{tmp}/config.yaml", "symbolic link"]),
    "config is a dangling link (before: YamlFileError traceback)":
        (config_file, lambda host: dict(path=host.link("config.yaml", host.path("nothing")), content={"a": 2}),
         ["{tmp}/config.yaml", "symbolic link"]),
    "config is /dev/zero, force (before: YamlFileError traceback)":
        (config_file, lambda host: dict(path="/dev/zero", content={"a": 1}, force=True),
         ["/dev/zero", "not a regular file"]),
    "config header without a newline (before: the data ended up in the comment)":
        (config_file, lambda host: dict(path=host.path("config.yaml"), content={"a": 1}, header="# managed"),
         ["header:", "newline"]),
    "config header that is not a comment (before: an invalid file was written)":
        (config_file, lambda host: dict(path=host.path("config.yaml"), content={"a": 1}, header="a: [\n"),
         ["header:", "comment"]),
    "config path relative (before: 'the directory  does not exist')":
        (config_file, lambda host: dict(path="config.yaml", content={"a": 1}), ["path:", "absolute"]),
    "config nested 20000 deep":
        (config_file, lambda host: dict(path=host.file("config.yaml", deep_list()), content={"a": 1}),
         ["{tmp}/config.yaml"]),
    "config under a missing directory":
        (config_file, lambda host: dict(path=host.path("nope/config.yaml"), content={"a": 1}),
         ["{tmp}/nope/config.yaml", "{tmp}/nope does not exist"]),
    "config is a FIFO":
        (config_file, lambda host: dict(path=host.fifo("config.yaml"), content={"a": 1}),
         ["{tmp}/config.yaml", "not a regular file"]),
    "config not UTF-8":
        (config_file, lambda host: dict(path=host.file("config.yaml", b"a: \xff\n"), content={"a": 1}),
         ["{tmp}/config.yaml", "utf-8"]),

    # deployment_state
    "record is a FIFO (before: hang)":
        (deployment_state, lambda host: dict(path=host.fifo("state.json"), inputs_digest="digest"),
         ["path:", "{tmp}/state.json", "not a regular file"]),
    "record is /dev/zero (before: read without end)":
        (deployment_state, lambda host: dict(path="/dev/zero", inputs_digest="digest"),
         ["path:", "/dev/zero", "not a regular file"]),
    "record is a link to /dev/zero (before: hang)":
        (deployment_state, lambda host: dict(path=host.link("state.json", "/dev/zero"), inputs_digest="digest"),
         ["path:", "{tmp}/state.json", "symbolic link"]),
    "record is a directory, state=absent (before: IsADirectoryError)":
        (deployment_state, lambda host: dict(state="absent", path=host.directory("state.json")),
         ["path:", "{tmp}/state.json", "directory"]),
    "record written to a directory (before: IsADirectoryError)":
        (deployment_state, lambda host: _record(host, path=host.directory("state.json")),
         ["path:", "{tmp}/state.json", "directory"]),
    "record written under a regular file (before: FileExistsError)":
        (deployment_state, lambda host: _record(host, path=host.file("plain", "x") + "/state.json"),
         ["path:", "{tmp}/plain"]),
    "record path empty (before: FileNotFoundError)":
        (deployment_state, lambda host: _record(host, path=""), ["path:", "absolute"]),
    "docker_network an option (before: docker ran with --help)":
        (deployment_state, lambda host: _record(host, docker_network="--help"), ["docker_network", "--help"]),
    "package an option (before: dpkg-query ran with --help)":
        (deployment_state, lambda host: _record(host, packages=["--help"]), ["packages", "--help"]),

    # stored_secrets
    "secret length 10**12 (before: MemoryError)":
        (stored_secrets, lambda host: dict(directory=host.path("secrets"), names=["db"], length=10 ** 12),
         ["length", "4095"]),
    "secret length 100000 (before: a secret the next run cannot read)":
        (stored_secrets, lambda host: dict(directory=host.path("secrets"), names=["db"], length=100000),
         ["length", "4095"]),
    "secrets directory empty (before: '[Errno 2] No such file or directory')":
        (stored_secrets, lambda host: dict(directory="", names=["db"]), ["directory:", "absolute"]),
    "secrets directory relative (before: secrets stored wherever the module ran)":
        (stored_secrets, lambda host: dict(directory="secrets", names=["db"]), ["directory:", "absolute"]),
    "secrets directory a regular file (before: '[Errno 17] File exists')":
        (stored_secrets, lambda host: dict(directory=host.file("secrets", "x"), names=["db"]),
         ["{tmp}/secrets", "not a directory"]),
    "secret not UTF-8 (before: returned with U+FFFD in place of the bytes)":
        (stored_secrets, lambda host: dict(directory=os.path.dirname(host.file("secrets/db", b"\xff\xfe" * 20)),
                                           names=["db"]),
         ["{tmp}/secrets/db", "UTF-8"]),
    "secret name of 300 characters (before: '[Errno 36] File name too long')":
        (stored_secrets, lambda host: dict(directory=host.path("secrets"), names=["a" * 300]),
         ["names must be", "255"]),
    "secret is a FIFO":
        (stored_secrets, lambda host: dict(directory=os.path.dirname(_fifo_in_directory(host, "secrets/db")),
                                           names=["db"]),
         ["{tmp}/secrets/db", "not a regular file"]),

    # synapse_appservices
    "homeserver.yaml nested 20000 deep (before: hang, then RecursionError)":
        (synapse_appservices, _hs_file(deep_list()), ["{tmp}/homeserver.yaml", "levels deep"]),
    "homeserver.yaml nested 300 deep (before: RecursionError)":
        (synapse_appservices, _hs_file(deep_list(300)), ["{tmp}/homeserver.yaml", "levels deep"]),
    "listed registration with a NUL byte (before: ValueError)":
        (synapse_appservices, _hs_file('app_service_config_files: ["/bridges/a\\0b.yaml"]\n'),
         ["{tmp}/homeserver.yaml", "app_service_config_files", "NUL"]),
    "listed registration empty (before: ': file does not exist')":
        (synapse_appservices, _hs_file('app_service_config_files: [""]\n'),
         ["{tmp}/homeserver.yaml", "app_service_config_files[0]", "empty"]),
    "registrations entry empty (before: '.: is a directory')":
        (synapse_appservices, _hs_file(HOMESERVER, registrations=[""]), ["registrations:", "absolute"]),
    "registrations entry relative (before: 'reg.yaml: file does not exist')":
        (synapse_appservices, _hs_file(HOMESERVER, registrations=["reg.yaml"]), ["registrations:", "absolute"]),
    "homeserver.yaml is a FIFO":
        (synapse_appservices, lambda host: dict(path=host.fifo("homeserver.yaml")),
         ["{tmp}/homeserver.yaml", "not a regular file"]),
    "registration to list is a directory":
        (synapse_appservices, lambda host: dict(path=host.file("homeserver.yaml", HOMESERVER),
                                                registrations=[host.directory("registration.yaml")]),
         ["{tmp}/registration.yaml", "directory"]),

    # synapse_config
    "homeserver.yaml to edit nested 20000 deep (before: hang, then RecursionError)":
        (synapse_config, _hs_file(deep_list(), settings={"a": 1}), ["{tmp}/homeserver.yaml", "levels deep"]),
    "homeserver.yaml to edit nested 300 deep (before: RecursionError)":
        (synapse_config, _hs_file(deep_mapping(300), settings={"a": 1}), ["{tmp}/homeserver.yaml", "levels deep"]),
    "homeserver.yaml path empty (before: ': file does not exist')":
        (synapse_config, lambda host: dict(path="", settings={"a": 1}), ["path:", "absolute"]),
    "homeserver.yaml to edit is a FIFO":
        (synapse_config, lambda host: dict(path=host.fifo("homeserver.yaml")),
         ["{tmp}/homeserver.yaml", "not a regular file"]),
    "homeserver.yaml to edit not UTF-8":
        (synapse_config, _hs_file(b"a: \xff\n"), ["{tmp}/homeserver.yaml", "utf-8"]),
    "homeserver.yaml with two documents":
        (synapse_config, _hs_file("a: 1\n---\nb: 2\n"), ["{tmp}/homeserver.yaml", "single document"]),

    # synapse_user
    "homeserver_url empty (before: ValueError)":
        (synapse_user, lambda host: dict(USER, homeserver_url=""), ["homeserver_url:", "http://"]),
    "homeserver_url reads /dev/zero (before: read without end)":
        (synapse_user, lambda host: dict(USER, homeserver_url="file:///dev/zero#"), ["homeserver_url:", "http://"]),
    "homeserver_url ftp (before: 'Connection refused')":
        (synapse_user, lambda host: dict(USER, homeserver_url="ftp://127.0.0.1/"), ["homeserver_url:", "http://"]),
    "homeserver_url with a newline (before: retried, then 'URL can't contain control characters')":
        (synapse_user, lambda host: dict(USER, homeserver_url="http://127.0.0.1:8008/\nX-Evil: 1"),
         ["homeserver_url:", "control characters"]),
    "homeserver_url port out of range (before: 'Connection refused')":
        (synapse_user, lambda host: dict(USER, homeserver_url="http://127.0.0.1:999999"), ["homeserver_url:", "Port"]),
    "timeout negative (before: ValueError)":
        (synapse_user, lambda host: dict(USER, homeserver_url=host.url("never"), timeout=-1), ["timeout:", "3600"]),
    "timeout 10**12 (before: OverflowError)":
        (synapse_user, lambda host: dict(USER, homeserver_url=host.url("never"), timeout=10 ** 12), ["timeout:"]),
    "timeout 0 (before: '[Errno 115] Operation now in progress')":
        (synapse_user, lambda host: dict(USER, homeserver_url=host.url("never"), timeout=0), ["timeout:"]),
    "retries 10**9 on a dead homeserver (before: hang)":
        (synapse_user, lambda host: dict(USER, homeserver_url=host.closed_port_url(), retries=10 ** 9),
         ["retries:", "100"]),
    "ca_path a FIFO (before: hang)":
        (synapse_user, lambda host: dict(USER, homeserver_url="https://127.0.0.1:1", ca_path=host.fifo("ca.pem")),
         ["ca_path:", "{tmp}/ca.pem"]),
    "ca_path missing (before: 'No such file or directory. Is the homeserver running')":
        (synapse_user, lambda host: dict(USER, homeserver_url="https://127.0.0.1:1", ca_path=host.path("ca.pem")),
         ["ca_path:", "{tmp}/ca.pem"]),
    "answer a JSON list (before: TypeError)":
        (synapse_user, user_at("list"), ["homeserver_url", "JSON object"]),
    "answer without nonce (before: KeyError)":
        (synapse_user, user_at("empty-object"), ["homeserver_url", "'nonce'"]),
    "answer with a numeric nonce (before: AttributeError)":
        (synapse_user, user_at("nonce-number"), ["homeserver_url", "'nonce'", "number"]),
    "registration answer without user_id (before: KeyError)":
        (synapse_user, user_at("nonce-only"), ["homeserver_url", "'user_id'"]),
    "registration answer without access_token (before: KeyError)":
        (synapse_user, lambda host: dict(USER, homeserver_url=host.url("nonce-only"), return_access_token=True),
         ["homeserver_url", "'access_token'"]),
    "check mode, answer a JSON list (before: AttributeError)":
        (synapse_user, lambda host: dict(USER, homeserver_url=host.url("list"), _check_mode=True),
         ["homeserver_url", "JSON object"]),
    "answer nested 100000 deep (before: RecursionError)":
        (synapse_user, user_at("deep"), ["homeserver_url", "JSON"]),
    "429 with retry_after_ms 'soon' (before: ValueError)":
        (synapse_user, lambda host: dict(USER, homeserver_url=host.url("ratelimit-soon"), retries=1),
         ["/ratelimit-soon/_synapse/admin/v1/register failed", "HTTP 429"]),
    "429 with retry_after_ms negative (before: ValueError from sleep)":
        (synapse_user, lambda host: dict(USER, homeserver_url=host.url("ratelimit-negative"), retries=1),
         ["/ratelimit-negative/_synapse/admin/v1/register failed", "HTTP 429"]),
    "429 with retry_after_ms NaN (before: ValueError from sleep)":
        (synapse_user, lambda host: dict(USER, homeserver_url=host.url("ratelimit-nan"), retries=1),
         ["/ratelimit-nan/_synapse/admin/v1/register failed", "HTTP 429"]),
    "403 with numbers for errcode and error (before: TypeError)":
        (synapse_user, user_at("error-numbers"), ["/error-numbers/_synapse/admin/v1/register failed", "HTTP 403"]),
    "answer trickles in a byte at a time (before: hang)":
        (synapse_user, user_at("trickle"), ["homeserver_url", "more than 1 seconds"]),
    "answer of 64 MiB (before: read whole)":
        (synapse_user, user_at("huge"), ["homeserver_url", "bytes"]),
    "answer never comes":
        (synapse_user, user_at("never"), ["homeserver_url", "timed out"]),
    "nothing listens":
        (synapse_user, lambda host: dict(USER, homeserver_url=host.closed_port_url()),
         ["homeserver_url", "refused"]),
    "answer not JSON":
        (synapse_user, user_at("garbage"), ["homeserver_url", "not JSON"]),
    "answer HTTP 500 with HTML":
        (synapse_user, user_at("server-error"), ["/server-error/_synapse/admin/v1/register failed", "HTTP 500"]),

    # synapse_media_purge
    "users a list of strings (before: AttributeError)":
        (synapse_media_purge, purge_at("users-strings"), ["homeserver_url", "'users'"]),
    "user without a name (before: KeyError)":
        (synapse_media_purge, purge_at("user-without-name"), ["homeserver_url", "'name'"]),
    "users listing that never ends (before: hang)":
        (synapse_media_purge, purge_at("endless-users"), ["homeserver_url", "next_token"]),
    "rooms a list of strings (before: AttributeError)":
        (synapse_media_purge, purge_at("rooms-strings"), ["homeserver_url", "'rooms'"]),
    "media a list of strings (before: AttributeError)":
        (synapse_media_purge, purge_at("media-strings"), ["homeserver_url", "'media'"]),
    "media without an ID (before: KeyError)":
        (synapse_media_purge, purge_at("media-without-id"), ["homeserver_url", "'media_id'"]),
    "media length a string (before: TypeError)":
        (synapse_media_purge, purge_at("media-length-string"), ["homeserver_url", "'media_length'"]),
    "deleted media of mixed types (before: TypeError)":
        (synapse_media_purge, purge_at("deleted-mixed"), ["homeserver_url", "'deleted_media'"]),
    "remote deleted a string (before: TypeError)":
        (synapse_media_purge, lambda host: dict(PURGE, homeserver_url=host.url("remote-deleted-string"),
                                                purge_remote=True),
         ["homeserver_url", "'deleted'"]),
    "older_than of 400 digits (before: OverflowError)":
        (synapse_media_purge, lambda host: dict(PURGE, homeserver_url=host.url("never"), older_than="9" * 400 + "d"),
         ["older_than", "too big"]),
    "larger_than of 400 digits (before: OverflowError)":
        (synapse_media_purge, lambda host: dict(PURGE, homeserver_url=host.url("never"), larger_than="9" * 400 + "T"),
         ["larger_than", "too big"]),
    "access_token with a newline (before: 'Invalid header value')":
        (synapse_media_purge, lambda host: dict(PURGE, homeserver_url=host.url("never"), access_token="t\r\nX: 1"),
         ["access_token:"]),
    "homeserver_url without a scheme (before: 'unknown url type')":
        (synapse_media_purge, lambda host: dict(PURGE, homeserver_url="localhost"), ["homeserver_url:", "http://"]),
    "admin answer trickles in (before: hang)":
        (synapse_media_purge, purge_at("trickle"), ["homeserver_url", "more than 1 seconds"]),
}

# A Python exception's name in a message means the module did not understand what went wrong.
EXCEPTION_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception)\b|Traceback|MODULE FAILURE")


@pytest.fixture(name="docker")
def fixture_docker(monkeypatch):
    docker = FakeDocker(network="net-1", packages={"docker.io": "ii "})
    monkeypatch.setattr(deployment_state, "command_runner", lambda module: docker)
    return docker


@pytest.mark.parametrize("module, build, fragments", list(CASES.values()), ids=list(CASES))
def test_bad_input_fails_with_a_message_naming_it(tmp_path, server, docker, module, build, fragments):
    host = Host(tmp_path, server)
    args = build(host)
    check_mode = args.pop("_check_mode", False)
    result, seconds = run_bounded(module.main, args, check_mode)
    assert "uncaught" not in result, result["uncaught"]
    assert result.get("failed") is True, result
    msg = result["msg"]
    for fragment in fragments:
        assert fragment.replace("{tmp}", str(tmp_path)) in msg, (fragment, msg)
    assert not EXCEPTION_NAME.search(json.dumps(result)), msg
    assert seconds < LIMIT


def test_at_least_eighty_cases_and_every_module():
    assert len(CASES) >= 80
    assert {module for module, _build, _fragments in CASES.values()} == {
        appservice_registration, config_file, deployment_state, stored_secrets, synapse_appservices, synapse_config,
        synapse_media_purge, synapse_user}


# Odd inputs a module copes with: no failure, and no traceback or hang either.

def _probe_damaged(paths):
    def build(host):
        return dict(path=host.file("state.json", json.dumps(
            {"version": 1, "inputs": "digest", "paths": paths, "excluded_paths": [], "docker_network": "matrix",
             "packages": [], "host": {}})), inputs_digest="digest")
    return build


@pytest.mark.parametrize("build", [_probe_damaged("/"), _probe_damaged(["/"]), _probe_damaged([7])],
                         ids=["paths a string (before: walked the whole host)",
                              "paths the root (before: walked the whole host)", "paths a number"])
def test_a_record_that_would_walk_the_whole_host_is_damaged(tmp_path, server, docker, build):
    result, seconds = run_bounded(deployment_state.main, build(Host(tmp_path, server)))
    assert "uncaught" not in result, result["uncaught"]
    assert result["differences"] == ["the record of the last complete run is damaged"] and seconds < LIMIT


@pytest.mark.parametrize("answer", [(0, "", ""), (0, "net-1\n", "")],
                         ids=["no network ID (before: IndexError)", "rows of another format (before: ValueError)"])
def test_docker_answers_of_another_kind_are_a_difference(tmp_path, server, monkeypatch, answer):
    def docker(argv):
        if argv[:2] == ["docker", "ps"]:
            return 0, "c1\n", ""
        return answer if argv[0] == "docker" else (0, "", "")

    monkeypatch.setattr(deployment_state, "command_runner", lambda module: docker)
    host = Host(tmp_path, server)
    result, _seconds = run_bounded(deployment_state.main, _record(host))
    assert "uncaught" not in result, result["uncaught"]
    assert result.get("failed") is not True, result
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["host"]["docker"]["error"].startswith("Docker ")
