# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""switchboard.matrix.container: when it may leave docker_container out, and what it gives it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from ansible.plugins.action import ActionBase

from ansible_collections.switchboard.matrix.plugins.action import container as plugin

OPTIONS = {
    "name": "mautrix-discord",
    "image": "local/mautrix-discord:0.7.5",
    "user": "1337:1337",
    "networks": [{"name": "matrix"}],
    "networks_cli_compatible": True,
    "restart_policy": "unless-stopped",
    "labels": {"org.example.keep": "yes"},
    "state": "started",
}
IMAGE_ID = "sha256:" + "a" * 64


def made_with(options, **changes):
    """The inspect document of a container docker_container made from these options."""
    labelled = plugin.with_config_label(options)
    document = {
        "Id": "c" * 64,
        "Image": IMAGE_ID,
        "Config": {"Labels": labelled["labels"], "Image": options["image"]},
        "State": {"Status": "running", "Running": True},
        "HostConfig": {"RestartPolicy": {"Name": options.get("restart_policy", "no")}},
        "NetworkSettings": {"Networks": {entry["name"]: {} for entry in options.get("networks", [])}},
    }
    for path, value in changes.items():
        keys = path.split(".")
        target = document
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return document


def test_the_digest_follows_every_option_but_the_actions_of_one_run():
    digest = plugin.config_hash(OPTIONS)
    assert plugin.config_hash(dict(reversed(list(OPTIONS.items())))) == digest
    assert plugin.config_hash(dict(OPTIONS, restart=True, recreate=False)) == digest
    assert plugin.config_hash(dict(OPTIONS, user="1338:1338")) != digest
    assert plugin.config_hash(dict(OPTIONS, published_ports=["127.0.0.1:29334:29334"])) != digest
    assert plugin.config_hash(OPTIONS, env_file_digest="b" * 64) != digest


def test_the_label_joins_the_labels_of_the_options():
    labels = plugin.with_config_label(OPTIONS)["labels"]
    assert labels == {"org.example.keep": "yes", plugin.CONFIG_LABEL: plugin.config_hash(OPTIONS)}
    assert OPTIONS["labels"] == {"org.example.keep": "yes"}


@pytest.mark.parametrize("changes, reason", [
    ({"state": "absent"}, "state absent"),
    ({"restart": True}, "option restart"),
    ({"recreate": True}, "option recreate"),
    ({"pull": "always"}, "option pull"),
    ({"pull": True}, "option pull"),
    ({"detach": False}, "option detach"),
    ({"docker_host": "tcp://127.0.0.1:2375"}, "option docker_host"),
    ({"memory": "1g"}, "option memory"),
])
def test_these_options_always_go_to_the_module(changes, reason):
    assert plugin.needs_module(dict(OPTIONS, **changes)) == reason
    assert plugin.needs_module(dict(OPTIONS, restart=False, pull=False)) is None
    assert plugin.needs_module(dict(OPTIONS, pull="missing", detach=True)) is None


def test_a_container_made_with_these_options_differs_in_nothing():
    options = plugin.with_config_label(OPTIONS)
    assert plugin.difference(options, made_with(OPTIONS), IMAGE_ID) is None


