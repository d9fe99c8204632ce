# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Switchboard's default Matrix bot: answers `!ping` and `help` in rooms its homeserver's users invite it to.

Python 3 standard library only. Settings come from the environment:

  MATRIX_HOMESERVER_URL      client API base URL, e.g. http://synapse:8008 (required)
  MATRIX_ACCESS_TOKEN_FILE   file holding the access token (default /run/secrets/bot/access_token)
  MATRIX_ACCESS_TOKEN        the token itself, only when no file is given or found
  MATRIX_USER_ID             the bot's own user ID (asked from the homeserver when unset)
  MATRIX_BOT_DISPLAYNAME     display name to set at start (unset: leave it)
  MATRIX_BOT_HEARTBEAT_FILE  touched after each successful sync (default /tmp/switchboard-bot.heartbeat)
  MATRIX_BOT_ALLOWED_INVITERS  whose invites it accepts: server names and user ID globs
                             (@*:example.org), space-separated; default its own server.
                             Other invites are refused (the bot leaves).

`switchboard_bot.py --healthcheck` exits 0 when the heartbeat is fresh (the image's HEALTHCHECK).
"""

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
    "I cannot read end-to-end encrypted messages: talk to me in a room without encryption."
)
ENCRYPTED_TEXT = (
    "I cannot read encrypted messages. Please talk to me in a room without "
    "end-to-end encryption (create it with encryption turned off)."
)

# Keep each sync small: no presence, no account data, no read receipts or typing,
# a short timeline, lazy-loaded members.
SYNC_FILTER = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 10, "types": ["m.room.message", "m.room.encrypted"]},
        "state": {"lazy_load_members": True, "types": ["m.room.encryption"]},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}


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


class Bot:
    """Turns sync responses into actions; knows nothing about HTTP.

    Actions are tuples: ("join", room_id), ("leave", room_id) (an invite refused) and
    ("send", room_id, content)."""

    def __init__(self, user_id, allowed_inviters=None):
        self.user_id = user_id
        # Default: users of the bot's own homeserver only, so a stranger cannot pull it
        # into huge federated rooms.
        self.allowed_inviters = allowed_inviters or [user_id.split(":", 1)[-1]]
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
            for event in events:
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
            return ("send", room_id, notice(ENCRYPTED_TEXT))
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
    }


def heartbeat_fresh(path, now, max_age=HEARTBEAT_MAX_AGE):
    try:
        return now - os.stat(path).st_mtime < max_age
    except OSError:
        return False


def backoff(failures):
    """Seconds to wait after this many failures in a row: 1, 2, 4, ... at most 60."""
    return min(60, 2 ** max(0, failures - 1))


# --- HTTP --------------------------------------------------------------------


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
        self._txn = 0
        self._txn_prefix = "sb%d" % int(time.time() * 1000)

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
        return self.request("GET", "/_matrix/client/v3/account/whoami")["user_id"]

    def sync(self, since, filter_json):
        query = {"filter": filter_json, "timeout": str(SYNC_TIMEOUT_MS if since else 0)}
        if since:
            query["since"] = since
        return self.request("GET", "/_matrix/client/v3/sync", query=query, timeout=SYNC_TIMEOUT_MS / 1000 + 30)

    def join(self, room_id):
        self.request("POST", "/_matrix/client/v3/rooms/%s/join" % urllib.parse.quote(room_id, safe=""), body={})

    def leave(self, room_id):
        self.request("POST", "/_matrix/client/v3/rooms/%s/leave" % urllib.parse.quote(room_id, safe=""), body={})

    def send(self, room_id, content):
        self._txn += 1
        path = "/_matrix/client/v3/rooms/%s/send/m.room.message/%s-%d" % (
            urllib.parse.quote(room_id, safe=""), self._txn_prefix, self._txn)
        self.request("PUT", path, body=content)

    def set_displayname(self, user_id, name):
        path = "/_matrix/client/v3/profile/%s/displayname" % urllib.parse.quote(user_id, safe="")
        if self.request("GET", path).get("displayname") != name:
            self.request("PUT", path, body={"displayname": name})


def touch(path):
    with open(path, "a", encoding="utf-8"):
        pass
    os.utime(path, None)


def run(settings):
    client = Client(settings["homeserver_url"], settings["token"])
    user_id = settings["user_id"]
    failures = 0
    while not user_id:
        try:
            user_id = client.whoami()
        except (MatrixError, OSError, ValueError) as err:
            failures += 1
            log("cannot ask who I am (%s); retrying in %d s" % (err, backoff(failures)))
            time.sleep(backoff(failures))
    if settings["displayname"]:
        try:
            client.set_displayname(user_id, settings["displayname"])
        except (MatrixError, OSError, ValueError) as err:
            log("cannot set my display name: %s" % err)
    bot = Bot(user_id, settings.get("allowed_inviters"))
    filter_json = json.dumps(SYNC_FILTER, separators=(",", ":"))
    log("running as %s against %s" % (user_id, settings["homeserver_url"]))
    failures = 0
    while True:
        try:
            response = client.sync(bot.next_batch, filter_json)
        except (MatrixError, OSError, ValueError) as err:
            failures += 1
            wait = backoff(failures)
            if isinstance(err, MatrixError) and err.retry_after_ms:
                wait = max(wait, min(300, err.retry_after_ms / 1000))
            elif isinstance(err, MatrixError) and err.status == 401:
                wait = 300
                log("the homeserver refuses my access token (%s): get a new one (see docs/BOT.md)" % err)
            log("sync failed (%s); retrying in %d s" % (err, wait))
            time.sleep(wait)
            continue
        failures = 0
        try:
            touch(settings["heartbeat_file"])
        except OSError as err:
            log("cannot write the heartbeat file: %s" % err)
        for action in bot.handle_sync(response):
            try:
                if action[0] == "join":
                    client.join(action[1])
                    log("joined %s" % action[1])
                elif action[0] == "leave":
                    client.leave(action[1])
                    log("refused the invite to %s: the inviter is not in MATRIX_BOT_ALLOWED_INVITERS" % action[1])
                else:
                    client.send(action[1], action[2])
            except (MatrixError, OSError, ValueError) as err:
                log("%s in %s failed: %s" % (action[0], action[1], err))


def main(argv):
    if argv[1:] == ["--healthcheck"]:
        path = os.environ.get("MATRIX_BOT_HEARTBEAT_FILE") or DEFAULT_HEARTBEAT_FILE
        return 0 if heartbeat_fresh(path, time.time()) else 1
    # As PID 1 in a container, SIGTERM is ignored unless handled: stop at once on `docker stop`.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
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
