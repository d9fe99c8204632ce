"""Day-2 operations: the playbooks of playbooks/ run with ansible-playbook, as a user runs them.

The tests depend on each other's effects and run in file order: users, media purge,
the bot, backup and restore onto an emptied server, upgrade. Every test takes testinfra's
`host` fixture: pytest groups tests by that parametrized fixture, and mixing tests with
and without it would reorder them.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shlex
import time
import urllib.parse
import urllib.request

from deployed_secrets import deployed_secrets, occurrences
from matrix_dm import ask_in_a_dm
from nio import AsyncClient, LoginResponse
from playbook_runs import ansible_playbook

SERVER = "switchboard.test"
BOT = f"@switchboard-bot:{SERVER}"
ALICE_PASSWORD = "alice-" + secrets.token_hex(8)
STATE = {}  # what earlier tests leave for later ones
OUTPUTS = {}  # every day-2 run's output at -vvv, failed ones too: the secrets grep reads them


def playbook(name, *args):
    """Run playbooks/<name> against the scenario's VPS at -vvv; return (rc, output, recap counts)."""
    run = ansible_playbook(os.path.join("playbooks", name), "-vvv", *args)
    OUTPUTS[f"{len(OUTPUTS) + 1:02d} {name} (rc {run.rc})"] = run.output
    return run.rc, run.output, run.recap("switchboard-vps-operations")


def run_ok(name, *args):
    rc, output, counts = playbook(name, *args)
    assert rc == 0 and counts.get("failed") == 0, f"{name} {' '.join(args)} failed:\n{output[-6000:]}"
    return output, counts


def api(homeserver_url, method, path, token=None, body=None, raw=None, content_type="application/json", query=None):
    url = homeserver_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = "Bearer " + token
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def login(homeserver_url, user, password):
    status, body = api(homeserver_url, "POST", "/_matrix/client/v3/login", body={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password})
    assert status == 200, body
    return body["access_token"]


def upload(homeserver_url, token, size):
    status, body = api(homeserver_url, "POST", "/_matrix/media/v3/upload", token=token,
                       raw=secrets.token_bytes(size), content_type="application/octet-stream",
                       query={"filename": f"test-{size}.bin"})
    assert status == 200, body
    return body["content_uri"].rsplit("/", 1)[1]


def media_of(homeserver_url, admin_token, user_id):
    status, body = api(homeserver_url, "GET", f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id)}/media",
                       token=admin_token, query={"limit": 1000})
    assert status == 200, body
    return {media["media_id"] for media in body["media"]}


def test_converged_on_the_older_synapse(host, homeserver_url):
    status, body = api(homeserver_url, "GET", "/_matrix/federation/v1/version")
    assert status == 200 and body["server"]["version"] == "1.162.0", body


def test_register_user_twice(host, homeserver_url):
    output, counts = run_ok("register_user.yml", "-e", "user=alice", "-e", f"password={ALICE_PASSWORD}",
                            "-e", "admin=true")
    assert counts["changed"] >= 1 and "@alice:switchboard.test is registered" in output
    STATE["alice_token"] = login(homeserver_url, "alice", ALICE_PASSWORD)
    STATE["old_media"] = upload(homeserver_url, STATE["alice_token"], 2000)

    output, counts = run_ok("register_user.yml", "-e", "user=alice", "-e", f"password={ALICE_PASSWORD}",
                            "-e", "admin=true")
    assert counts["changed"] == 0 and "already exists" in output
    assert ALICE_PASSWORD not in output


def test_register_user_in_check_mode_registers_nobody(host, homeserver_url):
    output, counts = run_ok("register_user.yml", "--check", "-e", "user=carol", "-e", "password=carol-password")
    assert counts["changed"] >= 1 and "check mode" in output
    status, body = api(homeserver_url, "GET", f"/_matrix/client/v3/profile/@carol:{SERVER}")
    assert status == 404, body


def test_register_user_refuses_a_bad_localpart(host):
    rc, output, _counts = playbook("register_user.yml", "-e", "user=Not Valid", "-e", "password=x")
    assert rc != 0 and "account_localpart must be a Matrix localpart" in output


def test_purge_media_check_mode_deletes_nothing(host, homeserver_url):
    token = STATE["alice_token"]
    STATE["big_media"] = upload(homeserver_url, token, 300_000)
    STATE["small_media"] = upload(homeserver_url, token, 1000)
    before = media_of(homeserver_url, token, f"@alice:{SERVER}")
    output, _counts = run_ok("purge_media.yml", "--check", "-e", "media_purge_larger_than=100K")
    assert "Would delete 1 local media (300000 bytes)" in output
    assert media_of(homeserver_url, token, f"@alice:{SERVER}") == before