@pytest.mark.parametrize("container, image_id, reason", [
    (None, IMAGE_ID, "no such container"),
    (made_with(dict(OPTIONS, user="0:0")), IMAGE_ID, "made with other options"),
    (made_with(OPTIONS, **{"Config.Labels": {}}), IMAGE_ID, "made with other options"),
    (made_with(OPTIONS, **{"Config.Labels": None}), IMAGE_ID, "made with other options"),
    (made_with(OPTIONS, **{"State.Status": "exited"}), IMAGE_ID, "status exited"),
    (made_with(OPTIONS, **{"State.Status": "paused"}), IMAGE_ID, "status paused"),
    (made_with(OPTIONS, **{"State.Status": "restarting"}), IMAGE_ID, "status restarting"),
    (made_with(OPTIONS), "sha256:" + "b" * 64, "the image local/mautrix-discord:0.7.5 names another image now"),
    (made_with(OPTIONS), "", "the image local/mautrix-discord:0.7.5 names another image now"),
    (made_with(OPTIONS, **{"HostConfig.RestartPolicy": {"Name": "no"}}), IMAGE_ID, "restart policy no"),
    (made_with(OPTIONS, **{"HostConfig.RestartPolicy": {"Name": ""}}), IMAGE_ID, "restart policy no"),
    (made_with(OPTIONS, **{"NetworkSettings.Networks": {"bridge": {}}}), IMAGE_ID, "networks bridge"),
    (made_with(OPTIONS, **{"NetworkSettings.Networks": None}), IMAGE_ID, "networks "),
])
def test_each_difference_is_seen(container, image_id, reason):
    assert plugin.difference(plugin.with_config_label(OPTIONS), container, image_id) == reason


def test_another_network_attached_by_hand_counts_only_where_networks_are_compared_strictly():
    container = made_with(OPTIONS, **{"NetworkSettings.Networks": {"matrix": {}, "other": {}}})
    assert plugin.difference(plugin.with_config_label(OPTIONS), container, IMAGE_ID) is None
    strict = dict(OPTIONS, comparisons={"networks": "strict"})
    container = made_with(strict, **{"NetworkSettings.Networks": {"matrix": {}, "other": {}}})
    assert plugin.difference(plugin.with_config_label(strict), container, IMAGE_ID) == "networks matrix, other"


FAKE_DOCKER = """#!/bin/sh
# Answers as the docker command line does: inspect documents on stdout, errors on stderr.
case "$1 $2" in
  "container inspect")
    if [ "$3" = mautrix-discord ]; then cat "$FAKE_CONTAINER"; exit 0; fi
    echo '[]'; echo "Error: No such container: $3" >&2; exit 1 ;;
  "image inspect")
    if [ "$5" = local/mautrix-discord:0.7.5 ]; then echo "$FAKE_IMAGE_ID"; exit 0; fi
    echo "Error: No such image: $5" >&2; exit 1 ;;
esac
exit 2
"""


@pytest.fixture(name="shell")
def fixture_shell(tmp_path):
    """Runs a command in sh, with a fake docker command first in PATH."""
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    document = tmp_path / "container.json"
    document.write_text(json.dumps([made_with(OPTIONS)], indent=4))
    env = dict(os.environ, PATH="%s:%s" % (tmp_path, os.environ["PATH"]),
               FAKE_CONTAINER=str(document), FAKE_IMAGE_ID=IMAGE_ID)

    def run(command):
        return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, check=False).stdout
    return run


def test_the_inspection_reads_the_container_and_the_image_in_one_command(shell):
    env_file_digest, container, image_id = plugin.parse_inspect(
        shell(plugin.inspect_command("mautrix-discord", "local/mautrix-discord:0.7.5")))
    assert (env_file_digest, container, image_id) == ("", made_with(OPTIONS), IMAGE_ID)


def test_the_inspection_of_what_is_not_there(shell):
    assert plugin.parse_inspect(shell(plugin.inspect_command("gone", "local/gone:1"))) == ("", None, "")
    # No docker command at all: nothing found either.
    assert plugin.parse_inspect("") == ("", None, "")


def test_the_inspection_reads_the_env_file(shell, tmp_path):
    env_file = tmp_path / "bot env"
    env_file.write_text("A=1\n")
    env_file_digest, container, image_id = plugin.parse_inspect(
        shell(plugin.inspect_command("mautrix-discord", "local/mautrix-discord:0.7.5", str(env_file))), str(env_file))
    assert env_file_digest == hashlib.sha256(b"A=1\n").hexdigest()
    assert (container, image_id) == (made_with(OPTIONS), IMAGE_ID)
    assert plugin.parse_inspect(shell(plugin.inspect_command("gone", "local/gone:1", str(tmp_path / "none"))),
                                str(tmp_path / "none")) == ("", None, "")


