"""Helpers for the reliability checks: commands in the VPS, site.yml runs, snapshots, figures.

Every run of site.yml is a real `ansible-playbook` subprocess against the scenario's
inventory, as a user would start it. Its whole output goes to a log file in the scenario's
scratch directory (MOLECULE_EPHEMERAL_DIRECTORY), and its wall time to figures.json there,
for docs/RELIABILITY.md.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "e2e"))

# pylint: disable=unused-import,wrong-import-position
from matrix_fixtures import (  # noqa: E402,F401
    homeserver_config, homeserver_url, http, register_user, resolve_test_names_to_localhost, tls_context)

VPS = "switchboard-vps-reliability"
SCRATCH = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
INVENTORY = os.path.dirname(os.environ.get("MOLECULE_INVENTORY_FILE", ""))
SITE = os.path.join(os.environ.get("MOLECULE_PROJECT_DIRECTORY", ""), "site.yml")
FIGURES = os.path.join(SCRATCH, "figures.json")

# What a run may not change: everything under /matrix (metadata and contents) but the
# files the running services write themselves (PostgreSQL's data directory, Caddy's
# storage, Synapse's media), the containers (id, start time, restarts), networks,
# volumes, images and installed packages.
SNAPSHOT = r"""
cd /matrix
find . -path ./postgres/data -prune -o -path ./proxy/data -prune -o -path ./synapse/data/media_store -prune \
  -o -printf '%p %m %u %g %s %T@\n' | sort
find . -path ./postgres/data -prune -o -path ./proxy/data -prune -o -path ./synapse/data/media_store -prune \
  -o -type f -print0 | sort -z | xargs -0 sha256sum
ids=$(docker ps -aq)
[ -z "$ids" ] || docker inspect --format '{{.Name}} {{.Id}} {{.State.Status}} {{.State.StartedAt}} {{.RestartCount}}' $ids | sort
docker network ls --format '{{.ID}} {{.Name}}' | sort
docker volume ls --format '{{.Name}}' | sort
docker image ls --no-trunc --format '{{.ID}} {{.Repository}}:{{.Tag}}' | sort
dpkg-query -W | sha256sum
"""


def vps(command, check=True, stdin=None):
    """Run a shell command in the VPS; return the CompletedProcess (text, stdout and stderr)."""
    result = subprocess.run(["docker", "exec", "-i", VPS, "sh", "-c", command], input=stdin if stdin is not None else "",
                            capture_output=True, text=True, check=False, timeout=300)
    if check:
        assert result.returncode == 0, f"{command!r} failed: {result.stdout}{result.stderr}"
    return result


def snapshot():
    return vps(SNAPSHOT).stdout


def record(name, **values):
    """Add one measured figure to figures.json (read back into docs/RELIABILITY.md)."""
    figures = {}
    if os.path.exists(FIGURES):
        with open(FIGURES, encoding="utf-8") as handle:
            figures = json.load(handle)
    figures[name] = values
    with open(FIGURES, "w", encoding="utf-8") as handle:
        json.dump(figures, handle, indent=2, sort_keys=True)


class Run:  # pylint: disable=too-few-public-methods
    def __init__(self, rc, output, seconds, log):
        self.rc, self.output, self.seconds, self.log = rc, output, seconds, log

    def recap(self):
        """The PLAY RECAP line's counters of the VPS, as a dict."""
        for line in re.sub(r"\x1b\[[0-9;]*m", "", self.output).splitlines():
            if line.startswith(VPS + " ") and "ok=" in line:
                return {key: int(value) for key, value in (item.split("=") for item in line.split(":", 1)[1].split())}
        return {}


def site(name, *args, inventory=None, env=None, timeout=900):
    """Run site.yml as a subprocess against the VPS; the whole output goes to <scratch>/<name>.log."""
    argv = ["ansible-playbook", "-i", inventory or INVENTORY, SITE, *args]
    started = time.monotonic()
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                            timeout=timeout, env=dict(os.environ, **(env or {})))
    seconds = round(time.monotonic() - started, 1)
    log = os.path.join(SCRATCH, name + ".log")
    with open(log, "w", encoding="utf-8") as handle:
        handle.write(result.stdout)
    run = Run(result.returncode, result.stdout, seconds, log)
    record(name, rc=run.rc, seconds=seconds, recap=run.recap())
    return run


def inspect(name):
    return json.loads(vps(f"docker inspect {name}").stdout)[0]


def read_yaml(path):
    return yaml.safe_load(vps(f"cat {path}").stdout)


@pytest.fixture(scope="session")
def vps_run():
    return vps