def test_purge_media_by_size(host, homeserver_url):
    token = STATE["alice_token"]
    output, counts = run_ok("purge_media.yml", "-e", "media_purge_larger_than=100K")
    assert "Deleted 1 local media (300000 bytes)" in output and counts["changed"] >= 1
    remaining = media_of(homeserver_url, token, f"@alice:{SERVER}")
    assert STATE["big_media"] not in remaining
    assert {STATE["old_media"], STATE["small_media"]} <= remaining
    # Nothing larger is left: the same purge again deletes nothing.
    output, counts = run_ok("purge_media.yml", "-e", "media_purge_larger_than=100K", "-e", "media_purge_remote=false")
    assert "Deleted 0 local media" in output and counts["changed"] == 0


def test_purge_media_by_age(host, homeserver_url):
    token = STATE["alice_token"]
    # Ten days old, as Synapse records it (upload and last access), so the age is exact.
    ten_days_ms = 10 * 86400 * 1000
    host.run_expect([0], "docker exec postgres psql -U postgres -d synapse -v ON_ERROR_STOP=1 -c "
                    + shlex.quote(f"UPDATE local_media_repository SET created_ts = created_ts - {ten_days_ms}, "
                                  f"last_access_ts = COALESCE(last_access_ts, created_ts) - {ten_days_ms} "
                                  f"WHERE media_id = '{STATE['old_media']}'"))
    output, counts = run_ok("purge_media.yml", "-e", "media_purge_older_than=5d", "-e", "media_purge_remote=false")
    assert "Deleted 1 local media (2000 bytes)" in output and counts["changed"] >= 1
    remaining = media_of(homeserver_url, token, f"@alice:{SERVER}")
    assert STATE["old_media"] not in remaining
    assert STATE["small_media"] in remaining


def test_purge_media_schedule_runs_the_same_purge(host, homeserver_url):
    token = STATE["alice_token"]
    big = upload(homeserver_url, token, 200_000)
    run_ok("purge_media.yml", "--check", "-e", "media_purge_larger_than=150K", "-e", "media_purge_schedule=present")
    assert not host.file("/etc/cron.d/switchboard-purge-media").exists
    run_ok("purge_media.yml", "-e", "media_purge_larger_than=150K", "-e", "media_purge_schedule=present",
           "-e", "media_purge_older_than=365d")  # this run deletes nothing: the big file is new
    assert big in media_of(homeserver_url, token, f"@alice:{SERVER}")
    job = [line for line in host.file("/etc/cron.d/switchboard-purge-media").content_string.splitlines()
           if "switchboard-purge-media" in line and not line.startswith("#")]
    assert len(job) == 1, job
    assert host.file("/matrix/secrets/synapse-maintenance-token").mode == 0o600
    assert host.run("pgrep -x cron").rc == 0
    # The scheduled command, run now instead of at 04:30, with only the size limit.
    command = job[0].split(None, 6)[6].replace(">/dev/null", "").replace("--older-than 365d", "")
    result = host.run(command)
    assert result.rc == 0, result.stderr
    assert json.loads(result.stdout)["local_deleted"] == 1
    assert big not in media_of(homeserver_url, token, f"@alice:{SERVER}")
    run_ok("purge_media.yml", "-e", "media_purge_schedule=absent")
    assert "switchboard-purge-media" not in host.file("/etc/cron.d/switchboard-purge-media").content_string \
        if host.file("/etc/cron.d/switchboard-purge-media").exists else True


def test_purge_media_schedule_refuses_a_url_that_would_add_a_line(host):
    """The URL goes into the cron line (or the systemd unit): a newline there would add a command."""
    before = host.run("cat /etc/cron.d/switchboard-purge-media 2>/dev/null").stdout
    rc, output, _counts = playbook("purge_media.yml", "-e", "media_purge_schedule=present",
                                   "-e", '{"media_purge_homeserver_url": "http://127.0.0.1:8008\\n* * * * * root touch /tmp/x"}')
    assert rc != 0 and "media_purge_homeserver_url must be http(s)://host[:port]" in output
    assert host.run("cat /etc/cron.d/switchboard-purge-media 2>/dev/null").stdout == before


