"""Synapse's workers (preset small) behind Caddy, seen by a client from outside and by each
process from inside: which process answered is read from that process's own access log,
where Synapse writes every request it serves with its query string (a marker of our own
that Synapse ignores). The last tests switch the preset to none and back.
"""
from __future__ import annotations

import json
import secrets
import time
import urllib.parse

import pytest
import yaml
from playbook_runs import ansible_playbook

SERVER = "switchboard.test"
VPS = "switchboard-vps-scale"
CLIENT = "https://switchboard.test:36443"
MAIN_DIRECT = "http://127.0.0.1:36008"
WORKERS = {  # container: what the preset gives it
    "synapse-generic-1": "client and federation reads",
    "synapse-federation-sender-1": "federation sending",
    "synapse-media-1": "media",
    "synapse-appservice-pusher-1": "appservices and push",
}
TELEGRAM_BOT = f"@telegrambot:{SERVER}"
# mautrix-telegram 0.15.3's own help text (as in molecule/bridges).
TELEGRAM_HELP = "Get instructions on how to log in."
# Shared between the tests of this module, in file order.
STATE: dict = {}


def inspect(host, name):
    return json.loads(host.check_output(f"docker inspect {name}"))[0]


def logs(host, container):
    return host.run(f"docker logs {container} 2>&1").stdout


def marker():
    return "switchboard_probe=" + secrets.token_hex(8)


def served_by(host, probe):
    """The Synapse processes whose access log holds the probe."""
    names = ["synapse"] + list(WORKERS)
    return [name for name in names if probe in logs(host, name)]


def wait_served_by(host, probe, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        found = served_by(host, probe)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.fixture(scope="module")
def user(register_user, http):
    localpart = f"scale-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    user_id = register_user(localpart, password)
    status, _headers, body = http(f"{CLIENT}/_matrix/client/v3/login", body={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart}, "password": password})
    assert status == 200, body
    return {"user_id": user_id, "token": body["access_token"]}


def auth(user):
    return {"Authorization": f"Bearer {user['token']}"}


def read_messages(http, user, room_id, probe=None):
    query = "dir=b&limit=50" + (f"&{probe}" if probe else "")
    status, _headers, body = http(f"{CLIENT}/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/messages?{query}",
                                  headers=auth(user))
    assert status == 200, body
    return [event["content"].get("body") for event in body["chunk"] if event["type"] == "m.room.message"]


def send_text(http, user, room_id, text):
    txn = secrets.token_hex(8)
    status, _headers, body = http(
        f"{CLIENT}/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/send/m.room.message/{txn}",
        body={"msgtype": "m.text", "body": text}, method="PUT", headers=auth(user))
    assert status == 200, body
    return body["event_id"]


def wait_healthy(host, name, timeout=60):
    deadline = time.monotonic() + timeout
    while inspect(host, name)["State"]["Health"]["Status"] != "healthy":
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def test_every_worker_runs_healthy_unpublished_and_hardened(host):
    for name in WORKERS:
        assert wait_healthy(host, name), name
        container = inspect(host, name)
        assert not container["HostConfig"]["PortBindings"], name
        assert container["HostConfig"]["CapDrop"] == ["ALL"], name
        assert "no-new-privileges:true" in container["HostConfig"]["SecurityOpt"], name
        assert container["Config"]["User"] == "991:991", name
        assert container["Config"]["Entrypoint"] == ["python", "-m", "synapse.app.generic_worker"], name
        assert container["Args"][-1] == f"--config-path=/data/workers/{name.removeprefix('synapse-')}.yaml", name


def test_redis_is_private_and_its_password_kept_out_of_sight(host):
    assert wait_healthy(host, "redis")
    redis = inspect(host, "redis")
    assert not redis["HostConfig"]["PortBindings"]
    assert redis["HostConfig"]["CapDrop"] == ["ALL"]
    assert redis["HostConfig"]["ReadonlyRootfs"] is True
    assert redis["Config"]["User"] == "999:999"
    password = host.file("/matrix/secrets/redis-password")
    assert (password.mode, password.uid) == (0o600, 0)
    secret = password.content_string.strip()
    assert len(secret) == 48
    assert secret not in json.dumps(redis)  # neither in its command, environment nor health check
    config = host.file("/matrix/redis/config/redis.conf")
    assert (config.mode, config.uid) == (0o600, 999)
    # Without the password Redis answers nothing but the demand for it.
    answer = host.run("docker exec redis redis-cli -h 127.0.0.1 ping").stdout
    assert "NOAUTH" in answer


