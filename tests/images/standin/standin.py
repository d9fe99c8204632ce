"""Test-only stand-in for the Matrix bridges Switchboard deploys.

One program plays five bridges ("flavours"). Each flavour is started through
the same executable path, with the same flags, config format and registration
file as the real bridge's image, so a role runs the stand-in exactly as it
runs production:

  bridgev2   mautrix-whatsapp / mautrix-discord / mautrix-telegram (Go megabridges)
  mxpuppet   mx-puppet-discord (Node, mx-puppet-bridge)
  wechaty    matrix-appservice-wechaty (Node, matrix-appservice-bridge)

It does what the tests can observe of a real bridge: validates its config
(a missing required key is a fatal error naming the key), opens its database
(SQLite file or a TCP connection to PostgreSQL), serves the appservice API
(transactions and ping, authenticated with hs_token) where the config says,
checks its as_token with whoami, registers its bot, sets the bot's display
name, has Synapse ping it, joins DMs from allowed users (rejects the others)
and answers `help` and `ping` with a notice naming the flavour. It never talks
to WhatsApp, Discord, Telegram or WeChat.

Usage (normally through the wrappers in /usr/bin and /usr/local/bin):
  standin.py FLAVOUR [the real bridge's arguments...]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import socket
import sqlite3
import sys
import time
from urllib.parse import unquote, urlsplit

import yaml
from mautrix.appservice import AppService
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store import MemoryStateStore
from mautrix.errors import MatrixRequestError
from mautrix.types import EventType, Membership, MessageType, TextMessageEventContent

VERSION = "1"
FLAVOURS = {
    # name: (kind, network id as in the real bridge, default appservice port)
    "mautrix-whatsapp": ("bridgev2", "whatsapp", 29318),
    "mautrix-discord": ("bridgev2", "discord", 29334),
    "mautrix-telegram": ("bridgev2", "telegram", 29317),
    "mx-puppet-discord": ("mxpuppet", "discord", 8434),
    "matrix-appservice-wechaty": ("wechaty", "wechaty", 8788),
}
# bridgev2 permission levels, lowest first; `commands` and up may use the bot.
BRIDGEV2_LEVELS = ["block", "relay", "commands", "user", "admin"]
EXAMPLE_TOKEN = "This value is generated when generating the registration"
HS_WAIT_SECONDS = int(os.environ.get("STANDIN_HS_WAIT_SECONDS", "120"))

log = logging.getLogger("standin")


class Fatal(Exception):
    """A startup error: printed as one line, exit status 1."""


class StateStore(ASStateStore, MemoryStateStore):
    """In memory: the stand-in writes nothing but its database file."""

    def __init__(self) -> None:
        ASStateStore.__init__(self)
        MemoryStateStore.__init__(self)


# ---------------------------------------------------------------- config --

def load_yaml(path: str, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise Fatal(f"{what} file {path} not found") from None
    except PermissionError:
        raise Fatal(f"{what} file {path} is not readable by uid {os.getuid()}") from None
    except yaml.YAMLError as e:
        raise Fatal(f"{what} file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise Fatal(f"{what} file {path} is not a YAML mapping")
    return data


_MISSING = object()


def get(data: dict, key: str, path: str, default=_MISSING, kind=None):
    """Value of dotted `key`; a missing/empty required key is fatal, by name."""
    cur = data
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur or cur[part] is None or cur[part] == "":
            if default is not _MISSING:
                return default
            raise Fatal(f"{path}: required key `{key}` is missing or empty")
        cur = cur[part]
    if kind is not None and not isinstance(cur, kind):
        raise Fatal(f"{path}: key `{key}` must be a {kind.__name__}, not {type(cur).__name__} {cur!r}")
    return cur


def port_of(value, key: str, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit() \
            or not 0 < int(value) < 65536:
        raise Fatal(f"{path}: key `{key}` must be a TCP port, not {value!r}")
    return int(value)


def load_registration(path: str) -> dict:
    reg = load_yaml(path, "registration")
    for key in ("id", "as_token", "hs_token", "sender_localpart"):
        get(reg, key, path, kind=str)
    if "url" not in reg:
        raise Fatal(f"{path}: required key `url` is missing")
    users = get(reg, "namespaces.users", path, kind=list)
    if not any(isinstance(n, dict) and n.get("regex") for n in users):
        raise Fatal(f"{path}: `namespaces.users` has no regex")
    return reg


class Settings:
    """What every flavour boils down to."""

    flavour: str
    hs_address: str
    domain: str
    as_id: str
    as_token: str
    hs_token: str
    bot_localpart: str
    displayname: str | None
    listen_host: str
    listen_port: int
    registration_url: str | None
    db_kind: str  # sqlite | postgres | none
    db_target: str
    allowed = staticmethod(lambda mxid: True)


def settings_bridgev2(flavour: str, network: str, argv: list[str]) -> Settings:
    p = argparse.ArgumentParser(prog=f"/usr/bin/{flavour}", allow_abbrev=False,
                                description=f"switchboard test stand-in for {flavour}")
    p.add_argument("-c", "--config", default="config.yaml")
    p.add_argument("-r", "--registration", default="registration.yaml")
    p.add_argument("-n", "--no-update", action="store_true")
    p.add_argument("-g", "--generate-registration", action="store_true")
    p.add_argument("-e", "--generate-example-config", action="store_true")
    p.add_argument("-v", "--version", action="store_true")
    p.add_argument("--version-json", action="store_true")
    p.add_argument("--ignore-unsupported-database", action="store_true")
    p.add_argument("--ignore-foreign-tables", action="store_true")
    a = p.parse_args(argv)
    if a.version or a.version_json:
        print(f"{flavour} switchboard-stand-in {VERSION}")
        sys.exit(0)
    if a.generate_registration or a.generate_example_config:
        raise Fatal("-g/-e are not implemented by the stand-in: "
                    "the roles write config and registration themselves")
    if not a.no_update:
        log.warning("started without -n: the real bridge would now rewrite %s", a.config)

    path = a.config
    c = load_yaml(path, "config")
    s = Settings()
    s.flavour = flavour
    s.hs_address = get(c, "homeserver.address", path, kind=str)
    s.domain = get(c, "homeserver.domain", path, kind=str)
    s.registration_url = get(c, "appservice.address", path, kind=str)
    s.listen_host = get(c, "appservice.hostname", path, kind=str)
    s.listen_port = port_of(get(c, "appservice.port", path), "appservice.port", path)
    s.as_id = get(c, "appservice.id", path, kind=str)
    s.bot_localpart = get(c, "appservice.bot.username", path, kind=str)
    name = get(c, "appservice.bot.displayname", path, default=None, kind=str)
    s.displayname = None if name in (None, "remove") else name
    s.as_token = get(c, "appservice.as_token", path, kind=str)
    s.hs_token = get(c, "appservice.hs_token", path, kind=str)
    for key, tok in (("appservice.as_token", s.as_token), ("appservice.hs_token", s.hs_token)):
        if tok == EXAMPLE_TOKEN:
            raise Fatal(f"{path}: key `{key}` still has the example value")
    template = get(c, "appservice.username_template", path, kind=str)
    if "{{.}}" not in template:
        raise Fatal(f"{path}: key `appservice.username_template` must contain {{{{.}}}}")

    db_type = get(c, "database.type", path, kind=str)
    uri = get(c, "database.uri", path, kind=str)
    if db_type == "postgres":
        s.db_kind = "postgres"
    elif db_type in ("sqlite3-fk-wal", "sqlite3"):
        s.db_kind = "sqlite"
        # `file:<path>?_txlock=immediate` or a raw path.
        uri = uri[len("file:"):] if uri.startswith("file:") else uri
        uri = uri.split("?", 1)[0]
    else:
        raise Fatal(f"{path}: key `database.type` must be postgres or sqlite3-fk-wal, not {db_type!r}")
    s.db_target = uri

    perms = get(c, "bridge.permissions", path, kind=dict)
    for who, level in perms.items():
        if level not in BRIDGEV2_LEVELS:
            raise Fatal(f"{path}: `bridge.permissions` value {level!r} for {who!r} "
                        f"is not one of {', '.join(BRIDGEV2_LEVELS)}")

    def level_of(mxid: str) -> str:
        server = mxid.split(":", 1)[-1]
        return perms.get(mxid) or perms.get(server) or perms.get("*") or "block"

    s.allowed = lambda mxid: BRIDGEV2_LEVELS.index(level_of(mxid)) >= BRIDGEV2_LEVELS.index("commands")

    # The real bridge takes its tokens from the config; the registration it
    # generated must agree with it, or Synapse and the bridge disagree. The
    # stand-in checks that here instead of failing later and silently.
    if os.path.exists(a.registration):
        reg = load_registration(a.registration)
        for rkey, ckey, val in (("id", "appservice.id", s.as_id),
                                ("as_token", "appservice.as_token", s.as_token),
                                ("hs_token", "appservice.hs_token", s.hs_token),
                                ("sender_localpart", "appservice.bot.username", s.bot_localpart),
                                ("url", "appservice.address", s.registration_url)):
            if reg.get(rkey) != val:
                raise Fatal(f"{a.registration}: `{rkey}` does not match `{ckey}` in {path}")
    else:
        log.warning("registration %s not found (the real bridge does not need it to run)",
                    a.registration)
    return s


def whitelist_check(allow: list, deny: list):
    """mx-puppet-bridge semantics: JS String.match, i.e. unanchored search."""
    allow_re = [re.compile(x) for x in allow]
    deny_re = [re.compile(x) for x in deny]
    return lambda mxid: (not any(r.search(mxid) for r in deny_re)
                         and any(r.search(mxid) for r in allow_re))


def settings_mxpuppet(flavour: str, argv: list[str]) -> Settings:
    p = argparse.ArgumentParser(prog="node /opt/mx-puppet-discord/build/index.js",
                                allow_abbrev=False,
                                description=f"switchboard test stand-in for {flavour}")
    p.add_argument("-c", "--config", default="config.yaml")
    p.add_argument("-f", "--registration-file", default="discord-registration.yaml")
    p.add_argument("-r", "--register", action="store_true")
    a = p.parse_args(argv)
    if a.register:
        raise Fatal("-r (generate registration) is not implemented by the stand-in: "
                    "the roles write the registration themselves")
    path = a.config
    c = load_yaml(path, "config")
    s = Settings()
    s.flavour = flavour
    s.listen_port = port_of(get(c, "bridge.port", path), "bridge.port", path)
    s.listen_host = get(c, "bridge.bindAddress", path, kind=str)
    s.domain = get(c, "bridge.domain", path, kind=str)
    s.hs_address = get(c, "bridge.homeserverUrl", path, kind=str)
    s.displayname = get(c, "bridge.displayname", path, default="Discord Puppet Bridge", kind=str)
    conn = get(c, "database.connString", path, default=None, kind=str)
    if conn:
        s.db_kind, s.db_target = "postgres", conn
    else:
        s.db_kind = "sqlite"
        s.db_target = get(c, "database.filename", path, default="database.db", kind=str)
    try:
        s.allowed = whitelist_check(
            get(c, "provisioning.whitelist", path, default=[".*"], kind=list),
            get(c, "provisioning.blacklist", path, default=[], kind=list))
        for section in ("relay", "selfService"):
            whitelist_check(get(c, f"{section}.whitelist", path, default=[], kind=list),
                            get(c, f"{section}.blacklist", path, default=[], kind=list))
    except re.error as e:
        raise Fatal(f"{path}: a whitelist/blacklist entry is not a valid regex: {e}") from None
    reg = load_registration(a.registration_file)
    s.as_id, s.as_token, s.hs_token = reg["id"], reg["as_token"], reg["hs_token"]
    s.bot_localpart = reg["sender_localpart"]
    s.registration_url = reg["url"]
    return s


def settings_wechaty(flavour: str, argv: list[str]) -> Settings:
    # matrix-appservice-bridge's Cli.
    p = argparse.ArgumentParser(prog="matrix-appservice-wechaty", allow_abbrev=False,
                                description=f"switchboard test stand-in for {flavour}")
    p.add_argument("-c", "--config")
    p.add_argument("-f", "--file", default="wechaty-registration.yaml")
    p.add_argument("-p", "--port", type=int)
    p.add_argument("-r", "--generate-registration", action="store_true")
    p.add_argument("-u", "--url")
    p.add_argument("-l", "--localpart")
    # The real image's CMD is [""]: an empty word is ignored like there.
    a = p.parse_args([x for x in argv if x != ""])
    if a.generate_registration:
        raise Fatal("-r (generate registration) is not implemented by the stand-in: "
                    "the roles write the registration themselves")
    if not a.config:
        raise Fatal("--config is required (matrix-appservice-bridge refuses to start without it)")
    path = a.config
    c = load_yaml(path, "config")
    s = Settings()
    s.flavour = flavour
    s.domain = get(c, "domain", path, kind=str)
    s.hs_address = get(c, "homeserverUrl", path, kind=str)
    # The Cli reads --file; the Bridge reads the file named in the config.
    # Both must be the same registration.
    reg_cfg = get(c, "registration", path, kind=str)
    reg = load_registration(a.file)
    if load_registration(reg_cfg) != reg:
        raise Fatal(f"{path}: `registration` ({reg_cfg}) is not the same registration as --file {a.file}")
    s.as_id, s.as_token, s.hs_token = reg["id"], reg["as_token"], reg["hs_token"]
    s.bot_localpart = reg["sender_localpart"]
    s.registration_url = reg["url"]
    s.listen_host = "0.0.0.0"
    s.listen_port = a.port or FLAVOURS[flavour][2]
    s.displayname = "Wechaty bridge bot"
    s.db_kind, s.db_target = "none", ""
    if "wechaty" in c:
        log.warning("%s: key `wechaty` is not read by matrix-appservice-wechaty 0.8 (its config "
                    "schema has domain, homeserverUrl, registration); the puppet comes from "
                    "WECHATY_PUPPET and WECHATY_PUPPET_<NAME>_TOKEN in the environment", path)
    puppet = os.environ.get("WECHATY_PUPPET")
    if puppet:
        has_token = any(k.startswith("WECHATY_PUPPET_") and k.endswith("_TOKEN") for k in os.environ)
        log.info("WECHATY_PUPPET=%s (token %s)", puppet, "set" if has_token else "not set")
    return s


# -------------------------------------------------------------- database --

def open_database(s: Settings) -> None:
    if s.db_kind == "sqlite":
        path = os.path.abspath(s.db_target)
        try:
            with sqlite3.connect(path) as db:
                db.execute("CREATE TABLE IF NOT EXISTS standin (flavour TEXT PRIMARY KEY)")
                db.execute("INSERT OR IGNORE INTO standin VALUES (?)", (s.flavour,))
        except sqlite3.Error as e:
            raise Fatal(f"cannot open SQLite database {path} as uid {os.getuid()}: {e}") from None
        log.info("database: SQLite %s", path)
    elif s.db_kind == "postgres":
        u = urlsplit(s.db_target)
        if u.scheme not in ("postgres", "postgresql") or not u.hostname:
            raise Fatal(f"database URI is not postgres://user:pass@host/db: "
                        f"{u.scheme}://{u.hostname or ''}")
        host, port = unquote(u.hostname), u.port or 5432
        for attempt in range(30):
            try:
                socket.create_connection((host, port), timeout=3).close()
                break
            except OSError as e:
                if attempt == 29:
                    raise Fatal(f"cannot reach PostgreSQL at {host}:{port}: {e}") from None
                time.sleep(1)
        log.info("database: PostgreSQL at %s:%s (reachable; not logged in)", host, port)


# ------------------------------------------------------------------ bot --

def help_text(flavour: str) -> str:
    return f"stand-in for {flavour}: commands: help, ping"


def command_of(body: str) -> str:
    """`help`, `!help`, `!wa help` all mean help."""
    words = body.strip().lower().split()
    if not words:
        return ""
    if words[0].startswith("!") and len(words) > 1:
        words = words[1:]
    return words[0].lstrip("!")


async def run(s: Settings) -> None:
    appservice = AppService(
        server=s.hs_address.rstrip("/"), domain=s.domain, as_token=s.as_token,
        hs_token=s.hs_token, bot_localpart=s.bot_localpart, id=s.as_id,
        state_store=StateStore(), log=f"standin.{s.flavour}",
        bridge_name=s.flavour)
    bot = appservice.bot_mxid

    async def on_event(evt) -> None:
        intent = appservice.intent
        if evt.type == EventType.ROOM_MEMBER and evt.state_key == bot \
                and evt.content.membership == Membership.INVITE:
            if s.allowed(evt.sender):
                log.info("invited to %s by %s: joining", evt.room_id, evt.sender)
                await intent.join_room_by_id(evt.room_id)
            else:
                log.info("invited to %s by %s: not allowed, rejecting", evt.room_id, evt.sender)
                await intent.leave_room(evt.room_id, reason="You are not allowed to use this bridge")
        elif evt.type == EventType.ROOM_MESSAGE and evt.sender != bot \
                and evt.content.msgtype == MessageType.TEXT:
            cmd = command_of(evt.content.body or "")
            if cmd not in ("help", "ping"):
                return
            if not s.allowed(evt.sender):
                log.info("%s from %s ignored: not allowed", cmd, evt.sender)
                return
            text = help_text(s.flavour) if cmd == "help" else f"pong (stand-in for {s.flavour})"
            await intent.send_message(evt.room_id, TextMessageEventContent(
                msgtype=MessageType.NOTICE, body=text))
            log.info("answered %s from %s in %s", cmd, evt.sender, evt.room_id)

    appservice.matrix_event_handler(on_event)

    await appservice.start(host=s.listen_host, port=s.listen_port)
    log.info("appservice API listening on %s:%d (registration url: %s)",
             s.listen_host, s.listen_port, s.registration_url)
    intent = appservice.intent

    # Like the real bridges: wait for the homeserver, then prove the as_token.
    for attempt in range(HS_WAIT_SECONDS):
        try:
            await intent.versions()
            break
        except Exception as e:  # noqa: BLE001 - connection errors of every kind
            if attempt == HS_WAIT_SECONDS - 1:
                raise Fatal(f"homeserver {s.hs_address} not reachable: {e}") from None
            await asyncio.sleep(1)
    try:
        whoami = await intent.whoami()
    except MatrixRequestError as e:
        raise Fatal(f"homeserver rejected the as_token ({e.errcode}: {e.message}); "
                    "is the registration in app_service_config_files and Synapse restarted?") from None
    if whoami.user_id != bot:
        raise Fatal(f"as_token belongs to {whoami.user_id}, expected the bot {bot}")
    await intent.ensure_registered()
    if s.displayname:
        await intent.set_displayname(s.displayname)
    try:
        ms = await intent.appservice_ping(s.as_id, txn_id=f"standin-{os.getpid()}")
    except MatrixRequestError as e:
        raise Fatal(f"homeserver could not reach this appservice at {s.registration_url} "
                    f"({e.errcode}: {e.message})") from None
    appservice.ready = True
    log.info("ready: %s (homeserver -> appservice ping %d ms)", bot, ms)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await appservice.stop()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=os.environ.get("STANDIN_LOG_LEVEL", "INFO"), stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] not in FLAVOURS:
        print(f"usage: standin.py {{{','.join(FLAVOURS)}}} [bridge arguments]", file=sys.stderr)
        return 2
    flavour, rest = argv[0], argv[1:]
    # As PID 1 the default SIGTERM action would be ignored: exit at once until
    # the event loop installs its clean shutdown.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    kind, network, _unused = FLAVOURS[flavour]
    global log
    log = logging.getLogger(f"standin.{flavour}")
    try:
        if kind == "bridgev2":
            s = settings_bridgev2(flavour, network, rest)
        elif kind == "mxpuppet":
            s = settings_mxpuppet(flavour, rest)
        else:
            s = settings_wechaty(flavour, rest)
        log.info("stand-in for %s (uid %d, cwd %s): bot @%s:%s", flavour, os.getuid(),
                 os.getcwd(), s.bot_localpart, s.domain)
        open_database(s)
        asyncio.run(run(s))
    except Fatal as e:
        log.critical("%s", e)
        return 1
    except OSError as e:  # e.g. the listen address is taken or does not resolve
        log.critical("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
