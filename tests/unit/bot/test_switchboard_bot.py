"""The default bot's pure logic: commands, replies, sync handling, invites, settings, health."""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib

import pytest

BOT_FILE = pathlib.Path(__file__).resolve().parents[3] / "roles" / "bot" / "files" / "switchboard_bot.py"
_spec = importlib.util.spec_from_file_location("switchboard_bot", BOT_FILE)
bot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bot)

ME = "@switchboard-bot:example.org"
ALICE = "@alice:example.org"


def message(body, sender=ALICE, msgtype="m.text", event_id="$e1", **content):
    return {"type": "m.room.message", "sender": sender, "event_id": event_id,
            "content": dict({"msgtype": msgtype, "body": body}, **content)}


def invited_by(sender, invitee=ME):
    return {"invite_state": {"events": [
        {"type": "m.room.create", "sender": sender, "state_key": "", "content": {}},
        {"type": "m.room.member", "sender": sender, "state_key": invitee, "content": {"membership": "invite"}}]}}


def sync(next_batch, join=None, invite=None):
    """invite: room IDs (invited by ALICE, a user of the bot's server) or {room: invited_by(...)}."""
    rooms = {}
    if join is not None:
        rooms["join"] = {room: {"timeline": {"events": events}} for room, events in join.items()}
    if invite is not None:
        rooms["invite"] = invite if isinstance(invite, dict) else {room: invited_by(ALICE) for room in invite}
    return {"next_batch": next_batch, "rooms": rooms}


def running_bot():
    """A bot past its first sync."""
    b = bot.Bot(ME)
    assert b.handle_sync(sync("s1")) == []
    return b


@pytest.mark.parametrize("body, command", [
    ("!ping", "ping"),
    ("  !PING  ", "ping"),
    ("!ping are you there", "ping"),
    ("help", "help"),
    ("Help", "help"),
    ("!help", "help"),
    ("!help me", "help"),
    ("!frobnicate", "unknown"),
    ("help me with my homework", None),
    ("ping", None),
    ("hello", None),
    ("!", None),
    ("", None),
    ("   ", None),
    (None, None),
    (42, None),
])
def test_parse_command(body, command):
    assert bot.parse_command(body) == command


def test_replies():
    assert "pong" in bot.reply_text("ping")
    assert "!ping" in bot.reply_text("help") and "help" in bot.reply_text("help")
    assert "help" in bot.reply_text("unknown")
    assert bot.reply_text(None) is None


def test_first_sync_answers_nothing_but_takes_invites():
    b = bot.Bot(ME)
    actions = b.handle_sync(sync("s1", join={"!old:example.org": [message("!ping")]}, invite=["!new:example.org"]))
    assert actions == [("join", "!new:example.org")]
    assert b.next_batch == "s1"


def test_ping_gets_a_pong_notice_in_reply():
    b = running_bot()
    actions = b.handle_sync(sync("s2", join={"!r:example.org": [message("!ping", event_id="$ping")]}))
    assert len(actions) == 1
    kind, room, content = actions[0]
    assert (kind, room) == ("send", "!r:example.org")
    assert content["msgtype"] == "m.notice"
    assert "pong" in content["body"]
    assert content["m.relates_to"]["m.in_reply_to"]["event_id"] == "$ping"
    assert b.next_batch == "s2"


def test_help_gets_the_help_text():
    b = running_bot()
    (action,) = b.handle_sync(sync("s2", join={"!r:example.org": [message("help")]}))
    assert action[2]["body"] == bot.HELP_TEXT


def test_invites_are_joined_after_the_first_sync_too():
    b = running_bot()
    assert b.handle_sync(sync("s2", invite=["!b:example.org", "!a:example.org"])) == [
        ("join", "!a:example.org"), ("join", "!b:example.org")]


@pytest.mark.parametrize("event", [
    message("!ping", sender=ME),                      # its own message
    message("!ping", msgtype="m.notice"),             # another bot's notice: no bot loops
    message("!ping", msgtype="m.emote"),
    message("* !ping", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}),  # an edit
    message("good morning"),
    {"type": "m.room.member", "sender": ALICE, "state_key": ALICE, "content": {"membership": "join"}},
    {"type": "m.reaction", "sender": ALICE, "content": {}},
    {"type": "m.room.message", "sender": ALICE},       # no content
    "not an event",
])
def test_ignored_events(event):
    b = running_bot()
    assert b.handle_sync(sync("s2", join={"!r:example.org": [event]})) == []


