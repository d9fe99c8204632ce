"""appservice_ping against a scripted Docker: each outcome of the wait, and what it tells the user."""
from __future__ import annotations

import json

import pytest
from ansible.module_utils import basic

from ansible_collections.switchboard.matrix.plugins.modules import appservice_ping
from .utils import run_module

ARGS = dict(appservice_id="whatsapp", as_token="secret-as-token", container="mautrix-whatsapp", timeout=30)


class FakeDocker:
    """Answers the module's docker commands from a script of polls; records every call."""

    def __init__(self, polls, synapse_healthy=True, logs="bridge: listening on :29318", answering=None):
        # One (pinged, state or None, restart count) per poll; the last repeats.
        self.polls, self.synapse_healthy, self.logs = list(polls), synapse_healthy, logs
        self.calls, self.poll = [], -1
        self.now = 0.0
        # The ids that answer the first ping of several at once (None: as the first poll says).
        self.answering = answering

    def current(self):
        return self.polls[min(self.poll, len(self.polls) - 1)]

    def run_command(self, argv, environ_update=None, **_kwargs):
        self.calls.append((argv, dict(environ_update or {})))
        verb = argv[1]
        if verb == "exec" and "AS_TOKEN_0" in argv:
            # Several at once: the first poll's answer for every one of them, unless scripted.
            self.poll += 1
            ids = argv[argv.index("-c") + 2:]
            answering = self.answering if self.answering is not None else (ids if self.current()[0] else [])
            return 0, "".join("%d\n" % n for n, name in enumerate(ids) if name in answering), ""
        if verb == "exec" and "AS_TOKEN" in argv:
            self.poll += 1
            return (0, "", "") if self.current()[0] else (1, "", "urllib.error.URLError")
        if verb == "exec":
            return (0, "", "") if self.synapse_healthy else (1, "", "refused")
        if verb == "inspect":
            _pinged, state, restarts = self.current()
            if state is None:
                return 1, "", "Error: No such object: mautrix-whatsapp"
            return 0, json.dumps([{"State": state, "RestartCount": restarts}]), ""
        if verb == "logs":
            return 0, self.logs, ""
        raise AssertionError(argv)

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


RUNNING = {"Status": "running", "ExitCode": 0}


@pytest.fixture
def docker(monkeypatch):
    def install(*polls, **kwargs):
        fake = FakeDocker(polls, **kwargs)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: fake.run_command(argv, **kw))
        original = appservice_ping.Waiter.__init__

        def init(self, module, clock=None, sleep=None):  # pylint: disable=unused-argument
            original(self, module, clock=fake.clock, sleep=fake.sleep)
        monkeypatch.setattr(appservice_ping.Waiter, "__init__", init)
        return fake
    return install


def test_reached_at_once(docker):
    fake = docker((True, RUNNING, 0))
    result = run_module(appservice_ping.main, ARGS)
    assert not result.get("failed") and result["changed"] is False and result["seconds"] == 0
    argv, environ = fake.calls[0]
    # The token travels in the environment of docker exec, never on its command line.
    assert environ == {"AS_TOKEN": "secret-as-token"} and "secret-as-token" not in " ".join(argv)
    assert argv[-1] == "whatsapp" and "synapse" in argv


def test_reached_after_the_bridge_came_up(docker):
    fake = docker((False, RUNNING, 0), (False, RUNNING, 1), (True, RUNNING, 1))
    result = run_module(appservice_ping.main, ARGS)
    assert not result.get("failed") and result["seconds"] == 4
    assert fake.poll == 2


def test_missing_container(docker):
    docker((False, None, 0))
    result = run_module(appservice_ping.main, ARGS)
    assert result["failed"] and result["reason"] == "missing"
    assert "the container mautrix-whatsapp does not exist" in result["msg"]


def test_stopped_container_names_its_exit_code_and_shows_its_logs(docker):
    docker((False, {"Status": "exited", "ExitCode": 3}, 0), logs="FATAL config: homeserver.address is required")
    result = run_module(appservice_ping.main, ARGS)
    assert result["failed"] and result["reason"] == "stopped"
    assert "is not running (exited, exit code 3)" in result["msg"]
    assert result["msg"].endswith("FATAL config: homeserver.address is required")


def test_restarts_while_synapse_is_down_are_not_a_crash_loop(docker):
    # Synapse restarting too: no baseline yet, so the bridge's restarts do not count.
    fake = docker((False, RUNNING, 0), (False, RUNNING, 3), (False, RUNNING, 5), (True, RUNNING, 5), synapse_healthy=False)
    result = run_module(appservice_ping.main, ARGS)
    assert not result.get("failed"), result
    assert fake.poll == 3


