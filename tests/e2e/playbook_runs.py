"""Real ansible and ansible-playbook runs against a Molecule scenario's VPS, as a user starts them.

They use the scenario's own inventory and ansible.cfg (from Molecule's environment) and
this checkout's collection, and print one line per result (JSON) so tests can search
the output.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.join(os.path.dirname(__file__), "..", ".."))


def _environment(**extra):
    ephemeral = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
    return dict(os.environ,
                ANSIBLE_CONFIG=os.environ.get("ANSIBLE_CONFIG", os.path.join(ephemeral, "ansible.cfg")),
                ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, "collections"),
                ANSIBLE_ROLES_PATH=os.path.join(PROJECT, "roles"),
                ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", NO_COLOR="1",
                ANSIBLE_CALLBACK_RESULT_FORMAT="json", **extra)


def _inventory():
    ephemeral = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
    return os.path.dirname(os.environ.get("MOLECULE_INVENTORY_FILE", os.path.join(ephemeral, "inventory", "x")))


def _tool(name):
    return os.path.join(os.path.dirname(sys.executable), name)


class PlaybookRun:  # pylint: disable=too-few-public-methods
    """rc, output (stdout and stderr), wall seconds, and the recap counters per host."""

    def __init__(self, rc, output, seconds):
        self.rc, self.output, self.seconds = rc, output, seconds

    def recap(self, host):
        match = re.search(re.escape(host) + r"\s*:\s*((?:\w+=\d+\s*)+)", self.output)
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))} if match else {}


def ansible_playbook(playbook, *args, timeout=1200):
    """Run a playbook of this checkout (path relative to it) against the scenario's inventory."""
    command = [_tool("ansible-playbook"), "-i", _inventory(), os.path.join(PROJECT, playbook), *args]
    started = time.monotonic()
    result = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=timeout, check=False)
    return PlaybookRun(result.returncode, result.stdout + result.stderr, round(time.monotonic() - started, 1))


def ansible_module(host, module, arguments, become=True):
    """Run one module ad hoc on a host of the scenario; return its result (a dict)."""
    command = [_tool("ansible"), "-i", _inventory(), host, "-m", module, "-a", json.dumps(arguments),
               *(["--become"] if become else [])]
    result = subprocess.run(command, env=_environment(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json"),
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode in (0, 2), result.stdout + result.stderr
    # Other callbacks (the timer) may print after the JSON document.
    report = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{"):])[0]
    return report["plays"][0]["tasks"][0]["hosts"][host]
