"""End-to-end check of the bridge stand-in image against a real, throwaway Synapse.

    python tests/images/standin/check/e2e.py [--keep]

Needs: Docker, the images local/bridge-standin:bookworm (tests/images/build
standin) and localhost/switchboard/synapse:* (the synapse role's self-build),
and matrix-nio + PyYAML in the running Python. It creates its own network,
containers and temp dir (names carry a random suffix), publishes Synapse on a
free 127.0.0.1 port, and removes all of it at the end.

For each flavour it runs the container exactly as a role would (the real
image's executable path and flags, config + registration under /data, uid
1337), then with a real Matrix client: whoami with the as_token, DM the bot,
send `help`, expect the flavour's notice. It also checks that a user the
config does not allow gets no answer (invite rejected), that the appservice
API refuses a wrong hs_token, and that a missing required key stops the
bridge with an error naming the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml
from nio import AsyncClient, RoomMessageNotice, SyncResponse

STANDIN = os.environ.get("STANDIN_IMAGE", "local/bridge-standin:bookworm")
SERVER = "standin.test"
SUFFIX = secrets.token_hex(3)
NET = f"standin-net-{SUFFIX}"
HS = f"standin-synapse-{SUFFIX}"


def sh(*cmd: str, check: bool = True, capture: bool = True) -> str:
    r = subprocess.run(cmd, text=True, capture_output=capture)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return (r.stdout or "").strip()


def synapse_image() -> str:
    tags = sh("docker", "images", "--format", "{{.Repository}}:{{.Tag}}",
              "localhost/switchboard/synapse").splitlines()
    if not tags:
        sys.exit("no localhost/switchboard/synapse image (build it with the synapse role)")
    return os.environ.get("SYNAPSE_IMAGE", tags[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reg(as_id: str, url: str, bot: str, user_prefix: str) -> dict:
    return {
        "id": as_id, "url": url,
        "as_token": secrets.token_hex(32), "hs_token": secrets.token_hex(32),
        "sender_localpart": bot, "rate_limited": False,
        "namespaces": {
            "users": [{"regex": f"@{user_prefix}.*:{SERVER.replace('.', '[.]')}", "exclusive": True},
                      {"regex": f"@{bot}:{SERVER.replace('.', '[.]')}", "exclusive": True}],
            "aliases": [], "rooms": []},
    }


def bridgev2(flavour: str, network: str, port: int, container: str) -> dict:
    r = reg(network, f"http://{container}:{port}", f"{network}bot", f"{network}_")
    config = {
        "homeserver": {"address": f"http://{HS}:8008", "domain": SERVER, "software": "standard"},
        "appservice": {
            "address": r["url"], "hostname": "0.0.0.0", "port": port, "id": network,
            "bot": {"username": r["sender_localpart"], "displayname": f"{network} bridge bot"},
            "as_token": r["as_token"], "hs_token": r["hs_token"],
            "username_template": f"{network}_{{{{.}}}}"},
        "database": {"type": "sqlite3-fk-wal", "uri": f"file:/data/{flavour}.db?_txlock=immediate"},
        "bridge": {"permissions": {"*": "relay", SERVER: "user", f"@admin:{SERVER}": "admin",
                                   f"@mallory:{SERVER}": "relay"}},
    }
    return {"flavour": flavour, "container": container, "reg": r, "config": config,
            "reg_name": "registration.yaml",
            "run": [f"/usr/bin/{flavour}", "-c", "/data/config.yaml",
                    "-r", "/data/registration.yaml", "-n"],
            "entrypoint": None}


def flavours() -> list[dict]:
    out = [bridgev2("mautrix-whatsapp", "whatsapp", 29318, f"standin-wa-{SUFFIX}"),
           bridgev2("mautrix-discord", "discord", 29334, f"standin-dc-{SUFFIX}"),
           bridgev2("mautrix-telegram", "telegram", 29317, f"standin-tg-{SUFFIX}")]
    c = f"standin-mxd-{SUFFIX}"
    r = reg("discord-puppet", f"http://{c}:8434", "_discordpuppet_bot", "_discordpuppet_")
    out.append({
        "flavour": "mx-puppet-discord", "container": c, "reg": r, "reg_name": "discord-registration.yaml",
        "config": {"bridge": {"port": 8434, "bindAddress": c, "domain": SERVER,
                              "homeserverUrl": f"http://{HS}:8008"},
                   # The seed allowed ".*"; here everyone on the server but mallory.
                   "provisioning": {"whitelist": [f"@.*:{SERVER.replace('.', '[.]')}"],
                                    "blacklist": [f"@mallory:{SERVER.replace('.', '[.]')}"]},
                   "relay": {"whitelist": [".*"]}, "selfService": {"whitelist": [".*"]},
                   "database": {"filename": "database.db"}},
        "entrypoint": "/usr/local/bin/node",
        "run": ["/opt/mx-puppet-discord/build/index.js", "-c", "/data/config.yaml",
                "-f", "/data/discord-registration.yaml"]})
    c = f"standin-wc-{SUFFIX}"
    r = reg("wechaty", f"http://{c}:8788", "wechaty", "wechaty_")
    out.append({
        "flavour": "matrix-appservice-wechaty", "container": c, "reg": r,
        "reg_name": "wechaty-registration.yaml",
        "config": {"domain": SERVER, "homeserverUrl": f"http://{HS}:8008",
                   "registration": "wechaty-registration.yaml",
                   "wechaty": {"puppet": "wechaty-puppet-service"}},
        "entrypoint": "/usr/bin/dumb-init",
        "run": ["--", "matrix-appservice-wechaty", "--config", "/data/config.yaml",
                "--file", "/data/wechaty-registration.yaml", "--port", "8788"],
        "env": {"WECHATY_PUPPET": "wechaty-puppet-service",
                "WECHATY_PUPPET_SERVICE_TOKEN": "not-a-real-token"}})
    return out


def write_yaml(path: str, data: dict, uid: int) -> None:
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    os.chown(path, uid, uid)
    os.chmod(path, 0o600)


def http(method: str, url: str, body: dict | None = None, token: str | None = None):
    req = urllib.request.Request(url, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def register(base: str, secret: str, user: str) -> str:
    _, n = http("GET", f"{base}/_synapse/admin/v1/register")
    pw = secrets.token_hex(8)
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([n["nonce"].encode(), user.encode(), pw.encode(), b"notadmin"]))
    st, r = http("POST", f"{base}/_synapse/admin/v1/register",
                 {"nonce": n["nonce"], "username": user, "password": pw, "admin": False,
                  "mac": mac.hexdigest()})
    assert st == 200, (st, r)
    return r["access_token"]


async def dm_help(base: str, user: str, token: str, bot: str, want: str | None,
                  timeout: float = 30) -> str:
    """DM the bot, send help; return the bot's notice ('' if none is expected/seen)."""
    c = AsyncClient(base, f"@{user}:{SERVER}")
    c.access_token, c.user_id, c.device_id = token, f"@{user}:{SERVER}", "E2E"
    try:
        r = await c.room_create(is_direct=True, invite=[bot])
        room = r.room_id
        s = await c.sync(timeout=0)
        since = s.next_batch
        deadline = time.monotonic() + timeout
        joined = False
        while time.monotonic() < deadline and not joined:
            st, m = http("GET", f"{base}/_matrix/client/v3/rooms/{room}/state/m.room.member/{bot}",
                         token=token)
            if st == 200 and m.get("membership") in ("join", "leave"):
                joined = m["membership"] == "join"
                if not joined:
                    return f"<bot left: {m.get('reason', '')}>"
            else:
                await asyncio.sleep(0.3)
        assert joined, f"{bot} did not join {room}"
        sent = await c.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "help"})
        assert getattr(sent, "event_id", None), sent
        while time.monotonic() < deadline:
            s = await c.sync(timeout=3000, since=since)
            assert isinstance(s, SyncResponse), s
            since = s.next_batch
            for rid, info in s.rooms.join.items():
                for ev in info.timeline.events:
                    if rid == room and isinstance(ev, RoomMessageNotice) and ev.sender == bot:
                        return ev.body
            if want is None and time.monotonic() > deadline - timeout + 5:
                return ""
        return ""
    finally:
        await c.close()


