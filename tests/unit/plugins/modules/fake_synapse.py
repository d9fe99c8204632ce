"""A tiny stand-in for the Synapse endpoints our modules use, served over real HTTP on 127.0.0.1."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVER_NAME = "test.local"
ADMIN_TOKEN = "admin-token"


class FakeSynapse:
    def __init__(self):
        self.secret = "s3cret"
        self.registration_open = True
        self.users = {}  # localpart -> dict(password=, admin=, user_type=, avatar_url=)
        self.media = {}  # media_id -> dict(user_id=, media_length=, created_ts=, last_access_ts=, ...)
        self.nonces = set()
        self.requests = []  # (method, path) of every request
        self.fail_next = []  # HTTP statuses to answer before serving normally
        self.page_size = 2  # small, so pagination is exercised

    def add_media(self, media_id, localpart, length, created_ts, **extra):
        self.media[media_id] = dict(media_id=media_id, user_id="@%s:%s" % (localpart, SERVER_NAME),
                                    media_length=length, created_ts=created_ts, last_access_ts=None,
                                    quarantined_by=None, safe_from_quarantine=False, **extra)

    def posts(self):
        return [path for method, path in self.requests if method == "POST"]

    # Each handler returns (status, body).
    def handle(self, method, path, query, body, token):
        if self.fail_next:
            return self.fail_next.pop(0), {"errcode": "M_UNKNOWN", "error": "busy", "retry_after_ms": 10}
        if path == "/_synapse/admin/v1/register":
            return self.register(method, body)
        if path == "/_matrix/client/v3/register/available":
            if not self.registration_open:
                return 403, {"errcode": "M_FORBIDDEN", "error": "Registration has been disabled"}
            if query["username"] in self.users:
                return 400, {"errcode": "M_USER_IN_USE", "error": "User ID already taken."}
            return 200, {"available": True}
        if path.startswith("/_matrix/client/v3/profile/"):
            localpart = urllib.parse.unquote(path.rsplit("/", 1)[1])[1:].split(":")[0]
            if localpart in self.users:
                return 200, {"displayname": localpart}
            return 404, {"errcode": "M_NOT_FOUND", "error": "Profile was not found"}
        if path == "/_matrix/key/v2/server":
            return 200, {"server_name": SERVER_NAME}
        if path == "/_matrix/client/v3/login":
            user = self.users.get(body["identifier"]["user"])
            if not user or user["password"] != body["password"]:
                return 403, {"errcode": "M_FORBIDDEN", "error": "Invalid username or password"}
            return 200, {"user_id": "@%s:%s" % (body["identifier"]["user"], SERVER_NAME),
                         "access_token": "token-of-" + body["identifier"]["user"],
                         "device_id": body.get("device_id", "GENERATED")}
        if path.startswith("/_synapse/admin/"):
            if token != ADMIN_TOKEN:
                return 401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token passed."}
            return self.admin(method, path, query)
        return 404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}

    def register(self, method, body):
        if method == "GET":
            nonce = "nonce%d" % len(self.requests)
            self.nonces.add(nonce)
            return 200, {"nonce": nonce}
        if not self.secret:
            return 400, {"errcode": "M_UNKNOWN", "error": "Shared secret registration is not enabled"}
        if body["nonce"] not in self.nonces:
            return 400, {"errcode": "M_UNKNOWN", "error": "unrecognised nonce"}
        self.nonces.discard(body["nonce"])
        fields = [body["nonce"], body["username"], body["password"], "admin" if body["admin"] else "notadmin"]
        if body.get("user_type"):
            fields.append(body["user_type"])
        message = b"\x00".join(field.encode() for field in fields)
        if hmac.new(self.secret.encode(), message, hashlib.sha1).hexdigest() != body["mac"]:
            return 403, {"errcode": "M_UNKNOWN", "error": "HMAC incorrect"}
        if body["username"] in self.users:
            return 400, {"errcode": "M_USER_IN_USE", "error": "User ID already taken."}
        self.users[body["username"]] = dict(password=body["password"], admin=body["admin"],
                                            user_type=body.get("user_type"), avatar_url=None)
        answer = {"user_id": "@%s:%s" % (body["username"], SERVER_NAME), "home_server": SERVER_NAME}
        if not body.get("inhibit_login"):
            answer.update(access_token="token-of-" + body["username"], device_id=body.get("device_id", "NEWDEV"))
        return 200, answer

    def page(self, items, key, query):
        start = int(query.get("from", 0))
        limit = min(int(query.get("limit", 100)), self.page_size)
        answer = {key: items[start:start + limit], "total": len(items)}
        if start + limit < len(items):
            answer["next_token"] = str(start + limit) if key == "users" else start + limit
        return answer

    def admin(self, method, path, query):
        if path == "/_synapse/admin/v2/users":
            users = [dict(name="@%s:%s" % (lp, SERVER_NAME), avatar_url=u["avatar_url"]) for lp, u in sorted(self.users.items())]
            return 200, self.page(users, "users", query)
        if path == "/_synapse/admin/v1/rooms":
            return 200, {"rooms": [], "total_rooms": 0}
        if path.startswith("/_synapse/admin/v1/users/") and path.endswith("/media"):
            user_id = urllib.parse.unquote(path.split("/")[5])
            mine = [m for m in sorted(self.media.values(), key=lambda m: m["media_id"]) if m["user_id"] == user_id]
            return 200, self.page(mine, "media", query)
        if path == "/_synapse/admin/v1/media/delete" and method == "POST":
            before, size_gt = int(query["before_ts"]), int(query.get("size_gt", 0))
            avatars = {u["avatar_url"] for u in self.users.values()} if query.get("keep_profiles") != "false" else set()
            gone = sorted(m["media_id"] for m in self.media.values()
                          if (m["last_access_ts"] or m["created_ts"]) < before and m["media_length"] > size_gt
                          and "mxc://%s/%s" % (SERVER_NAME, m["media_id"]) not in avatars
                          and not m["quarantined_by"] and not m["safe_from_quarantine"])
            for media_id in gone:
                del self.media[media_id]
            return 200, {"deleted_media": gone, "total": len(gone)}
        if path == "/_synapse/admin/v1/purge_media_cache" and method == "POST":
            return 200, {"deleted": 3}
        return 404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}


def serve(fake):
    """Start serving `fake`; return (server, base_url). Call server.shutdown() when done."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            token = (self.headers.get("Authorization") or "").replace("Bearer ", "")
            fake.requests.append((self.command, url.path))
            status, answer = fake.handle(self.command, url.path, query, body, token)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args):  # keep pytest output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]