def test_names_reach_the_shell_quoted(shell, tmp_path):
    marker = tmp_path / "marker"
    command = plugin.inspect_command("x; touch %s" % marker, "$(touch %s)" % marker, "`touch %s`" % marker)
    shell(command)
    assert not marker.exists()


class FakeAction(plugin.ActionModule):
    """The action plugin with the host's answer and the module run replaced."""

    def __init__(self, args, stdout):  # pylint: disable=super-init-not-called
        self._task = type("Task", (), {"args": args})()
        self.stdout = stdout
        self.commands = []
        self.module_runs = []

    def _low_level_execute_command(self, cmd, *args, **kwargs):  # pylint: disable=arguments-differ
        self.commands.append(cmd)
        return {"rc": 0, "stdout": self.stdout, "stderr": ""}

    def _execute_module(self, *args, **kwargs):  # pylint: disable=arguments-differ
        self.module_runs.append(kwargs)
        return {"changed": True, "container": {"Id": "new"}}


@pytest.fixture(autouse=True)
def fixture_base_run(monkeypatch):
    monkeypatch.setattr(ActionBase, "run", lambda self, tmp=None, task_vars=None: {})


def host_answer(container, image_id=IMAGE_ID):
    return "%s\n\n---\n%s\n" % (json.dumps([container] if container else []), image_id)


def test_a_container_as_the_options_make_it_needs_no_module_run():
    action = FakeAction(dict(OPTIONS), host_answer(made_with(OPTIONS)))
    result = action.run(task_vars={})
    assert result == {"changed": False, "container": made_with(OPTIONS)}
    assert action.module_runs == []
    assert len(action.commands) == 1


@pytest.mark.parametrize("args, container", [
    (dict(OPTIONS, user="0:0"), made_with(OPTIONS)),
    (dict(OPTIONS), made_with(OPTIONS, **{"State.Status": "exited"})),
    (dict(OPTIONS), None),
    (dict(OPTIONS, restart=True), made_with(OPTIONS)),
])
def test_anything_else_goes_to_docker_container_with_the_label(args, container):
    action = FakeAction(args, host_answer(container))
    result = action.run(task_vars={})
    assert result == {"changed": True, "container": {"Id": "new"}}
    [run] = action.module_runs
    assert run["module_name"] == "community.docker.docker_container"
    # The label a restart writes is the one the next run, without restart, expects.
    assert run["module_args"]["labels"] == plugin.with_config_label(OPTIONS if args.get("restart") else args)["labels"]
    assert {key: value for key, value in run["module_args"].items() if key != "labels"} == \
        {key: value for key, value in args.items() if key != "labels"}


def test_a_restart_goes_to_the_module_without_a_look_unless_the_label_needs_the_env_file():
    action = FakeAction(dict(OPTIONS, restart=True), host_answer(made_with(OPTIONS)))
    action.run(task_vars={})
    assert action.commands == [] and len(action.module_runs) == 1
    env_file_answer = "%s  -\n\n---\n%s" % ("b" * 64, host_answer(made_with(OPTIONS)))
    action = FakeAction(dict(OPTIONS, restart=True, env_file="/matrix/bot/bot.env"), env_file_answer)
    action.run(task_vars={})
    assert len(action.commands) == 1
    [run] = action.module_runs
    assert run["module_args"]["labels"][plugin.CONFIG_LABEL] == plugin.config_hash(
        dict(OPTIONS, env_file="/matrix/bot/bot.env"), env_file_digest="b" * 64)


def test_absent_goes_to_the_module_without_a_look():
    action = FakeAction({"name": "mautrix-discord", "state": "absent"}, "")
    action.run(task_vars={})
    assert action.commands == []
    assert len(action.module_runs) == 1