def test_backup_schedule_makes_daily_archives_and_keeps_the_newest(host):
    """backup_schedule=present installs the daily job; run now, it dumps every database PostgreSQL has,
    names its archive by the time and keeps backup_keep of them, here and in backup_copy_path."""
    daily, offsite = "/matrix/backups-daily", "/mnt/offsite"
    host.run_expect([0], f"mkdir -p {offsite}")
    run_ok("backup.yml", "-e", "backup_schedule=present", "-e", "backup_keep=2", "-e", f"backup_path={daily}",
           "-e", f"backup_copy_path={offsite}")
    cron = host.file("/etc/cron.d/switchboard-backup").content_string
    job = [line for line in cron.splitlines() if "switchboard-backup.py" in line and not line.startswith("#")]
    assert len(job) == 1, cron
    assert job[0].split()[:2] == ["15", "3"], job
    command = job[0].split(None, 6)[6].replace(">/dev/null", "")
    made = []
    for _run in range(2):
        time.sleep(1.1)  # archive names have a one-second resolution
        result = host.run(command)
        assert result.rc == 0, result.stderr
        report = json.loads(result.stdout)
        assert {"synapse", "whatsapp"} <= set(report["postgres"]), report
        made.append(report["archive"])
    # The playbook's own archive, the oldest, was deleted: two are kept, and two copies.
    assert sorted(f"{daily}/{name}" for name in host.check_output(f"ls {daily}").split()) == made
    assert host.file(made[-1]).mode == 0o600
    copies = [path.replace(daily, offsite) for path in made]
    assert sorted(f"{offsite}/{name}" for name in host.check_output(f"ls -A {offsite}").split()) == copies
    assert host.file(copies[-1]).mode == 0o600
    assert host.check_output(f"sha256sum < {made[-1]}") == host.check_output(f"sha256sum < {copies[-1]}")
    # The remote storage not mounted: the job fails and says so, the local archive is kept.
    host.run_expect([0], f"rm -r {offsite}")
    time.sleep(1.1)
    failed = host.run(command)
    assert failed.rc == 1, failed.stdout
    assert "backup_copy_path /mnt/offsite is not a directory" in json.loads(failed.stdout)["msg"]
    assert not host.file(offsite).exists
    assert len(host.check_output(f"ls {daily}").split()) == 2
    run_ok("backup.yml", "-e", "backup_schedule=absent", "-e", f"backup_path={daily}")
    cron_file = host.file("/etc/cron.d/switchboard-backup")
    assert not cron_file.exists or "switchboard-backup.py" not in cron_file.content_string
    assert not host.file("/usr/local/lib/switchboard-backup.py").exists


def test_bot_answers_a_dm(host, homeserver_url, register_user):
    register_user("bob", "bob-password")
    answers = asyncio.run(ask_in_a_dm(homeserver_url, f"@bob:{SERVER}", "bob-password", BOT, "!ping", "pong"))
    assert answers


def test_bot_refuses_an_invite_from_someone_not_allowed(homeserver_url, register_user):
    """bot_allowed_inviters names bob and alice: mallory's invite is refused, the bot never joins."""
    register_user("mallory", "mallory-password")

    async def invite_and_watch():
        client = AsyncClient(homeserver_url, f"@mallory:{SERVER}")
        try:
            assert isinstance(await client.login("mallory-password"), LoginResponse)
            room = await client.room_create(is_direct=True, invite=[BOT])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                state = await client.room_get_state_event(room.room_id, "m.room.member", BOT)
                membership = getattr(state, "content", {}).get("membership")
                if membership != "invite":
                    return membership
                await asyncio.sleep(0.5)
            return "still invited"
        finally:
            await client.close()

    assert asyncio.run(invite_and_watch()) == "leave"


def test_bot_token_is_kept_in_a_private_file(host):
    token_file = host.file("/matrix/bot/secrets/access_token")
    assert token_file.exists and token_file.mode == 0o600
    token = token_file.content_string.strip()
    inspect = host.check_output("docker inspect matrix-bot")
    assert token and token not in inspect


def _read_messages(homeserver_url, token, room_id):
    status, body = api(homeserver_url, "GET", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/messages",
                       token=token, query={"dir": "b", "limit": 50})
    assert status == 200, body
    return [event["content"].get("body") for event in body["chunk"] if event["type"] == "m.room.message"]