def test_homeserver_yaml_moves_the_work_off_the_main_process(host):
    config = yaml.safe_load(host.file("/matrix/synapse/data/homeserver.yaml").content_string)
    assert config["instance_map"] == {"main": {"host": "synapse", "port": 9093}}
    assert config["redis"]["enabled"] is True and config["redis"]["host"] == "redis"
    assert config["redis"]["password"] == host.file("/matrix/secrets/redis-password").content_string.strip()
    assert config["worker_replication_secret"] == \
        host.file("/matrix/secrets/synapse-worker-replication-secret").content_string.strip()
    assert config["federation_sender_instances"] == ["federation-sender-1"]
    assert config["pusher_instances"] == ["appservice-pusher-1"]
    assert config["notify_appservices_from_worker"] == "appservice-pusher-1"
    assert config["enable_media_repo"] is False
    assert config["media_instance_running_background_jobs"] == "media-1"
    assert {"port": 9093, "names": ["replication"]} in [
        {"port": listener["port"], "names": listener["resources"][0]["names"]} for listener in config["listeners"]]


def test_the_log_tells_which_process_served_a_request(host, http):
    """The method itself: a request sent straight to the main process is in its log only."""
    probe = marker()
    assert http(f"{MAIN_DIRECT}/_matrix/client/versions?{probe}")[0] == 200
    assert wait_served_by(host, probe) == ["synapse"]


def test_the_client_api_through_the_proxy_is_served_by_the_generic_worker(host, http, user):
    probe = marker()
    status, _headers, body = http(f"{CLIENT}/_matrix/client/v3/sync?timeout=0&{probe}", headers=auth(user))
    assert status == 200, body
    assert wait_served_by(host, probe) == ["synapse-generic-1"]


def test_messages_are_sent_and_read_back_through_the_workers(host, http, user):
    probe = marker()
    status, _headers, body = http(f"{CLIENT}/_matrix/client/v3/createRoom?{probe}", body={"name": "scale"},
                                  headers=auth(user))
    assert status == 200, body
    assert wait_served_by(host, probe) == ["synapse-generic-1"]
    room_id = body["room_id"]
    texts = [f"message {index} {secrets.token_hex(4)}" for index in range(3)]
    for text in texts:
        send_text(http, user, room_id, text)
    probe = marker()
    assert set(texts) <= set(read_messages(http, user, room_id, probe))
    assert wait_served_by(host, probe) == ["synapse-generic-1"]
    STATE.update(room_id=room_id, texts=texts)


