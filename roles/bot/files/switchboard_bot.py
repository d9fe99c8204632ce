# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Switchboard's default Matrix bot: answers `!ping` and `help` in rooms its homeserver's users invite it to.

Python 3 with matrix-nio and its end-to-end encryption (python-olm): it reads and answers
in encrypted rooms too. Settings come from the environment:

  MATRIX_HOMESERVER_URL      client API base URL, e.g. http://synapse:8008 (required)
  MATRIX_ACCESS_TOKEN_FILE   file holding the access token (default /run/secrets/bot/access_token)
  MATRIX_ACCESS_TOKEN        the token itself, only when no file is given or found
  MATRIX_USER_ID             the bot's own user ID (asked from the homeserver when unset)
  MATRIX_BOT_DISPLAYNAME     display name to set at start (unset: leave it)
  MATRIX_BOT_HEARTBEAT_FILE  touched after each successful sync (default /tmp/switchboard-bot.heartbeat)
  MATRIX_BOT_ALLOWED_INVITERS  whose invites it accepts: server names and user ID globs
                             (@*:example.org), space-separated; default its own server.
                             Other invites are refused (the bot leaves).
  MATRIX_BOT_STORE_PATH      directory of the crypto store (the device's keys; keep it, and
                             back it up). Unset: no encryption (it says so in encrypted rooms).