def test_encrypted_rooms_get_one_plain_text_warning_each():
    b = running_bot()
    encrypted = {"type": "m.room.encrypted", "sender": ALICE, "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
    actions = b.handle_sync(sync("s2", join={"!e:example.org": [encrypted, encrypted], "!f:example.org": [encrypted]}))
    assert [(a[0], a[1]) for a in actions] == [("send", "!e:example.org"), ("send", "!f:example.org")]
    assert all("encrypted" in a[2]["body"] and a[2]["msgtype"] == "m.notice" for a in actions)
    assert b.handle_sync(sync("s3", join={"!e:example.org": [encrypted]})) == []
    own = dict(encrypted, sender=ME)
    assert b.handle_sync(sync("s4", join={"!g:example.org": [own]})) == []


def test_sync_without_rooms_or_next_batch_keeps_the_position():
    b = running_bot()
    assert b.handle_sync({}) == []
    assert b.handle_sync({"next_batch": "s2", "rooms": {"join": {"!r:example.org": None}}}) == []
    assert b.next_batch == "s2"


def test_several_commands_in_one_sync_are_answered_in_order():
    b = running_bot()
    actions = b.handle_sync(sync("s2", join={"!r:example.org": [
        message("!ping", event_id="$1"), message("hi", event_id="$2"), message("!help", event_id="$3")]}))
    assert [a[2]["m.relates_to"]["m.in_reply_to"]["event_id"] for a in actions] == ["$1", "$3"]


def test_settings_read_the_token_from_its_file(tmp_path):
    token_file = tmp_path / "access_token"
    token_file.write_text("syt_secret\n")
    settings = bot.read_settings({
        "MATRIX_HOMESERVER_URL": "http://synapse:8008/",
        "MATRIX_ACCESS_TOKEN_FILE": str(token_file),
        "MATRIX_ACCESS_TOKEN": "ignored-when-the-file-exists",
        "MATRIX_USER_ID": ME,
    })
    assert settings["token"] == "syt_secret"
    assert settings["homeserver_url"] == "http://synapse:8008"
    assert settings["user_id"] == ME
    assert settings["heartbeat_file"] == bot.DEFAULT_HEARTBEAT_FILE


def test_settings_fall_back_to_the_token_in_the_environment(tmp_path):
    settings = bot.read_settings({"MATRIX_HOMESERVER_URL": "https://matrix.example.org",
                                  "MATRIX_ACCESS_TOKEN_FILE": str(tmp_path / "missing"),
                                  "MATRIX_ACCESS_TOKEN": "syt_env"})
    assert settings["token"] == "syt_env"


@pytest.mark.parametrize("environ, problem", [
    ({}, "MATRIX_HOMESERVER_URL"),
    ({"MATRIX_HOMESERVER_URL": "synapse:8008"}, "MATRIX_HOMESERVER_URL"),
    ({"MATRIX_HOMESERVER_URL": "http://synapse:8008"}, "no access token"),
])
def test_settings_errors_name_the_problem_without_a_token(tmp_path, environ, problem):
    environ = dict(environ, MATRIX_ACCESS_TOKEN_FILE=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=problem):
        bot.read_settings(environ)


def test_empty_token_file_is_an_error(tmp_path):
    (tmp_path / "t").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        bot.read_settings({"MATRIX_HOMESERVER_URL": "http://synapse:8008", "MATRIX_ACCESS_TOKEN_FILE": str(tmp_path / "t")})


def test_heartbeat(tmp_path):
    beat = tmp_path / "hb"
    assert not bot.heartbeat_fresh(str(beat), 1000.0)
    bot.touch(str(beat))
    mtime = os.stat(beat).st_mtime
    assert bot.heartbeat_fresh(str(beat), mtime + 10)
    assert not bot.heartbeat_fresh(str(beat), mtime + bot.HEARTBEAT_MAX_AGE + 1)


def test_healthcheck_exit_code(tmp_path, monkeypatch):
    monkeypatch.setenv("MATRIX_BOT_HEARTBEAT_FILE", str(tmp_path / "hb"))
    assert bot.main(["switchboard_bot.py", "--healthcheck"]) == 1
    bot.touch(str(tmp_path / "hb"))
    assert bot.main(["switchboard_bot.py", "--healthcheck"]) == 0


def test_backoff_grows_and_is_capped():
    assert [bot.backoff(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert bot.backoff(50) == 60


def test_sync_filter_is_small():
    room = bot.SYNC_FILTER["room"]
    assert room["timeline"]["limit"] <= 20
    assert room["ephemeral"] == {"not_types": ["*"]}
    assert bot.SYNC_FILTER["presence"] == {"not_types": ["*"]}
    assert json.loads(json.dumps(bot.SYNC_FILTER)) == bot.SYNC_FILTER


def test_invites_from_other_servers_are_refused_by_default():
    b = running_bot()
    actions = b.handle_sync(sync("s2", invite={"!spam:evil.example": invited_by("@spammer:evil.example"),
                                               "!ok:example.org": invited_by(ALICE),
                                               "!forged:example.org": invited_by(ALICE, invitee="@other:example.org"),
                                               "!unknown:example.org": {}}))
    assert actions == [("leave", "!forged:example.org"), ("join", "!ok:example.org"),
                       ("leave", "!spam:evil.example"), ("leave", "!unknown:example.org")]


@pytest.mark.parametrize("allowed, inviter, joins", [
    (["example.org", "friends.example"], "@bob:friends.example", True),
    (["@alice:*"], "@alice:elsewhere.example", True),
    (["@alice:*"], "@mallory:example.org", False),
    (["example.org"], "@bob:example.org.evil.example", False),
    (["example.org"], "not-a-user-id", False),
])
def test_allowed_inviters(allowed, inviter, joins):
    b = bot.Bot(ME, allowed)
    assert b.handle_sync(sync("s1", invite={"!r:x": invited_by(inviter)})) == [("join" if joins else "leave", "!r:x")]


def test_settings_read_the_allowed_inviters(tmp_path):
    token = tmp_path / "token"
    token.write_text("t0k3n\n")
    settings = bot.read_settings({"MATRIX_HOMESERVER_URL": "http://synapse:8008", "MATRIX_ACCESS_TOKEN_FILE": str(token),
                                  "MATRIX_BOT_ALLOWED_INVITERS": "example.org @alice:*"})
    assert settings["allowed_inviters"] == ["example.org", "@alice:*"]


def test_with_encryption_an_undecryptable_message_gets_one_notice_per_room():
    b = bot.Bot(ME, encryption=True)
    b.handle_sync(sync("s1"))
    encrypted = {"type": "m.room.encrypted", "sender": ALICE, "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
    (action,) = b.handle_sync(sync("s2", join={"!e:example.org": [encrypted, encrypted]}))
    assert action[2]["body"] == bot.UNDECRYPTABLE_TEXT
    # A decrypted message (nio hands it on as the plain event) is answered as usual.
    (action,) = b.handle_sync(sync("s3", join={"!e:example.org": [message("!ping")]}))
    assert action[2]["body"] == "pong"


def test_what_was_said_before_the_bot_joined_is_not_answered():
    b = running_bot()
    joined = {"type": "m.room.member", "sender": ME, "state_key": ME, "content": {"membership": "join"}}
    encrypted = {"type": "m.room.encrypted", "sender": ALICE, "content": {}}
    actions = b.handle_sync(sync("s2", join={"!r:example.org": [
        encrypted, message("!ping", event_id="$before"), joined, message("!ping", event_id="$after")]}))
    assert [a[2]["m.relates_to"]["m.in_reply_to"]["event_id"] for a in actions] == ["$after"]


@pytest.mark.parametrize("exists, server_key, store_key, decision", [
    (False, None, None, "new"),
    (False, "K", None, "lost"),
    (True, "K", None, "open"),
    (True, "K", "K", "use"),
    (True, None, "K", "use"),      # the device was renewed: the store's keys are published again
    (True, "K", "other", "mismatch"),
])
def test_store_decision(exists, server_key, store_key, decision):
    assert bot.store_decision(exists, server_key, store_key) == decision


def test_the_store_file_names_user_and_device():
    assert bot.store_file_name(ME, "SWITCHBOARD") == "@switchboard-bot:example.org_SWITCHBOARD.db"


def test_the_first_sync_filter_is_unique_and_filters_the_same():
    one, two = bot.first_sync_filter(1), bot.first_sync_filter(2)
    assert one != two and one["room"] == bot.SYNC_FILTER["room"]
    assert "*" in one["account_data"]["not_types"]


def test_a_problem_in_the_heartbeat_makes_the_bot_unhealthy(tmp_path, monkeypatch, capsys):
    beat = tmp_path / "hb"
    monkeypatch.setenv("MATRIX_BOT_HEARTBEAT_FILE", str(beat))
    bot.touch(str(beat), "the store was lost")
    assert bot.main(["switchboard_bot.py", "--healthcheck"]) == 1
    assert "the store was lost" in capsys.readouterr().out
    bot.touch(str(beat))
    assert bot.main(["switchboard_bot.py", "--healthcheck"]) == 0


def test_settings_read_the_store_path(tmp_path):
    token = tmp_path / "token"
    token.write_text("t0k3n\n")
    environ = {"MATRIX_HOMESERVER_URL": "http://synapse:8008", "MATRIX_ACCESS_TOKEN_FILE": str(token)}
    assert bot.read_settings(environ)["store_path"] == ""
    assert bot.read_settings(dict(environ, MATRIX_BOT_STORE_PATH="/var/lib/switchboard-bot"))["store_path"] == \
        "/var/lib/switchboard-bot"