def test_backup_then_restore_onto_an_emptied_server(host, homeserver_url, tmp_path):
    token = STATE["alice_token"]
    status, room = api(homeserver_url, "POST", "/_matrix/client/v3/createRoom", token=token, body={"name": "history"})
    assert status == 200, room
    text = "written before the backup " + secrets.token_hex(4)
    status, body = api(homeserver_url, "PUT", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room['room_id'])}"
                       f"/send/m.room.message/{secrets.token_hex(4)}", token=token, body={"msgtype": "m.text", "body": text})
    assert status == 200, body
    signing_key = host.file("/matrix/synapse/data/switchboard.test.signing.key").content_string

    output, _counts = run_ok("backup.yml", "-e", f"backup_fetch_dir={tmp_path}")
    archive = re.search(r"Wrote (/matrix/backups/switchboard-\S+\.tar\.gz)", output).group(1)
    assert host.file(archive).mode == 0o600
    fetched = tmp_path / os.path.basename(archive)  # the copy on this machine (the controller)
    assert fetched.stat().st_size == host.file(archive).size
    listing = host.check_output(f"tar -tzf {shlex.quote(archive)}")
    for member in ["MANIFEST.json", "dumps/postgres/synapse.dump", "dumps/postgres/whatsapp.dump",
                   "matrix/synapse/data/homeserver.yaml", "matrix/synapse/data/switchboard.test.signing.key",
                   "matrix/bridges/whatsapp/registration.yaml", "matrix/secrets/postgres-synapse"]:
        assert member in listing.split(), member
    assert "matrix/postgres/data" not in listing

    # A fresh server: no containers, no /matrix but the archive.
    host.run_expect([0], "docker rm -f $(docker ps -aq)")
    host.run_expect([0], "find /matrix -mindepth 1 -maxdepth 1 ! -name backups -exec rm -rf {} +")

    # Restored from the controller's copy, as after losing the server.
    host.run_expect([0], f"rm {shlex.quote(archive)}")
    output, _counts = run_ok("restore.yml", "-e", f"backup_archive={fetched}", "-e", "backup_archive_on_controller=true")
    status, body = api(homeserver_url, "GET", "/_matrix/federation/v1/version")
    assert body["server"]["version"] == "1.162.0", output[-8000:]
    assert host.file("/matrix/synapse/data/switchboard.test.signing.key").content_string == signing_key
    token = login(homeserver_url, "alice", ALICE_PASSWORD)
    STATE["alice_token"] = token
    assert text in _read_messages(homeserver_url, token, room["room_id"])
    STATE["room"], STATE["text"] = room["room_id"], text
    # The bot came back with its kept token, and answers.
    assert asyncio.run(ask_in_a_dm(homeserver_url, f"@bob:{SERVER}", "bob-password", BOT, "!ping", "pong"))


def test_restore_refuses_another_servers_backup(host):
    archive = host.check_output("ls -t /matrix/backups/*.tar.gz | head -1")
    rc, output, _counts = playbook("restore.yml", "-e", f"backup_archive={archive}",
                                   "-e", "synapse_server_name=other.test")
    assert rc != 0 and "is a backup of switchboard.test" in output
    assert host.docker("synapse").is_running


def test_upgrade_keeps_the_data(host, homeserver_url):
    status, body = api(homeserver_url, "GET", "/_matrix/federation/v1/version")
    assert status == 200 and body["server"]["version"].startswith("1.162.0"), body
    output, _counts = run_ok("upgrade.yml", "-e", "synapse_version=1.163.2")
    assert "Wrote /matrix/backups/" in output
    status, body = api(homeserver_url, "GET", "/_matrix/federation/v1/version")
    assert status == 200 and body["server"]["version"].startswith("1.163.2"), body
    token = login(homeserver_url, "alice", ALICE_PASSWORD)
    assert STATE["text"] in _read_messages(homeserver_url, token, STATE["room"])


def test_a_failed_upgrade_stops_with_synapses_last_words_and_keeps_the_data(host, homeserver_url):
    # An "upgrade" to a Synapse that cannot start: its storage package is gone.
    image = host.check_output("docker inspect --format '{{.Config.Image}}' synapse")
    dockerfile = f"FROM {image}\nUSER root\nRUN rm -rf /opt/synapse/lib/python3*/site-packages/synapse/storage\nUSER 991:991\n"
    host.run_expect([0], f"printf %s {shlex.quote(dockerfile)} | docker build -q -t local/broken-synapse:1 -")
    started = time.monotonic()
    rc, output, _counts = playbook("upgrade.yml", "-e", "synapse_self_build=false", "-e", "synapse_image=local/broken-synapse:1",
                                   "-e", "synapse_image_pull=false", "-e", "synapse_health_timeout=120")
    assert rc != 0
    assert "did not become healthy" in output and "Synapse's last log lines" in output
    # What Docker says, not a guess: the broken image exits at once and keeps being restarted.
    assert re.search(r"Docker says the container synapse (keeps restarting|has exited)", output), output[-4000:]
    assert "paused" not in output.split("did not become healthy", 1)[1].split("last log lines", 1)[0]
    assert "Error" in output.split("Synapse's last log lines", 1)[1]  # the traceback is shown
    assert time.monotonic() - started < 240, "the failed start should end the wait early"
    # Back on the working version: the data is all there.
    run_ok("upgrade.yml", "-e", "synapse_version=1.163.2", "-e", "upgrade_backup=false")
    token = login(homeserver_url, "alice", ALICE_PASSWORD)
    assert STATE["text"] in _read_messages(homeserver_url, token, STATE["room"])