def test_crash_loop_once_synapse_is_healthy(docker):
    docker((False, RUNNING, 4), (False, {"Status": "restarting", "ExitCode": 1}, 5), (False, RUNNING, 6))
    result = run_module(appservice_ping.main, ARGS)
    assert result["failed"] and result["reason"] == "crash-looping"
    assert "restarted 2 times" in result["msg"] and "exit code 0" in result["msg"]


def test_timeout_says_what_docker_says(docker):
    fake = docker((False, {"Status": "running", "ExitCode": 0}, 0))
    result = run_module(appservice_ping.main, dict(ARGS, timeout=10))
    assert result["failed"] and result["reason"] == "timeout"
    assert "no answer from the container mautrix-whatsapp within 10 s (it is running)" in result["msg"]
    assert 10 <= fake.now <= 12
    assert "paused" not in result["msg"]


def test_check_mode_asks_nothing(docker):
    fake = docker((False, None, 0))
    result = run_module(appservice_ping.main, ARGS, check_mode=True)
    assert not result.get("failed") and result["changed"] is False and fake.calls == []


def test_the_id_is_one_path_segment(docker):
    fake = docker((True, RUNNING, 0))
    run_module(appservice_ping.main, dict(ARGS, appservice_id="a/b c"))
    assert fake.calls[0][0][-1] == "a%2Fb%20c"


def test_negative_timeout_is_refused(docker):
    fake = docker((True, RUNNING, 0))
    result = run_module(appservice_ping.main, dict(ARGS, timeout=-1))
    assert result["failed"] and "must not be negative" in result["msg"] and fake.calls == []


def test_several_appservices_answering_at_once_cost_one_exec_each_with_its_own_token(docker):
    fake = docker((True, RUNNING, 0))
    result = run_module(appservice_ping.main, dict(timeout=30, appservices=[
        dict(appservice_id="whatsapp", as_token="token-one", container="mautrix-whatsapp"),
        dict(appservice_id="telegram", as_token="token-two", container="mautrix-telegram")]))
    assert not result.get("failed") and result["changed"] is False
    assert len(fake.calls) == 1
    argv, environ = fake.calls[0]
    assert argv[-2:] == ["whatsapp", "telegram"]
    assert environ == {"AS_TOKEN_0": "token-one", "AS_TOKEN_1": "token-two"}
    # The tokens travel in the environment of docker exec, never on its command line.
    assert not {"token-one", "token-two"} & set(argv)


def test_only_the_appservices_not_answering_at_once_are_waited_for(docker):
    fake = docker((False, RUNNING, 0), (True, RUNNING, 0), answering=["whatsapp"])
    result = run_module(appservice_ping.main, dict(timeout=30, appservices=[
        dict(appservice_id="whatsapp", as_token="token-one", container="mautrix-whatsapp"),
        dict(appservice_id="telegram", as_token="token-two", container="mautrix-telegram")]))
    assert not result.get("failed")
    pings = [(argv[-1], environ["AS_TOKEN"]) for argv, environ in fake.calls if "AS_TOKEN" in argv]
    assert pings == [("telegram", "token-two")]


def test_the_ping_of_several_runs_in_python(docker):
    """The script the module hands Synapse's Python: it pings each with its own token."""
    fake = docker((True, RUNNING, 0))
    run_module(appservice_ping.main, dict(timeout=30, appservices=[
        dict(appservice_id="a/b", as_token="t0", container="c0"), dict(appservice_id="x", as_token="t1", container="c1")]))
    argv, _environ = fake.calls[0]
    script = argv[argv.index("-c") + 1]
    compile(script, "<ping>", "exec")
    assert argv[-2:] == ["a%2Fb", "x"] and "AS_TOKEN_%d" in script


def test_the_first_appservice_not_reached_fails_and_is_named(docker):
    docker((False, None, 0))
    result = run_module(appservice_ping.main, dict(timeout=30, appservices=[
        dict(appservice_id="telegram", as_token="token-two", container="mautrix-telegram")]))
    assert result["failed"] and result["reason"] == "missing"
    assert result["msg"].startswith("Synapse could not reach the appservice telegram (container mautrix-telegram)")


def test_one_appservice_or_a_list_not_both(docker):
    docker((True, RUNNING, 0))
    result = run_module(appservice_ping.main, dict(ARGS, appservices=[]))
    assert result["failed"] and "mutually exclusive" in result["msg"]
