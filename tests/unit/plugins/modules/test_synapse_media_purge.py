from __future__ import annotations

import time

import pytest

from ansible_collections.switchboard.matrix.plugins.modules import synapse_media_purge
from .fake_synapse import ADMIN_TOKEN, FakeSynapse, serve
from .utils import run_module

DAY = 86400 * 1000


@pytest.fixture
def fake():
    synapse = FakeSynapse()
    server, synapse.url = serve(synapse)
    now = int(time.time() * 1000)
    for localpart in ("alice", "bob", "carol"):
        synapse.users[localpart] = dict(password="pw", admin=False, user_type=None, avatar_url=None)
    synapse.add_media("old_big", "alice", 20 * 1024 * 1024, now - 40 * DAY)
    synapse.add_media("old_small", "alice", 1000, now - 40 * DAY)
    synapse.add_media("new_big", "bob", 30 * 1024 * 1024, now - DAY)
    synapse.add_media("exactly_10M", "bob", 10 * 1024 * 1024, now - 40 * DAY)  # not strictly larger
    synapse.add_media("old_but_used", "carol", 50 * 1024 * 1024, now - 40 * DAY)
    synapse.media["old_but_used"]["last_access_ts"] = now - DAY
    synapse.add_media("avatar", "carol", 11 * 1024 * 1024, now - 40 * DAY)
    synapse.users["carol"]["avatar_url"] = "mxc://test.local/avatar"
    synapse.add_media("quarantined", "carol", 11 * 1024 * 1024, now - 40 * DAY)
    synapse.media["quarantined"]["quarantined_by"] = "@admin:test.local"
    yield synapse
    server.shutdown()
    server.server_close()


def run(fake, check_mode=False, diff=False, **args):
    params = dict(homeserver_url=fake.url, access_token=ADMIN_TOKEN)
    params.update(args)
    return run_module(synapse_media_purge.main, params, check_mode, diff)


@pytest.mark.parametrize("args, expected", [
    (dict(older_than="30d"), ["old_big", "old_small", "exactly_10M"]),
    (dict(larger_than="10M"), ["old_big", "new_big", "old_but_used"]),
    (dict(size_gt=10 * 1024 * 1024 - 1), ["old_big", "new_big", "exactly_10M", "old_but_used"]),
    (dict(older_than="30d", larger_than="10M"), ["old_big"]),
    (dict(older_than="30d", larger_than="10M", keep_profiles=False), ["old_big", "avatar"]),
])
def test_check_mode_counts_what_the_real_run_deletes(fake, args, expected):
    before = dict(fake.media)
    predicted = run(fake, check_mode=True, diff=True, **args)
    assert predicted["deleted_media"] == sorted(expected) and predicted["total"] == len(expected)
    assert predicted["bytes"] == sum(before[m]["media_length"] for m in expected)
    assert predicted["changed"] is True and predicted["diff"]["before"]["media"] == sorted(expected)
    assert fake.posts() == [] and fake.media == before

    real = run(fake, **args)
    assert {k: real[k] for k in ("deleted_media", "total", "bytes", "changed")} == \
        {k: predicted[k] for k in ("deleted_media", "total", "bytes", "changed")}
    assert set(fake.media) == set(before) - set(expected)

    again = run(fake, **args)
    assert again["changed"] is False and again["total"] == 0 and again["deleted_media"] == []


def test_before_ts_is_passed_through(fake):
    before_ts = int(time.time() * 1000) - 35 * DAY
    result = run(fake, check_mode=True, before_ts=before_ts)
    assert result["before_ts"] == before_ts and result["size_gt"] == 0
    assert result["deleted_media"] == ["exactly_10M", "old_big", "old_small"]


def test_refuses_to_delete_everything(fake):
    result = run(fake)
    assert result["failed"] and "older_than" in result["msg"] and "all local media" in result["msg"]
    assert fake.requests == []


def test_remote_purge_alone(fake):
    assert run(fake, check_mode=True, purge_remote=True, remote_older_than="7d")["changed"] is True
    assert fake.posts() == []
    result = run(fake, purge_remote=True, remote_older_than="7d")
    assert result["changed"] is True and result["remote_deleted"] == 3 and result["total"] == 0
    assert fake.posts() == ["/_synapse/admin/v1/purge_media_cache"]


def test_remote_purge_needs_an_age(fake):
    result = run(fake, purge_remote=True)
    assert result["failed"] and "remote_older_than" in result["msg"]


def test_bad_size_names_the_option(fake):
    result = run(fake, larger_than="10X")
    assert result["failed"] and result["msg"].startswith("larger_than: cannot read '10X' as a size")


def test_exclusive_options(fake):
    assert run(fake, older_than="1d", before_ts=1)["failed"]


def test_not_an_admin(fake):
    result = run(fake, access_token="user-token", older_than="1d")
    assert result["failed"] and result["status"] == 401
    assert "access_token must be a valid token of a Synapse server admin" in result["msg"]