def test_postgres_major_upgrade_keeps_the_data_and_the_old_directory(host, homeserver_url):
    """15 to 17: site.yml alone refuses (nothing changes); upgrade_postgres.yml dumps, keeps the old
    data directory and restores; Synapse and the bridge come back on the same data."""
    new = ["-e", "synapse_version=1.163.2", "-e", "postgres_version=17", "-e", "postgres_self_build_base_image=local/debian:trixie"]
    image_before = host.check_output("docker inspect --format '{{.Config.Image}}' postgres")
    # PG_VERSION is in a directory the postgres user owns: replaced by a link to a file of root's,
    # it is refused by name (the files module reads nothing through a link) and what it points
    # at is never shown.
    version_file = "/matrix/postgres/data/PG_VERSION"
    host.run_expect([0], f"mv {version_file} {version_file}.kept && ln -s /etc/shadow {version_file}")
    shadow = host.check_output("cut -d: -f1,2 /etc/shadow | head -1")
    try:
        rc, output, _counts = playbook("site.yml", "-e", "synapse_version=1.163.2", "-e", "switchboard_fast_noop=false")
    finally:
        host.run_expect([0], f"rm {version_file} && mv {version_file}.kept {version_file}")
    assert rc != 0 and f"{version_file}: is a symbolic link; refusing to read" in " ".join(output.split()), output[-3000:]
    assert shadow not in output and "cm9vd" not in output  # "root" in base64
    rc, output, _counts = playbook("site.yml", *new)
    output = " ".join(output.split())  # messages may be wrapped
    assert rc != 0 and "holds the data of PostgreSQL 15, but postgres_version is 17" in output, output[-3000:]
    assert "upgrade_postgres.yml" in output
    assert host.check_output("docker inspect --format '{{.Config.Image}}' postgres") == image_before
    assert host.docker("postgres").is_running and host.docker("synapse").is_running

    output, _counts = run_ok("upgrade_postgres.yml", *new)
    output = " ".join(output.split())
    archive = re.search(r"restored from\s+(/matrix/backups/before-postgresql-17-\S+\.tar\.gz)", output).group(1)
    assert host.file(archive).mode == 0o600
    assert host.file("/matrix/postgres/data/PG_VERSION").content_string.strip() == "17"
    assert host.file("/matrix/postgres/data-previous/PG_VERSION").content_string.strip() == "15"
    assert "PostgreSQL) 17." in host.check_output("docker exec postgres postgres --version")
    token = login(homeserver_url, "alice", ALICE_PASSWORD)
    assert STATE["text"] in _read_messages(homeserver_url, token, STATE["room"])
    # The bridge's database came over too: its portal tables answer on the new server.
    tables = host.check_output("docker exec postgres psql -U postgres -d whatsapp -Atc "
                               "\"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'\"")
    assert int(tables) > 0
    assert asyncio.run(ask_in_a_dm(homeserver_url, f"@bob:{SERVER}", "bob-password", BOT, "!ping", "pong"))

    # Again: nothing to do. A second upgrade while the kept data is there is refused.
    output, _counts = run_ok("upgrade_postgres.yml", *new)
    assert "already major version 17" in output
    rc, output, _counts = playbook("upgrade_postgres.yml", "-e", "synapse_version=1.163.2")
    output = " ".join(output.split())
    assert rc != 0 and "/matrix/postgres/data-previous (postgres_previous_data_path) still holds" in output
    assert host.file("/matrix/postgres/data/PG_VERSION").content_string.strip() == "17"


def test_no_secret_in_any_day2_output(host):
    """Every run above (registering users, purging media, backup, restore, upgrade, the refused
    and failed ones) at -vvv: no kept secret and no password given on the command line."""
    secrets_now = deployed_secrets(host.check_output)
    secrets_now["alice's password"] = ALICE_PASSWORD
    assert len(OUTPUTS) >= 12 and any("(rc 0)" not in name for name in OUTPUTS), list(OUTPUTS)
    assert not occurrences(secrets_now, OUTPUTS)
