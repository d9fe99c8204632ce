"""Test-only stand-in for the Go Matrix bridges that cannot be built here.

One program plays three bridges ("personas"), each started through the real
image's executable path with the real flags (-c, -r, --no-update):

  mautrix-telegram  go.mau.fi/mautrix-telegram v0.2608.0  mautrix-go v0.30.0, bridgev2
  mautrix-discord   go.mau.fi/mautrix-discord v0.7.7      mautrix-go v0.16.3-..., "bridgev1"
  matrix-wechat     github.com/duo/matrix-wechat 4c815c8  mautrix-go v0.16.2, "bridgev1"

("bridgev1" here means mautrix-go's older `bridge` package.)

Config handling follows upstream's, because that decides whether a role's
config starts the real bridge: upstream merges the user's config onto its
example config (a key that is missing, or has the wrong YAML type, keeps the
example's value), then refuses the example's placeholder values with fixed
messages and exit codes. The stand-in carries the example values it needs and
the same checks, in the same order, with the same texts.

After that it does what the tests can observe of a running bridge: opens its
database (SQLite file, or a TCP connection to PostgreSQL), serves the
appservice API (transactions, ping) on appservice.hostname:port, checks its
as_token with whoami, registers its bot, has Synapse ping it, joins DMs from
permitted users and answers `help` and `login` with notices that say it is a
stand-in. It never talks to Telegram, Discord or WeChat.

Usage (through the wrappers in /usr/bin): standin.py PERSONA [bridge flags...]
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
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import yaml
from mautrix.appservice import AppService
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store import MemoryStateStore
from mautrix.errors import MatrixRequestError
from mautrix.types import EventType, Membership, MessageType, TextMessageEventContent

HS_WAIT_SECONDS = int(os.environ.get("STANDIN_HS_WAIT_SECONDS", "120"))
PLACEHOLDER_TOKEN = "This value is generated when generating the registration"
EXAMPLE_DB_URI = "postgres://user:password@host/database?sslmode=disable"
EXAMPLE_PERMISSIONS = {"*": "relay", "example.com": "user", "@admin:example.com": "admin"}


@dataclass
class Persona:
    framework: str  # "bridgev2", or "bridgev1": mautrix-go's old `bridge` package
    network: str
    upstream: str
    example: dict  # the example config's values for the keys the stand-in reads
    extra_checks: list = field(default_factory=list)  # run after the framework's checks
    # Newer mautrix-go (bridgev2, and the bridgev1 of mautrix-discord v0.7.7) registers its
    # bot when /versions answers M_FORBIDDEN (a bot that is not the appservice's sender and
    # not registered yet); v0.16.2 (matrix-wechat) only retries.
    registers_on_forbidden: bool = True


def _example(framework, *, hs_address, port, hostname, netid, bot, username_template, permissions):
    """The parts of an example config the stand-in reads (the values are upstream's)."""
    database = {"type": "postgres", "uri": EXAMPLE_DB_URI}
    c = {
        "homeserver": {"address": hs_address, "domain": "example.com", "software": "standard",
                       "websocket": False},
        "appservice": {"address": f"http://localhost:{port}", "hostname": hostname, "port": port,
                       "id": netid, "bot": {"username": f"{netid}bot", "displayname": bot},
                       "as_token": PLACEHOLDER_TOKEN, "hs_token": PLACEHOLDER_TOKEN},
        "bridge": {"permissions": permissions},
    }
    if framework == "bridgev2":
        c["database"] = database
        c["appservice"]["username_template"] = username_template
    else:  # the old framework keeps these elsewhere
        c["appservice"]["database"] = database
        c["bridge"]["username_template"] = username_template
    return c


def telegram_checks(c: dict) -> str | None:
    """TelegramConnector.ValidateConfig (pkg/connector/config.go)."""
    if get(c, "network.api_id") == 0:
        return "api_id is required"
    if get(c, "network.api_hash") in ("", "tjyd5yge35lbodk1xwzw2jstp90k55qz"):
        return "api_hash is required"
    target = get(c, "network.animated_sticker.target")
    if target not in ("disable", "gif", "png", "webp", "webm"):
        return f"unsupported animated sticker target: {target}"
    return None


_tg = _example("bridgev2", hs_address="http://example.localhost:8008", port=29317,
               hostname="127.0.0.1", netid="telegram", bot="Telegram bridge bot",
               username_template="telegram_{{.}}", permissions=EXAMPLE_PERMISSIONS)
_tg["network"] = {"api_id": 12345, "api_hash": "tjyd5yge35lbodk1xwzw2jstp90k55qz",
                  "animated_sticker": {"target": "gif"}}
_dc = _example("bridgev1", hs_address="https://matrix.example.com", port=29334, hostname="0.0.0.0",
               netid="discord", bot="Discord bridge bot", username_template="discord_{{.}}",
               permissions=EXAMPLE_PERMISSIONS)
_wc = _example("bridgev1", hs_address="https://matrix.example.com", port=17778, hostname="0.0.0.0",
               netid="wechat", bot="WeChat bridge bot", username_template="_wechat_{{.}}",
               permissions={"example.com": "user", "@admin:example.com": "admin"})

PERSONAS = {
    "mautrix-telegram": Persona("bridgev2", "Telegram",
                                "go.mau.fi/mautrix-telegram@v0.2608.0 (maunium.net/go/mautrix@v0.30.0)",
                                _tg, [telegram_checks]),
    "mautrix-discord": Persona("bridgev1", "Discord",
                               "go.mau.fi/mautrix-discord@v0.7.7 "
                               "(maunium.net/go/mautrix@v0.16.3-0.20250810202616-6bc5698125c2)", _dc),
    "matrix-wechat": Persona("bridgev1", "WeChat",
                             "github.com/duo/matrix-wechat@4c815c80dfb8 (maunium.net/go/mautrix@v0.16.2)",
                             _wc, registers_on_forbidden=False),
}
# Top-level sections each framework reads; anything else is dropped by upstream's
# config upgrader without a word (the stand-in says so, to save a debugging session).
SECTIONS = {
    "bridgev2": {"network", "bridge", "database", "homeserver", "appservice", "matrix", "analytics",
                 "provisioning", "public_media", "direct_media", "backfill", "double_puppet",
                 "encryption", "env_config_prefix", "logging"},
    "bridgev1": {"homeserver", "appservice", "bridge", "logging"},
}
# bridgev2: level name -> may the user invite the bot and use commands (`commands` and up).
# bridgev1: level name -> number; the bot serves `user` (10) and up.
BRIDGEV2_COMMANDS = {"block": False, "relay": False, "commands": True, "user": True, "admin": True}
BRIDGEV1_LEVELS = {"block": 0, "relay": 5, "user": 10, "admin": 100}

log = logging.getLogger("standin")


class Fatal(Exception):
    """A startup error: printed as one line; `code` is upstream's exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def config_error(text: str) -> Fatal:
    # Upstream logs this at fatal level as zerolog's `Configuration error error="..."`.
    return Fatal(f'Configuration error error="{text}"', 11)


class StateStore(ASStateStore, MemoryStateStore):
    """In memory: the stand-in writes nothing but its database file."""

    def __init__(self) -> None:
        ASStateStore.__init__(self)
        MemoryStateStore.__init__(self)


# ---------------------------------------------------------------- config --

_MISSING = object()
# Keys upstream's upgrader copies as "string or null" / "int or null".
NULLABLE = {"appservice.address", "appservice.hostname", "appservice.port"}
# YAML tag of a PyYAML value, as upstream's config upgrader names it.
_TAGS = ((bool, "!!bool"), (int, "!!int"), (float, "!!float"), (str, "!!str"),
         (type(None), "!!null"), (dict, "!!map"), (list, "!!seq"))


def tag_of(value) -> str:
    return next((t for kind, t in _TAGS if isinstance(value, kind)), "!!timestamp")


def get(data: dict, path: str, default=None):
    cur = data
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def merge(user: dict, example: dict, prefix: str = "") -> dict:
    """The user's values over the example's, key by key, like upstream's upgrader:
    a leaf whose YAML type differs from the example's is ignored with a warning."""
    out = {}
    for key, base in example.items():
        path = f"{prefix}{key}"
        value = user.get(key, _MISSING) if isinstance(user, dict) else _MISSING
        if isinstance(base, dict) and key != "permissions":
            out[key] = merge(value if isinstance(value, dict) else {}, base, path + ".")
        elif value is _MISSING:
            out[key] = base
        elif tag_of(value) == tag_of(base) or (value is None and path in NULLABLE):
            out[key] = value
        else:
            print(f"Ignoring incorrect config field type {tag_of(value)} at {path.replace('.', '->')}",
                  file=sys.stderr)
            out[key] = base
    return out


def load_config(path: str, persona: Persona) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        print(f"Error updating config: failed to read config: open {path}: {e.strerror.lower()}",
              file=sys.stderr)
        raise Fatal(f"cannot read config {path} as uid {os.getuid()}", 10) from None
    try:
        user = yaml.safe_load(text)
    except yaml.YAMLError as e:
        print(f"Error updating config: failed to unmarshal config: {e}", file=sys.stderr)
        raise Fatal(f"config {path} is not valid YAML", 10) from None
    user = user if isinstance(user, dict) else {}  # upstream: an empty or odd file = the example
    if persona.framework == "bridgev2" and isinstance(get(user, "appservice"), dict) \
            and "database" in user["appservice"]:
        # *stricter*: upstream would migrate a pre-bridgev2 config in place.
        raise Fatal(f"{path}: `appservice.database` is the pre-bridgev2 layout; upstream migrates it "
                    "(\"Migrating legacy bridge config\"), the stand-in does not: use `database`")
    for key in user:
        if key not in SECTIONS[persona.framework]:
            log.warning("%s: top-level key `%s` is not read by %s (upstream drops it silently)",
                        path, key, persona.upstream.split(" ")[0])
    c = merge(user, persona.example)
    if persona.framework == "bridgev2" and get(c, "database.type") == "sqlite3":
        print("Warning: invalid database type sqlite3 in config. Autocorrecting to sqlite3-fk-wal")
    for key in ("database", "appservice.database"):
        if get(c, key + ".type") == "sqlite3":
            get(c, key)["type"] = "sqlite3-fk-wal"
    return c


def has_placeholder(template: str) -> bool:
    """Upstream renders the template with 1234567890 and looks for it."""
    return bool(re.search(r"\{\{-?\s*\.\s*-?\}\}", template))


def parse_permissions(perms: dict, framework: str):
    """Returns mxid -> may the user use the bot (join DMs, run commands)."""
    allowed = {}
    for who, value in perms.items():
        if framework == "bridgev2":
            # bridgeconfig.Permissions.UnmarshalYAML: a level name, a map, or a deprecated int.
            if isinstance(value, str):
                if value.lower() not in BRIDGEV2_COMMANDS:
                    raise parse_error(f"invalid permissions level {value}")
                allowed[who] = BRIDGEV2_COMMANDS[value.lower()]
            elif isinstance(value, dict):  # the bot needs both to accept an invite
                allowed[who] = bool(value.get("send_events") and value.get("commands"))
            elif isinstance(value, int) and not isinstance(value, bool):
                print("Warning: config contains deprecated integer permission values", file=sys.stderr)
                allowed[who] = value >= 10
            else:
                raise parse_error(f"invalid permissions type {tag_of(value)}")
        else:
            # The old PermissionConfig: a name, or a number; anything else is `block`.
            if isinstance(value, (dict, list)):
                raise parse_error(f"cannot unmarshal {tag_of(value)} into string")
            text = str(value).lower()
            level = BRIDGEV1_LEVELS.get(text, int(text) if re.fullmatch(r"[+-]?\d+", text) else 0)
            allowed[who] = level >= BRIDGEV1_LEVELS["user"]

    def may_use(mxid: str) -> bool:
        server = mxid.split(":", 1)[1] if ":" in mxid else ""
        for key in (mxid, server, "*"):
            if key and key in allowed:
                return allowed[key]
        return False
    return may_use


def parse_error(text: str) -> Fatal:
    print(f"Failed to parse config: {text}", file=sys.stderr)
    return Fatal(f"config not loaded: {text}", 10)


def validate(c: dict, persona: Persona) -> None:
    """mxmain.validateConfig (bridgev2) / bridge.validateConfig (old), in their order."""
    v2 = persona.framework == "bridgev2"
    db = "database" if v2 else "appservice.database"
    checks = [
        (get(c, "homeserver.address") == persona.example["homeserver"]["address"],
         "homeserver.address not configured"),
        (get(c, "homeserver.domain") == "example.com", "homeserver.domain not configured"),
        (get(c, "homeserver.software") not in ("standard", "asmux", "hungry"),
         "invalid value for homeserver.software (use `standard` if you don't know what the field is for)"),
        (get(c, "appservice.as_token") == PLACEHOLDER_TOKEN,
         "appservice.as_token not configured. Did you forget to generate the registration? "),
        (get(c, "appservice.hs_token") == PLACEHOLDER_TOKEN,
         "appservice.hs_token not configured. Did you forget to generate the registration? "),
        (get(c, db + ".uri") == EXAMPLE_DB_URI,
         "database.uri not configured" if v2 else "appservice.database not configured"),
    ]
    perms = get(c, "bridge.permissions")
    examples = sum(k in perms for k in EXAMPLE_PERMISSIONS)
    checks.append((len(perms) <= examples, "bridge.permissions not configured"))
    if v2:
        checks.append((not has_placeholder(get(c, "appservice.username_template")),
                       "username template is missing user ID placeholder"))
    for failed, text in checks:
        if failed:
            raise config_error(text)
    for check in persona.extra_checks:
        text = check(c)
        if text:
            raise config_error(text)


@dataclass
class Settings:
    persona: str
    hs_address: str
    domain: str
    as_id: str
    as_token: str
    hs_token: str
    bot_localpart: str
    displayname: str
    listen_host: str
    listen_port: int
    registration_url: str
    db_type: str
    db_uri: str
    may_use: object


def settings(name: str, argv: list[str]) -> Settings:
    persona = PERSONAS[name]
    v2 = persona.framework == "bridgev2"
    # mauflag, as both frameworks define it (bridgev2 adds -e and --ignore-unsupported-server).
    p = argparse.ArgumentParser(prog=f"/usr/bin/{name}", allow_abbrev=False,
                                description=f"switchboard test stand-in for {name}")
    p.add_argument("-c", "--config", default="config.yaml")
    # Accepted as upstream does; like upstream, only -g reads or writes it.
    p.add_argument("-r", "--registration", default="registration.yaml")
    p.add_argument("-n", "--no-update", action="store_true")
    p.add_argument("-g", "--generate-registration", action="store_true")
    p.add_argument("-v", "--version", action="store_true")
    p.add_argument("--version-json", action="store_true")
    p.add_argument("--ignore-unsupported-database", action="store_true")
    p.add_argument("--ignore-foreign-tables", action="store_true")
    if v2:
        p.add_argument("-e", "--generate-example-config", action="store_true")
        p.add_argument("--ignore-unsupported-server", action="store_true")
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        sys.exit(1 if e.code == 2 else e.code)  # upstream exits 1 on a bad flag
    if a.version or a.version_json:
        print(f"{name} (switchboard stand-in for {persona.upstream})")
        sys.exit(0)
    if a.generate_registration or getattr(a, "generate_example_config", False):
        raise Fatal("-g/-e are not implemented by the stand-in: the roles write config and registration")
    if not a.no_update:
        log.warning("started without --no-update: the real bridge would now rewrite %s", a.config)

    path = a.config
    c = load_config(path, persona)
    perms = get(c, "bridge.permissions")
    template = get(c, "appservice.username_template" if v2 else "bridge.username_template")
    may_use = parse_permissions(perms, persona.framework)
    if not v2 and not has_placeholder(template):
        # The old framework checks this while parsing (exit 10), bridgev2 while validating.
        raise parse_error("username template is missing user ID placeholder")
    validate(c, persona)
    if v2 and get(c, "env_config_prefix"):
        raise Fatal(f"{path}: `env_config_prefix` is not implemented by the stand-in")
    if get(c, "homeserver.websocket"):
        raise Fatal(f"{path}: the appservice websocket is not implemented by the stand-in")
    port = get(c, "appservice.port") or 0
    if not port:
        raise Fatal("Neither appservice HTTP listener nor websocket is enabled", 23)
    db = "database" if v2 else "appservice.database"
    s = Settings(
        persona=name, hs_address=get(c, "homeserver.address"), domain=get(c, "homeserver.domain"),
        as_id=get(c, "appservice.id"), as_token=get(c, "appservice.as_token"),
        hs_token=get(c, "appservice.hs_token"), bot_localpart=get(c, "appservice.bot.username"),
        displayname=get(c, "appservice.bot.displayname"),
        listen_host=get(c, "appservice.hostname") or "0.0.0.0", listen_port=port,
        registration_url=get(c, "appservice.address") or "",
        db_type=get(c, db + ".type"), db_uri=get(c, db + ".uri"), may_use=may_use)
    return s


# -------------------------------------------------------------- database --

def open_database(s: Settings) -> None:
    if s.db_type in ("sqlite3-fk-wal", "litestream"):
        # `file:<path>?_txlock=immediate` or a raw path, relative to the working directory.
        path = s.db_uri[len("file:"):] if s.db_uri.startswith("file:") else s.db_uri
        path = os.path.abspath(path.split("?", 1)[0])
        try:
            with sqlite3.connect(path) as db:
                db.execute("CREATE TABLE IF NOT EXISTS standin (persona TEXT PRIMARY KEY)")
                db.execute("INSERT OR IGNORE INTO standin VALUES (?)", (s.persona,))
        except sqlite3.Error as e:
            raise Fatal(f"cannot open SQLite database {path} as uid {os.getuid()}: {e}", 14) from None
        log.info("database: SQLite %s", path)
    elif s.db_type == "postgres":
        u = urlsplit(s.db_uri)
        if u.scheme not in ("postgres", "postgresql") or not u.hostname:
            raise Fatal("the stand-in only reaches PostgreSQL at postgres://user:pass@host[:port]/db, "
                        f"not {u.scheme}://{u.hostname or ''}...", 14)
        host, port = unquote(u.hostname), u.port or 5432
        for attempt in range(30):
            try:
                socket.create_connection((host, port), timeout=3).close()
                break
            except OSError as e:
                if attempt == 29:
                    raise Fatal(f"cannot reach PostgreSQL at {host}:{port}: {e}", 14) from None
                time.sleep(1)
        log.info("database: PostgreSQL at %s:%s (reachable; not logged in)", host, port)
    else:
        # database/sql's answer to a driver name nobody registered.
        raise Fatal(f'Failed to initialize database connection error="sql: unknown driver '
                    f'\\"{s.db_type}\\" (forgotten import?)"', 14)


# ------------------------------------------------------------------ bot --

def command_of(body: str) -> str:
    """`help`, `!help`, `!tg help` all mean help."""
    words = body.strip().lower().split()
    if not words:
        return ""
    if words[0].startswith("!") and len(words) > 1:
        words = words[1:]
    return words[0].lstrip("!")


async def run(s: Settings) -> None:
    persona = PERSONAS[s.persona]
    appservice = AppService(
        server=s.hs_address.rstrip("/"), domain=s.domain, as_token=s.as_token,
        hs_token=s.hs_token, bot_localpart=s.bot_localpart, id=s.as_id,
        state_store=StateStore(), log=f"standin.{s.persona}", bridge_name=s.persona)
    if persona.framework == "bridgev1":
        # mautrix-go v0.16's appservice package also routes MSC2659's unstable ping path.
        appservice.app.router.add_route("POST", "/_matrix/app/unstable/fi.mau.msc2659/ping",
                                        appservice._http_ping)
    bot = appservice.bot_mxid
    answers = {
        "help": f"stand-in for {s.persona}: commands: help, login",
        "login": f"stand-in for {s.persona}: this is a test stand-in, it cannot log in to "
                 f"{persona.network} and bridges nothing.",
    }

    async def on_event(evt) -> None:
        intent = appservice.intent
        if evt.type == EventType.ROOM_MEMBER and evt.state_key == bot \
                and evt.content.membership == Membership.INVITE:
            if s.may_use(evt.sender):
                log.info("invited to %s by %s: joining", evt.room_id, evt.sender)
                await intent.join_room_by_id(evt.room_id)
            elif persona.framework == "bridgev2":
                # bridgev2 rejects the invite without joining.
                log.info("invited to %s by %s: no permission, rejecting", evt.room_id, evt.sender)
                await intent.leave_room(evt.room_id, reason="stand-in: you may not use this bridge")
            else:
                # The old framework joins, says why, and leaves.
                log.info("invited to %s by %s: below `user`, leaving", evt.room_id, evt.sender)
                await intent.join_room_by_id(evt.room_id)
                await intent.send_notice(evt.room_id, "stand-in: your bridge.permissions level is "
                                                      "below `user`, so I am leaving.")
                await intent.leave_room(evt.room_id)
        elif evt.type == EventType.ROOM_MESSAGE and evt.sender != bot \
                and evt.content.msgtype == MessageType.TEXT:
            cmd = command_of(evt.content.body or "")
            if cmd not in answers:
                return
            if not s.may_use(evt.sender):
                log.info("%s from %s ignored: no permission", cmd, evt.sender)
                return
            await intent.send_message(evt.room_id, TextMessageEventContent(
                msgtype=MessageType.NOTICE, body=answers[cmd]))
            log.info("answered %s from %s in %s", cmd, evt.sender, evt.room_id)

    appservice.matrix_event_handler(on_event)

    await appservice.start(host=s.listen_host, port=s.listen_port)
    log.info("appservice API listening on %s:%d (registration url: %s)",
             s.listen_host, s.listen_port, s.registration_url)
    try:
        await connect(s, appservice)
        appservice.ready = True
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
    finally:
        await appservice.stop()


async def connect(s: Settings, appservice: AppService) -> None:
    """What upstream does before it calls itself started: wait for the homeserver (registering
    the bot first where upstream does), prove the as_token is the bot's, register the bot, have
    Synapse ping us."""
    intent, bot = appservice.intent, appservice.bot_mxid
    # Upstream retries /versions forever; the stand-in gives up after a while.
    for attempt in range(HS_WAIT_SECONDS):
        try:
            await intent.versions()
            break
        except Exception as e:  # noqa: BLE001 - connection errors of every kind
            if getattr(e, "errcode", None) == "M_FORBIDDEN" and PERSONAS[s.persona].registers_on_forbidden:
                log.info("M_FORBIDDEN in /versions, trying to register before retrying")
                await intent.ensure_registered()
                continue
            if attempt == 0:
                log.warning("Failed to connect to homeserver %s (%s); retrying for up to %d s",
                            s.hs_address, e, HS_WAIT_SECONDS)
            if attempt == HS_WAIT_SECONDS - 1:
                raise Fatal(f"homeserver {s.hs_address} not reachable: {e}", 16) from None
            await asyncio.sleep(1)
    try:
        whoami = await intent.whoami()
    except MatrixRequestError as e:
        raise Fatal(f"homeserver rejected the as_token ({e.errcode}: {e.message}); "
                    "is the registration in app_service_config_files and Synapse restarted?", 16) from None
    if whoami.user_id != bot:
        raise Fatal(f"as_token belongs to {whoami.user_id}, expected the bot {bot}", 17)
    await intent.ensure_registered()
    if s.displayname and s.displayname != "remove":
        await intent.set_displayname(s.displayname)
    try:
        ms = await intent.appservice_ping(s.as_id, txn_id=f"standin-{os.getpid()}")
    except MatrixRequestError as e:
        raise Fatal(f"homeserver could not reach this appservice at {s.registration_url} "
                    f"({e.errcode}: {e.message})", 13) from None
    log.info("ready: %s (homeserver -> appservice ping %d ms)", bot, ms)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=os.environ.get("STANDIN_LOG_LEVEL", "INFO"), stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] not in PERSONAS:
        print(f"usage: standin.py {{{','.join(PERSONAS)}}} [bridge flags]", file=sys.stderr)
        return 2
    name = argv[0]
    # As PID 1 the default SIGTERM action would be ignored: exit at once until
    # the event loop installs its clean shutdown.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    global log
    log = logging.getLogger(f"standin.{name}")
    try:
        s = settings(name, argv[1:])
        log.info("stand-in for %s (uid %d, cwd %s): config accepted, bot @%s:%s",
                 PERSONAS[name].upstream, os.getuid(), os.getcwd(), s.bot_localpart, s.domain)
        open_database(s)
        asyncio.run(run(s))
    except Fatal as e:
        log.critical("%s", e)
        return e.code
    except OSError as e:  # e.g. the listen address is taken or does not resolve
        log.critical("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