def test_media_goes_up_and_down_through_the_media_worker(host, http, user, tls_context):
    import urllib.request  # pylint: disable=import-outside-toplevel
    content = secrets.token_bytes(2048)
    upload_probe = marker()
    request = urllib.request.Request(f"{CLIENT}/_matrix/media/v3/upload?filename=probe.bin&{upload_probe}",
                                     data=content, method="POST",
                                     headers={**auth(user), "Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=15, context=tls_context) as response:
        content_uri = json.loads(response.read())["content_uri"]
    assert content_uri.startswith(f"mxc://{SERVER}/")
    assert wait_served_by(host, upload_probe) == ["synapse-media-1"]
    download_probe = marker()
    media_id = content_uri.rsplit("/", 1)[1]
    request = urllib.request.Request(f"{CLIENT}/_matrix/client/v1/media/download/{SERVER}/{media_id}?{download_probe}",
                                     headers=auth(user))
    with urllib.request.urlopen(request, timeout=15, context=tls_context) as response:
        assert response.read() == content
    assert wait_served_by(host, download_probe) == ["synapse-media-1"]
    # The main process serves no media itself now.
    status = http(f"{MAIN_DIRECT}/_matrix/client/v1/media/download/{SERVER}/{media_id}", headers=auth(user))[0]
    assert status in (400, 404)
    STATE.update(media_id=media_id, media=content)


def ask_the_bot(http, user, text, expected, timeout=60):
    status, _headers, body = http(f"{CLIENT}/_matrix/client/v3/createRoom", headers=auth(user),
                                  body={"is_direct": True, "invite": [TELEGRAM_BOT], "preset": "trusted_private_chat"})
    assert status == 200, body
    room_id = body["room_id"]
    deadline = time.monotonic() + timeout
    members = f"{CLIENT}/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/joined_members"
    while TELEGRAM_BOT not in (http(members, headers=auth(user))[2] or {}).get("joined", {}):
        assert time.monotonic() < deadline, f"{TELEGRAM_BOT} did not join"
        time.sleep(0.5)
    send_text(http, user, room_id, text)
    while time.monotonic() < deadline:
        status, _headers, body = http(
            f"{CLIENT}/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/messages?dir=b&limit=50", headers=auth(user))
        replies = [event["content"].get("body", "") for event in body.get("chunk", [])
                   if event["sender"] == TELEGRAM_BOT and event["type"] == "m.room.message"]
        if any(expected in reply for reply in replies):
            return replies
        time.sleep(0.5)
    raise AssertionError(f"{TELEGRAM_BOT} did not answer {text!r}")


def test_the_bridge_bot_answers_a_dm_through_the_appservice_worker(http, user):
    """The invite reaches the bridge from the worker that notifies appservices: the main
    process does not (notify_appservices_from_worker, checked above)."""
    replies = ask_the_bot(http, user, "help", TELEGRAM_HELP)
    assert any(TELEGRAM_HELP in reply for reply in replies), replies


def test_a_second_full_run_changes_nothing_and_restarts_nothing(host):
    """Every task runs (the fast path off): 0 changed, every container still the same process."""
    containers = ["synapse", "redis", "caddy", "postgres", "mautrix-telegram"] + list(WORKERS)
    before = started_at(host, containers)
    run = ansible_playbook("site.yml", "-e", "switchboard_fast_noop=false")
    assert run.rc == 0, run.output[-4000:]
    recap = run.recap(VPS)
    assert recap["changed"] == 0 and recap["failed"] == 0, (recap, run.output[-4000:])
    assert started_at(host, containers) == before


def started_at(host, containers):
    return {name: inspect(host, name)["State"]["StartedAt"] for name in containers}


def test_a_change_of_one_workers_own_file_restarts_that_worker_only(host):
    """generic-1 serving the client API only: its file and the proxy's routes change,
    homeserver.yaml does not; Caddy reloads in place."""
    containers = ["synapse", "redis", "caddy", "mautrix-telegram"] + list(WORKERS)
    before = started_at(host, containers)
    workers = [{"name": "generic-1", "serves": ["client"]},
               {"name": "federation-sender-1", "handles": ["federation_sender"]},
               {"name": "media-1", "serves": ["media"]},
               {"name": "appservice-pusher-1", "handles": ["appservices", "pusher"]}]
    run = ansible_playbook("site.yml", "-e", json.dumps({"synapse_workers": workers}))
    assert run.rc == 0, run.output[-4000:]
    after = started_at(host, containers)
    assert [name for name in containers if after[name] != before[name]] == ["synapse-generic-1"]
    worker_file = yaml.safe_load(host.file("/matrix/synapse/data/workers/generic-1.yaml").content_string)
    assert worker_file["worker_listeners"][0]["resources"][0]["names"] == ["client"]


def test_check_mode_shows_the_switch_to_none_and_changes_nothing(host):
    containers = ["synapse", "redis"] + list(WORKERS)
    before = started_at(host, containers)
    config = host.file("/matrix/synapse/data/homeserver.yaml").content_string
    run = ansible_playbook("site.yml", "--check", "--diff", "-e", "synapse_workers_preset=none")
    assert run.rc == 0, run.output[-4000:]
    assert run.recap(VPS)["changed"] > 0
    assert "instance_map" in run.output  # the diff of homeserver.yaml
    assert started_at(host, containers) == before
    assert host.file("/matrix/synapse/data/homeserver.yaml").content_string == config
    assert host.file("/matrix/synapse/data/workers/generic-1.yaml").exists


def test_switching_to_none_removes_the_workers_and_redis_and_keeps_the_messages(host, http, user):
    run = ansible_playbook("site.yml", "-e", "synapse_workers_preset=none")
    assert run.rc == 0, run.output[-4000:]
    names = host.check_output("docker ps -a --format '{{.Names}}'").split()
    assert not [name for name in names if name in WORKERS or name == "redis"], names
    config = yaml.safe_load(host.file("/matrix/synapse/data/homeserver.yaml").content_string)
    assert not {"instance_map", "redis", "worker_replication_secret", "federation_sender_instances",
                "pusher_instances", "notify_appservices_from_worker", "enable_media_repo"} & set(config)
    assert [listener["port"] for listener in config["listeners"]] == [8008]
    assert not host.file("/matrix/synapse/data/workers/generic-1.yaml").exists
    probe = marker()
    assert set(STATE["texts"]) <= set(read_messages(http, user, STATE["room_id"], probe))
    assert wait_served_by(host, probe) == ["synapse"]
    STATE["text_without_workers"] = f"sent without workers {secrets.token_hex(4)}"
    send_text(http, user, STATE["room_id"], STATE["text_without_workers"])


def test_switching_back_to_small_serves_everything_through_the_workers_again(host, http, user, tls_context):
    import urllib.request  # pylint: disable=import-outside-toplevel
    run = ansible_playbook("site.yml")
    assert run.rc == 0, run.output[-4000:]
    # The run waited for each /health; Docker's own check says so at its next interval.
    for name in WORKERS:
        assert wait_healthy(host, name), name
    probe = marker()
    texts = read_messages(http, user, STATE["room_id"], probe)
    assert set(STATE["texts"] + [STATE["text_without_workers"]]) <= set(texts)
    assert wait_served_by(host, probe) == ["synapse-generic-1"]
    probe = marker()
    request = urllib.request.Request(
        f"{CLIENT}/_matrix/client/v1/media/download/{SERVER}/{STATE['media_id']}?{probe}", headers=auth(user))
    with urllib.request.urlopen(request, timeout=15, context=tls_context) as response:
        assert response.read() == STATE["media"]
    assert wait_served_by(host, probe) == ["synapse-media-1"]
    replies = ask_the_bot(http, user, "help", TELEGRAM_HELP)
    assert any(TELEGRAM_HELP in reply for reply in replies), replies
