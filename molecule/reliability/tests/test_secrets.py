"""Secrets: never in Ansible's output (the cold converge at -vvv and every later run), private
files owned right, never on a container's command line or in its environment."""
from __future__ import annotations

import glob
import json
import os

import pytest

from conftest import SCRATCH, record, site, vps
from deployed_secrets import deployed_secrets, occurrences

HS = "/matrix/synapse/data/homeserver.yaml"


@pytest.fixture(scope="module")
def generated_secrets():
    return deployed_secrets(lambda command: vps(command).stdout)


def test_cold_converge_log_is_complete_and_verbose():
    with open(os.path.join(SCRATCH, "converge-cold.log"), encoding="utf-8") as handle:
        log = handle.read()
    assert "PLAY RECAP" in log and "failed=0" in log
    assert "<switchboard-vps-reliability> ESTABLISH DOCKER CONNECTION" in log  # really -vvv


def test_diff_runs_after_hand_edits(generated_secrets):
    """--check --diff and --diff runs after hand edits print the files' diffs at -vvv; their logs
    go into the secrets grep below (the configs hold tokens, database URIs, provisioning secrets)."""
    vps("echo 'hand_edit: true' >> /matrix/bridges/whatsapp/config.yaml")
    checked = site("diff-check-run", "--check", "--diff", "-vvv")
    assert checked.rc == 0, checked.output[-3000:]
    assert "+hand_edit: true" not in checked.output and "-hand_edit: true" in checked.output
    vps(f"sed -i 's/^report_stats: .*/report_stats: true/' {HS}")
    repaired = site("diff-run", "--diff", "-vvv")
    assert repaired.rc == 0, repaired.output[-3000:]
    assert "-hand_edit: true" in repaired.output and "-report_stats: true" in repaired.output
    assert "hand_edit" not in vps("cat /matrix/bridges/whatsapp/config.yaml").stdout
    assert generated_secrets  # the grep below reads these logs


def test_no_secret_in_any_output(generated_secrets):
    logs = sorted(glob.glob(os.path.join(SCRATCH, "*.log")))
    assert os.path.join(SCRATCH, "converge-cold.log") in logs
    outputs = {}
    for path in logs:
        with open(path, encoding="utf-8", errors="replace") as handle:
            outputs[os.path.basename(path)] = handle.read()
    total_bytes = sum(len(text) for text in outputs.values())
    found = occurrences(generated_secrets, outputs)
    record("secrets grep", secrets=len(generated_secrets), logs=[os.path.basename(p) for p in logs],
           bytes=total_bytes, occurrences=sum(len(v) for v in found.values()))
    assert not found


@pytest.mark.parametrize("path, mode, owner", [
    ("/matrix/secrets", "700", "0 0"),
    ("/matrix/secrets/*", "600", "0 0"),
    (HS, "600", "991 991"),
    ("/matrix/synapse/data/*.signing.key", "600", "991 991"),
    # Root's: the bridge reads its config through its group and cannot change it; Synapse
    # reads the registration through its own. The bridge writes only in data/.
    ("/matrix/bridges/whatsapp/config.yaml", "640", "0 1337"),
    ("/matrix/bridges/whatsapp/registration.yaml", "640", "0 991"),
    ("/matrix/bridges/whatsapp", "755", "0 0"),
    ("/matrix/bridges/whatsapp/data", "700", "1337 1337"),
    # The bot's uid reads its token through a read-only mount; the rest of its settings are root's.
    ("/matrix/bot/secrets", "700", "993 993"),
    ("/matrix/bot/secrets/access_token", "600", "993 993"),
    ("/matrix/bot/bot.env", "600", "0 0"),
])
def test_secret_files_are_private(path, mode, owner):
    lines = vps(f"stat -c '%n %a %u %g' {path}").stdout.splitlines()
    assert lines
    for line in lines:
        name, actual_mode, uid, gid = line.split()
        assert (actual_mode, f"{uid} {gid}") == (mode, owner), name


def test_no_secret_on_a_command_line_or_in_a_container_environment(generated_secrets):
    ids = vps("docker ps -aq").stdout.split()
    containers = json.loads(vps("docker inspect " + " ".join(ids)).stdout)
    exposed = json.dumps([{"env": c["Config"]["Env"], "cmd": c["Config"]["Cmd"], "entrypoint": c["Config"]["Entrypoint"],
                           "args": c["Args"], "path": c["Path"], "labels": c["Config"]["Labels"]} for c in containers])
    processes = vps("ps -eo args").stdout  # the VPS sees every container's processes too
    leaked = [where for where, value in generated_secrets.items() if value in exposed or value in processes]
    assert not leaked