def main() -> int:
    keep = "--keep" in sys.argv
    work = tempfile.mkdtemp(prefix="standin-e2e-")
    os.chmod(work, 0o755)
    hs_port = free_port()
    base = f"http://127.0.0.1:{hs_port}"
    created: list[str] = []
    fl = flavours()
    failures = 0
    try:
        sh("docker", "network", "create", NET)
        img = synapse_image()
        hsdir = os.path.join(work, "synapse")
        os.makedirs(os.path.join(hsdir, "appservices"))
        os.chown(hsdir, 991, 991)
        sh("docker", "run", "--rm", "--user", "991:991", "-v", f"{hsdir}:/data", img,
           "--generate-config", "--server-name", SERVER, "--report-stats=no",
           "--config-path", "/data/homeserver.yaml", "--data-directory", "/data")
        hy = os.path.join(hsdir, "homeserver.yaml")
        conf = yaml.safe_load(open(hy))
        for lst in conf["listeners"]:
            lst["bind_addresses"] = ["0.0.0.0"]
        conf["app_service_config_files"] = [f"/data/appservices/{f['flavour']}.yaml" for f in fl]
        conf["rc_login"] = {"address": {"per_second": 100, "burst_count": 100}}
        conf["rc_message"] = {"per_second": 100, "burst_count": 100}
        for f in fl:
            write_yaml(os.path.join(hsdir, "appservices", f"{f['flavour']}.yaml"), f["reg"], 991)
        write_yaml(hy, conf, 991)
        secret = conf["registration_shared_secret"]

        t0 = time.monotonic()
        sh("docker", "run", "-d", "--name", HS, "--network", NET, "--user", "991:991",
           "-p", f"127.0.0.1:{hs_port}:8008", "-v", f"{hsdir}:/data", img,
           "--config-path", "/data/homeserver.yaml")
        created.append(HS)
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("synapse did not become healthy:\n" + sh("docker", "logs", HS))
        print(f"synapse {img} up on {base} in {time.monotonic() - t0:.1f}s")

        # The appservices, run like the roles run the real images.
        for f in fl:
            d = os.path.join(work, f["flavour"])
            os.makedirs(d)
            os.chown(d, 1337, 1337)
            os.chmod(d, 0o700)
            write_yaml(os.path.join(d, "config.yaml"), f["config"], 1337)
            write_yaml(os.path.join(d, f["reg_name"]), f["reg"], 1337)
            cmd = ["docker", "run", "-d", "--name", f["container"], "--network", NET,
                   "--user", "1337:1337", "--security-opt", "no-new-privileges:true",
                   "--cap-drop", "ALL", "-v", f"{d}:/data"]
            for k, v in f.get("env", {}).items():
                cmd += ["-e", f"{k}={v}"]
            if f["entrypoint"]:
                cmd += ["--entrypoint", f["entrypoint"]]
            sh(*cmd, STANDIN, *f["run"])
            created.append(f["container"])

        for f in fl:
            for _ in range(60):
                logs = sh("docker", "logs", f["container"], check=False)
                if " ready: " in logs or "CRITICAL" in logs:
                    break
                time.sleep(0.5)
            line = next((x for x in logs.splitlines() if " ready: " in x or "CRITICAL" in x), logs)
            print(f"{f['flavour']}: {line.split(': ', 1)[-1]}")
            if "CRITICAL" in logs:
                failures += 1

        tokens = {u: register(base, secret, u) for u in ("alice", "mallory")}

        async def checks() -> int:
            bad = 0
            for f in fl:
                bot = f"@{f['reg']['sender_localpart']}:{SERVER}"
                st, who = http("GET", f"{base}/_matrix/client/v3/account/whoami", token=f["reg"]["as_token"])
                ok_who = st == 200 and who.get("user_id") == bot
                st2, prof = http("GET", f"{base}/_matrix/client/v3/profile/{bot}/displayname")
                reply = await dm_help(base, "alice", tokens["alice"], bot, f["flavour"])
                ok_help = f"stand-in for {f['flavour']}" in reply
                print(f"{f['flavour']}: whoami={who.get('user_id')} {'OK' if ok_who else 'FAIL'}; "
                      f"displayname={prof.get('displayname')!r}; help -> {reply!r} "
                      f"{'OK' if ok_help else 'FAIL'}")
                bad += (not ok_who) + (not ok_help)
                if f["flavour"] in ("mautrix-whatsapp", "mx-puppet-discord"):
                    r = await dm_help(base, "mallory", tokens["mallory"], bot, None, timeout=10)
                    ok = "stand-in" not in r
                    print(f"{f['flavour']}: disallowed @mallory -> {r!r} {'OK' if ok else 'FAIL'}")
                    bad += not ok
            return bad

        failures += asyncio.run(checks())

        # The appservice API itself: wrong hs_token refused, right one accepted.
        f = fl[0]
        ip = sh("docker", "inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{NET}\").IPAddress}}}}",
                f["container"])
        url = f"http://{ip}:29318/_matrix/app/v1/transactions/e2e-1"
        st_bad, _ = http("PUT", url, {"events": []}, token="wrong")
        st_ok, _ = http("PUT", url, {"events": []}, token=f["reg"]["hs_token"])
        st_ping, _ = http("POST", f"http://{ip}:29318/_matrix/app/v1/ping", {}, token=f["reg"]["hs_token"])
        ok = st_bad in (401, 403) and st_ok == 200 and st_ping == 200
        print(f"appservice API: wrong hs_token -> {st_bad}, right -> {st_ok}, ping -> {st_ping} "
              f"{'OK' if ok else 'FAIL'}")
        failures += not ok

        # A required key missing: the bridge must stop and name it.
        for f, key in ((fl[0], ("appservice", "as_token")), (fl[3], ("bridge", "domain")),
                       (fl[4], ("homeserverUrl",))):
            d = os.path.join(work, f["flavour"])
            bad_conf = json.loads(json.dumps(f["config"]))
            node = bad_conf
            for k in key[:-1]:
                node = node[k]
            del node[key[-1]]
            write_yaml(os.path.join(d, "bad.yaml"), bad_conf, 1337)
            run = [("/data/bad.yaml" if a == "/data/config.yaml" else a) for a in f["run"]]
            cmd = ["docker", "run", "--rm", "--network", NET, "--user", "1337:1337", "-v", f"{d}:/data"]
            if f["entrypoint"]:
                cmd += ["--entrypoint", f["entrypoint"]]
            r = subprocess.run([*cmd, STANDIN, *run], text=True, capture_output=True)
            dotted = ".".join(key)
            ok = r.returncode != 0 and f"`{dotted}`" in r.stdout + r.stderr
            print(f"{f['flavour']}: without {dotted}: exit {r.returncode}, "
                  f"{(r.stdout + r.stderr).strip().splitlines()[-1].split(': ', 1)[-1]!r} "
                  f"{'OK' if ok else 'FAIL'}")
            failures += not ok

        # docker stop: SIGTERM to PID 1 must end it cleanly and fast.
        t1 = time.monotonic()
        sh("docker", "stop", fl[0]["container"])
        code = sh("docker", "inspect", "-f", "{{.State.ExitCode}}", fl[0]["container"])
        took = time.monotonic() - t1
        ok = code == "0" and took < 5
        print(f"docker stop {fl[0]['flavour']}: exit {code} in {took:.1f}s {'OK' if ok else 'FAIL'}")
        failures += not ok

        files = sorted(os.path.relpath(os.path.join(p, n), work) for p, _, ns in os.walk(work)
                       for n in ns if not p.startswith(hsdir))
        print("bridge data dirs:", ", ".join(files))
    finally:
        if keep:
            print(f"kept: network {NET}, containers {' '.join(created)}, dir {work}")
        else:
            for c in created:
                sh("docker", "rm", "-f", c, check=False)
            sh("docker", "network", "rm", NET, check=False)
            shutil.rmtree(work, ignore_errors=True)
    print("RESULT:", "PASS" if failures == 0 else f"FAIL ({failures})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