`switchboard_bot.py --healthcheck` exits 0 when the heartbeat is fresh (the image's HEALTHCHECK)
and the bot has no problem to report: without a usable crypto store it writes the reason into
the heartbeat file and is unhealthy (Docker shows the reason), while it goes on answering.

The store belongs to one device: its file is named after the user and the device. A store
that does not match the device's keys on the homeserver (lost, or an older copy) is never
used: the bot then runs without encryption and says why in its log, until the device is
started anew (docs/BOT.md: the role logs the device out and in again when its store is gone).
nio is imported only to run the bot, so the pure logic below and --healthcheck need nothing
but the standard library.
"""

import asyncio
import fnmatch
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_TOKEN_FILE = "/run/secrets/bot/access_token"
DEFAULT_HEARTBEAT_FILE = "/tmp/switchboard-bot.heartbeat"
SYNC_TIMEOUT_MS = 30000
HEARTBEAT_MAX_AGE = 120  # seconds: four missed 30 s long polls

HELP_TEXT = (
    "Hello, I am the Switchboard bot. Commands:\n"
    "  !ping - I answer pong (is the homeserver working?)\n"
    "  help or !help - this text\n"
    "I answer in encrypted rooms too."
)
# Said once per room, in plain text, when the bot runs without its crypto store.
ENCRYPTED_TEXT = (
    "I cannot read encrypted messages right now: my encryption keys are not available "
    "(the server's admin can fix this: see docs/BOT.md, \"End-to-end encryption\"). "
    "Until then, talk to me in a room without end-to-end encryption."
)
# Said once per room when a message could not be decrypted although encryption works.
UNDECRYPTABLE_TEXT = (
    "I could not decrypt a message here: your client did not share its key with my "
    "device. If your client only sends to verified devices, allow unverified ones for this room."
)

# Keep each sync small: no presence, no account data, no read receipts or typing,
# a short timeline, lazy-loaded members. Members and the encryption state stay in:
# the encryption needs to know who is in an encrypted room.
SYNC_FILTER = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 10, "types": ["m.room.message", "m.room.encrypted", "m.room.member",
                                            "m.room.encryption"]},
        "state": {"lazy_load_members": True, "types": ["m.room.encryption", "m.room.member"]},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}


def first_sync_filter(nonce):
    """SYNC_FILTER, made unique for this start: Synapse answers a repeated initial sync from
    a cache for two minutes, so a bot restarted within that time would get its previous
    start's (stale) view and then answer what its predecessor already had. The extra
    account data type excludes nothing more."""
    return dict(SYNC_FILTER, account_data={"not_types": ["*", "org.switchboard.bot.start.%d" % nonce]})


def log(message):
    print(time.strftime("%Y-%m-%dT%H:%M:%S") + " " + message, flush=True)


# --- pure logic (unit-tested) ------------------------------------------------


def parse_command(body):
    """The command a message body asks for: 'ping', 'help', 'unknown' (a `!word` we
    do not know) or None (not meant for the bot)."""
    if not isinstance(body, str):
        return None
    words = body.strip().split()
    if not words:
        return None
    first = words[0].lower()
    if first == "!ping":
        return "ping"
    if first == "!help" or (first == "help" and len(words) == 1):
        return "help"
    if first.startswith("!") and len(first) > 1:
        return "unknown"
    return None


def reply_text(command):
    if command == "ping":
        return "pong"
    if command == "help":
        return HELP_TEXT
    if command == "unknown":
        return "I do not know that command. Send help for the list."
    return None


def notice(text, reply_to=None):
    content = {"msgtype": "m.notice", "body": text}
    if reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


def inviter_allowed(user_id, allowed):
    """Whether `user_id` may invite the bot: each allowed entry is a server name (its
    users) or a user ID glob such as @*:example.org or @alice:example.org."""
    if not isinstance(user_id, str) or not user_id.startswith("@") or ":" not in user_id:
        return False
    server = user_id.split(":", 1)[1]
    return any(server == entry if not entry.startswith("@") else fnmatch.fnmatchcase(user_id, entry)
               for entry in allowed)


def inviter(room, user_id):
    """Who invited `user_id` to an invited room, from its stripped state (None if unknown)."""
    for event in ((room or {}).get("invite_state") or {}).get("events") or []:
        if (isinstance(event, dict) and event.get("type") == "m.room.member" and event.get("state_key") == user_id
                and (event.get("content") or {}).get("membership") == "invite"):
            return event.get("sender")
    return None


def since_own_join(events, user_id):
    """The timeline events after the bot's own join, when the join is among them: what
    was said before it joined is history (and, in an encrypted room, not readable by it)."""
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if (isinstance(event, dict) and event.get("type") == "m.room.member" and event.get("state_key") == user_id
                and (event.get("content") or {}).get("membership") == "join"):
            return events[index + 1:]
    return events


def store_file_name(user_id, device_id):
    """The crypto store's file: one per user and device, so a store never serves another device."""
    return "%s_%s.db" % (user_id, device_id)


def store_decision(store_exists, server_key, store_key=None):
    """What to do with the crypto store at start.

    server_key: the device's ed25519 key the homeserver has (None: it has none);
    store_key: the one in the store (None: not opened yet).
    'open' (there is a store, not yet compared), 'use' (it matches, or the server has no
    keys yet: they are uploaded), 'new' (no store, no keys: a fresh device),
    'lost' (no store but the server has keys: they cannot be used any more),
    'mismatch' (the store holds other keys than the server's)."""
    if not store_exists:
        return "lost" if server_key else "new"
    if store_key is None:
        return "open"
    if server_key and server_key != store_key:
        return "mismatch"
    return "use"


class Bot:
    """Turns sync responses into actions; knows nothing about HTTP.

    Actions are tuples: ("join", room_id), ("leave", room_id) (an invite refused) and
    ("send", room_id, content). `encryption`: whether encrypted messages can be
    decrypted at all (the crypto store is in use); an m.room.encrypted event that
    reaches handle_event is one that could not be decrypted."""

    def __init__(self, user_id, allowed_inviters=None, encryption=False):
        self.user_id = user_id
        # Default: users of the bot's own homeserver only, so a stranger cannot pull it
        # into huge federated rooms.
        self.allowed_inviters = allowed_inviters or [user_id.split(":", 1)[-1]]
        self.encryption = encryption
        self.next_batch = None
        self.warned_encrypted = set()

    def handle_sync(self, response):
        first = self.next_batch is None
        self.next_batch = response.get("next_batch", self.next_batch)
        rooms = response.get("rooms") or {}
        actions = [("join" if inviter_allowed(inviter(room, self.user_id), self.allowed_inviters) else "leave", room_id)
                   for room_id, room in sorted((rooms.get("invite") or {}).items())]
        if first:
            # The first sync is history: never answer it, only take pending invites.
            return actions
        for room_id, room in sorted((rooms.get("join") or {}).items()):
            events = ((room or {}).get("timeline") or {}).get("events") or []
            for event in since_own_join(events, self.user_id):
                action = self.handle_event(room_id, event)
                if action:
                    actions.append(action)
        return actions

    def handle_event(self, room_id, event):
        if not isinstance(event, dict) or event.get("sender") == self.user_id:
            return None
        if "state_key" in event:
            return None
        kind = event.get("type")
        if kind == "m.room.encrypted":
            if room_id in self.warned_encrypted:
                return None
            self.warned_encrypted.add(room_id)
            return ("send", room_id, notice(UNDECRYPTABLE_TEXT if self.encryption else ENCRYPTED_TEXT))
        if kind != "m.room.message":
            return None
        content = event.get("content") or {}
        # Other bots speak in notices: never answer them (no bot loops). Edits are not new commands.
        if content.get("msgtype") != "m.text":
            return None
        if (content.get("m.relates_to") or {}).get("rel_type") == "m.replace":
            return None
        text = reply_text(parse_command(content.get("body")))
        if text is None:
            return None
        return ("send", room_id, notice(text, event.get("event_id")))


def read_settings(environ):
    """Settings from the environment; raises ValueError naming what is missing."""
    url = (environ.get("MATRIX_HOMESERVER_URL") or "").rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError("MATRIX_HOMESERVER_URL must be set to http(s)://host[:port]")
    token_file = environ.get("MATRIX_ACCESS_TOKEN_FILE") or DEFAULT_TOKEN_FILE
    token = ""
    try:
        with open(token_file, encoding="utf-8") as handle:
            token = handle.read().strip()
    except FileNotFoundError:
        token = (environ.get("MATRIX_ACCESS_TOKEN") or "").strip()
    if not token:
        raise ValueError("no access token: %s is missing or empty and MATRIX_ACCESS_TOKEN is unset" % token_file)
    return {
        "homeserver_url": url,
        "token": token,
        "user_id": environ.get("MATRIX_USER_ID") or "",
        "displayname": environ.get("MATRIX_BOT_DISPLAYNAME") or "",
        "heartbeat_file": environ.get("MATRIX_BOT_HEARTBEAT_FILE") or DEFAULT_HEARTBEAT_FILE,
        # Space-separated server names and user ID globs; empty: the bot's own server.
        "allowed_inviters": (environ.get("MATRIX_BOT_ALLOWED_INVITERS") or "").split(),
        # Empty: no crypto store, so no encryption.
        "store_path": environ.get("MATRIX_BOT_STORE_PATH") or "",
    }


def heartbeat_fresh(path, now, max_age=HEARTBEAT_MAX_AGE):
    try:
        return now - os.stat(path).st_mtime < max_age
    except OSError:
        return False


def health(path, now):
    """(healthy, why not): the heartbeat is fresh and holds no problem."""
    if not heartbeat_fresh(path, now):
        return False, "no successful sync for %d s" % HEARTBEAT_MAX_AGE
    try:
        with open(path, encoding="utf-8") as handle:
            problem = handle.read().strip()
    except OSError as err:
        return False, str(err)
    return not problem, problem


def backoff(failures):
    """Seconds to wait after this many failures in a row: 1, 2, 4, ... at most 60."""
    return min(60, 2 ** max(0, failures - 1))


# --- HTTP (start-up checks; nio does the rest) --------------------------------


class MatrixError(Exception):
    def __init__(self, status, errcode, error, retry_after_ms=None):
        super().__init__("HTTP %s %s %s" % (status, errcode or "", error or ""))
        self.status = status
        self.errcode = errcode
        self.retry_after_ms = retry_after_ms


class Client:
    def __init__(self, homeserver_url, token):
        self.base = homeserver_url
        self._token = token

    def request(self, method, path, body=None, query=None, timeout=60):
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", "Bearer " + self._token)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                detail = json.loads(err.read() or b"{}")
            except ValueError:
                detail = {}
            raise MatrixError(err.code, detail.get("errcode"), detail.get("error"),
                              detail.get("retry_after_ms")) from None

    def whoami(self):
        """(user ID, device ID) of the token."""
        answer = self.request("GET", "/_matrix/client/v3/account/whoami")
        return answer["user_id"], answer.get("device_id") or ""

    def device_key(self, user_id, device_id):
        """The ed25519 key the homeserver has for this device, or None."""
        answer = self.request("POST", "/_matrix/client/v3/keys/query", body={"device_keys": {user_id: [device_id]}})
        device = ((answer.get("device_keys") or {}).get(user_id) or {}).get(device_id) or {}
        return (device.get("keys") or {}).get("ed25519:" + device_id)

    def claim_own_one_time_keys(self, user_id, device_id, limit=200):
        """Claim (and so remove) this device's one-time keys left on the homeserver; returns how many."""
        body = {"one_time_keys": {user_id: {device_id: "signed_curve25519"}}}
        for claimed in range(limit):
            answer = self.request("POST", "/_matrix/client/v3/keys/claim", body=body)
            if not ((answer.get("one_time_keys") or {}).get(user_id) or {}).get(device_id):
                return claimed
        return limit

    def set_displayname(self, user_id, name):
        path = "/_matrix/client/v3/profile/%s/displayname" % urllib.parse.quote(user_id, safe="")
        if self.request("GET", path).get("displayname") != name:
            self.request("PUT", path, body={"displayname": name})


def touch(path, problem=""):
    """The heartbeat: its time is the last successful sync, its text what is wrong (empty: nothing)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(problem)


def retry(what, call):
    """call() until it works, waiting longer after each failure (the homeserver may be starting)."""
    failures = 0
    while True:
        try:
            return call()
        except (MatrixError, OSError, ValueError, KeyError) as err:
            failures += 1
            log("cannot %s (%s); retrying in %d s" % (what, err, backoff(failures)))
            time.sleep(backoff(failures))


def open_store(settings, http, user_id, device_id):
    """The nio client, with the crypto store when it can be used (else without encryption)."""
    # pylint: disable=import-outside-toplevel
    from nio import AsyncClient, AsyncClientConfig

    def client(encryption):
        # max_timeouts: nio would otherwise retry a lost connection forever, silently.
        config = AsyncClientConfig(encryption_enabled=encryption, store_name=store_file_name(user_id, device_id),
                                   max_timeouts=2, max_limit_exceeded=3, request_timeout=60)
        made = AsyncClient(settings["homeserver_url"], user_id, device_id,
                           store_path=settings["store_path"] if encryption else "", config=config)
        made.restore_login(user_id, device_id, settings["token"])
        return made

    if not settings["store_path"]:
        log("no crypto store (MATRIX_BOT_STORE_PATH is unset): running without encryption")
        return client(False), ""
    path = os.path.join(settings["store_path"], store_file_name(user_id, device_id))
    server_key = retry("ask for my device keys", lambda: http.device_key(user_id, device_id))
    decision = store_decision(os.path.exists(path), server_key)
    if decision == "lost":
        problem = ("device %s has keys on the homeserver but its crypto store %s is missing: the store was "
                   "lost. Running without encryption until the device is started anew: run the playbook "
                   "(docs/BOT.md)" % (device_id, path))
        log(problem)
        return client(False), problem
    try:
        made = client(True)
    except Exception as err:  # pylint: disable=broad-except
        # Whatever is wrong with the store (permissions, a damaged file), the bot still answers.
        problem = "cannot open the crypto store %s (%s): running without encryption" % (path, err)
        log(problem)
        return client(False), problem
    fresh = decision == "new"
    decision = store_decision(True, server_key, made.olm.account.identity_keys["ed25519"])
    if decision == "mismatch":
        made.store.database.close()
        # Moved aside, not deleted: the playbook then sees the store missing and renews the device.
        aside = "%s.mismatched-%d" % (path, int(time.time()))
        os.rename(path, aside)
        problem = ("the crypto store held other keys than device %s has on the homeserver: moved it to %s. "
                   "Running without encryption until the device is started anew: run the playbook "
                   "(docs/BOT.md)" % (device_id, aside))
        log(problem)
        return client(False), problem
    if not server_key:
        # A new device, or one deleted and logged in again: publish the store's keys (again).
        made.olm.account.shared = False
    log("crypto store %s: %s" % (path, "new" if fresh else "in use"))
    return made, ""


def raw_sync(response):
    """A nio SyncResponse as the dict Bot.handle_sync reads (decrypted events in place)."""
    def sources(events):
        return [getattr(event, "source", None) for event in events]

    def stripped(event):
        # nio keeps an invite's member content beside its source, not in it.
        source = dict(getattr(event, "source", None) or {})
        if "content" not in source and isinstance(getattr(event, "content", None), dict):
            source["content"] = event.content
        return source
    return {"next_batch": response.next_batch, "rooms": {
        "invite": {room_id: {"invite_state": {"events": [stripped(event) for event in info.invite_state]}}
                   for room_id, info in response.rooms.invite.items()},
        "join": {room_id: {"timeline": {"events": sources(info.timeline.events)}}
                 for room_id, info in response.rooms.join.items()},
    }}


class Runner:
    """The sync loop: nio keeps the crypto state, Bot decides what to say."""

    def __init__(self, settings, http, client, user_id, problem=""):
        self.settings, self.http, self.client, self.user_id = settings, http, client, user_id
        self.problem = problem
        self.bot = Bot(user_id, settings.get("allowed_inviters"), encryption=client.olm is not None)
        self.upload_not_before = 0.0

    async def keep_keys(self):
        """What nio's own sync loop does after each sync: publish, fetch and claim keys as needed."""
        client = self.client
        if client.should_upload_keys and time.monotonic() >= self.upload_not_before:
            answer = await client.keys_upload()
            if "already exists" in str(getattr(answer, "message", "")):
                # One-time keys of an older copy of this store are still on the homeserver
                # under the same key IDs: claim them away, then publish ours.
                claimed = self.http.claim_own_one_time_keys(self.user_id, client.device_id)
                log("removed %d stale one-time keys of my device from the homeserver" % claimed)
                answer = await client.keys_upload()
            if getattr(answer, "message", None):
                self.upload_not_before = time.monotonic() + 300
                log("cannot publish my encryption keys: %s (retrying in 300 s)" % answer.message)
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        await client.send_to_device_messages()

    async def act(self, action):
        # pylint: disable=import-outside-toplevel
        from nio import ErrorResponse
        kind, room_id = action[0], action[1]
        if kind == "join":
            answer = await self.client.join(room_id)
        elif kind == "leave":
            answer = await self.client.room_leave(room_id)
        else:
            # Trust on first use: a reply goes to every device in the room, verified or not.
            answer = await self.client.room_send(room_id, "m.room.message", action[2], ignore_unverified_devices=True)
        if isinstance(answer, ErrorResponse):
            raise MatrixError(getattr(answer, "status_code", None), None, answer.message)
        if kind == "join":
            log("joined %s" % room_id)
        elif kind == "leave":
            log("refused the invite to %s: the inviter is not in MATRIX_BOT_ALLOWED_INVITERS" % room_id)

    async def run(self):
        # pylint: disable=import-outside-toplevel
        import aiohttp
        from nio import SyncError
        log("running as %s (device %s, %s) against %s" % (
            self.user_id, self.client.device_id, "end-to-end encryption on" if self.bot.encryption else "no encryption",
            self.settings["homeserver_url"]))
        failures = 0
        while True:
            first = self.bot.next_batch is None
            try:
                response = await self.client.sync(
                    timeout=0 if first else SYNC_TIMEOUT_MS,
                    sync_filter=first_sync_filter(time.time_ns()) if first else SYNC_FILTER,
                    since=self.bot.next_batch)
                if isinstance(response, SyncError):
                    raise MatrixError(response.transport_response.status if response.transport_response else None,
                                      response.status_code, response.message, response.retry_after_ms)
            except (MatrixError, OSError, ValueError, aiohttp.ClientError, asyncio.TimeoutError) as err:
                failures += 1
                wait = backoff(failures)
                if isinstance(err, MatrixError) and err.retry_after_ms:
                    wait = max(wait, min(300, err.retry_after_ms / 1000))
                elif isinstance(err, MatrixError) and (err.status == 401 or err.errcode == "M_UNKNOWN_TOKEN"):
                    wait = 300
                    log("the homeserver refuses my access token (%s): get a new one (see docs/BOT.md)" % err)
                log("sync failed (%s); retrying in %d s" % (err, wait))
                await asyncio.sleep(wait)
                continue
            failures = 0
            try:
                touch(self.settings["heartbeat_file"], self.problem)
            except OSError as err:
                log("cannot write the heartbeat file: %s" % err)
            if self.client.olm is not None:
                try:
                    await self.keep_keys()
                except Exception as err:  # pylint: disable=broad-except
                    log("key maintenance failed: %s" % err)
            for action in self.bot.handle_sync(raw_sync(response)):
                try:
                    await self.act(action)
                except Exception as err:  # pylint: disable=broad-except
                    # One room's failure (a room left meanwhile, a network error) must not stop the bot.
                    log("%s in %s failed: %s" % (action[0], action[1], err))


def run(settings):
    http = Client(settings["homeserver_url"], settings["token"])
    user_id, device_id = retry("ask who I am", http.whoami)
    if settings["user_id"] and settings["user_id"] != user_id:
        log("MATRIX_USER_ID is %s but the token is %s's: using %s" % (settings["user_id"], user_id, user_id))
    if settings["displayname"]:
        try:
            http.set_displayname(user_id, settings["displayname"])
        except (MatrixError, OSError, ValueError) as err:
            log("cannot set my display name: %s" % err)
    client, problem = open_store(settings, http, user_id, device_id)
    try:
        asyncio.run(Runner(settings, http, client, user_id, problem).run())
    finally:
        if client.store is not None:
            client.store.database.close()


def main(argv):
    if argv[1:] == ["--healthcheck"]:
        healthy, problem = health(os.environ.get("MATRIX_BOT_HEARTBEAT_FILE") or DEFAULT_HEARTBEAT_FILE, time.time())
        if problem:
            print(problem)
        return 0 if healthy else 1
    # As PID 1 in a container, SIGTERM is ignored unless handled: stop at once on `docker stop`.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    # The crypto store holds the device's private keys: files only the bot's uid reads.
    os.umask(0o077)
    try:
        settings = read_settings(os.environ)
    except (ValueError, OSError) as err:
        log("cannot start: %s" % err)
        return 2
    try:
        run(settings)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
