"""The fast no-op, and the drift it must still find (docs/PERFORMANCE.md).

After converge and idempotence the host matches the record of the last complete run, so
site.yml stops after its probe. Five kinds of drift are then made by hand, one at a time;
after each, the probe alone (run ad hoc) must name exactly the drifts made so far, so it
sees every kind on its own. Then one site.yml run repairs all of them, and the run after
that is a no-op again. Every test takes testinfra's `host` fixture so they run in file order.
"""
from __future__ import annotations

import json
import re

from playbook_runs import ansible_module, ansible_playbook

VPS = "switchboard-vps-bridges"
RECORD = "/matrix/.switchboard-state.json"
HOMESERVER_YAML = "/matrix/synapse/data/homeserver.yaml"
WHATSAPP_CONFIG = "/matrix/bridges/whatsapp/config.yaml"
TELEGRAM_REGISTRATION = "/matrix/bridges/telegram/registration.yaml"
WHATSAPP_REGISTRATION_IN_SYNAPSE = "/bridges/whatsapp/registration.yaml"
CONTAINERS = ["postgres", "synapse", "caddy", "mautrix-telegram", "mautrix-whatsapp", "mautrix-discord",
              "matrix-wechat", "matrix-bot"]
STATE = {}  # what earlier tests leave for later ones


def started_at(host):
    """Each container's ID and start time: a restart or a recreation changes them."""
    return host.check_output("docker inspect --format '{{.Name}} {{.Id}} {{.State.StartedAt}}' " + " ".join(CONTAINERS))


def assert_stopped_after_the_probe(run):
    assert run.rc == 0, run.output[-4000:]
    recap = run.recap(VPS)
    assert recap["changed"] == 0 and recap["failed"] == 0, recap
    assert "Stop here when nothing differs" in run.output
    # Not one task of a role ran: the probe was the only module run, after the wiring's
    # include_vars (on the controller).
    assert "TASK [switchboard.matrix." not in run.output, run.output[-4000:]
    tasks = re.findall(r"^TASK \[(.*?)\]", run.output, re.MULTILINE)
    assert tasks == ["Load how the roles fit together", "Compare the host and the settings with the last complete run",
                     "Stop here when nothing differs", "Stop here when nothing differs from the last complete run"], tasks
    assert recap["ok"] == 2, recap


def probe(host):
    """The probe of site.yml, run ad hoc with the inputs digest of the record: only the host is compared."""
    digest = json.loads(host.check_output(f"cat {RECORD}"))["inputs"]
    result = ansible_module(VPS, "switchboard.matrix.deployment_state", {"path": RECORD, "inputs_digest": digest})
    assert "differences" in result, result
    return result


def test_a_noop_run_stops_after_the_probe_and_restarts_nothing(host):
    before = started_at(host)
    run = ansible_playbook("site.yml")
    assert_stopped_after_the_probe(run)
    assert started_at(host) == before
    assert host.file(RECORD).mode == 0o600 and host.file(RECORD).user == "root"


def test_the_probe_sees_each_kind_of_drift_on_its_own(host):
    assert probe(host)["up_to_date"] is True
    drifts = [
        ("a config file edited by hand",
         f"sed -i -E 's/^(  domain: )\"?switchboard[.]test\"?$/\\1hand-edited.test/' {WHATSAPP_CONFIG}"
         f" && grep -q 'domain: hand-edited.test' {WHATSAPP_CONFIG}",
         f"{WHATSAPP_CONFIG}: content changed"),
        ("a file mode changed", f"chmod 0666 {TELEGRAM_REGISTRATION}",
         f"{TELEGRAM_REGISTRATION}: mode 0666, was 0640"),
        ("a container stopped", "docker stop mautrix-discord", "container mautrix-discord: stopped"),
        ("a container recreated by hand with other settings",
         "image=$(docker inspect --format '{{.Config.Image}}' matrix-bot) && docker rm -f matrix-bot >/dev/null"
         " && docker run -d --name matrix-bot --network matrix --user 0:0 --restart no --entrypoint sleep"
         " \"$image\" infinity",
         "container matrix-bot: recreated (another container ID)"),
        ("a registration removed from homeserver.yaml",
         f"sed -i '\\#{WHATSAPP_REGISTRATION_IN_SYNAPSE}#d' {HOMESERVER_YAML}"
         f" && ! grep -q {WHATSAPP_REGISTRATION_IN_SYNAPSE} {HOMESERVER_YAML}",
         f"{HOMESERVER_YAML}: content changed"),
    ]
    expected = []
    for kind, command, difference in drifts:
        host.run_expect([0], command)
        expected.append(difference)
        result = probe(host)
        assert result["up_to_date"] is False, kind
        assert sorted(result["differences"]) == sorted(expected), (kind, result["differences"])
        if kind.startswith("a container recreated"):
            STATE["hand_bot"] = host.check_output("docker inspect --format '{{.Id}}' matrix-bot")


def test_check_mode_reports_every_drift_changes_nothing_and_succeeds(host):
    """With all five drifts on the host, `--check --diff` shows them, restarts and waits for
    nothing, and exits 0; the host is as the drifts left it."""
    before = (started_at_or_missing(host), host.file(WHATSAPP_CONFIG).content_string, host.file(HOMESERVER_YAML).content_string,
              host.check_output(f"stat -c '%a' {TELEGRAM_REGISTRATION}"))
    run = ansible_playbook("site.yml", "--check", "--diff")
    assert run.rc == 0 and run.recap(VPS)["failed"] == 0, run.output[-6000:]
    assert run.recap(VPS)["changed"] > 0
    assert re.search(r"^-\s+domain: hand-edited\.test$", run.output, re.M), run.output[-6000:]
    assert re.search(r"^\+\s*- " + re.escape(WHATSAPP_REGISTRATION_IN_SYNAPSE) + "$", run.output, re.M)
    after = (started_at_or_missing(host), host.file(WHATSAPP_CONFIG).content_string, host.file(HOMESERVER_YAML).content_string,
             host.check_output(f"stat -c '%a' {TELEGRAM_REGISTRATION}"))
    assert after == before


def started_at_or_missing(host):
    return host.run("docker inspect --format '{{.Name}} {{.Id}} {{.State.Running}} {{.State.StartedAt}}' "
                    + " ".join(CONTAINERS)).stdout


def test_the_next_run_repairs_every_drift(host):
    synapse_started = host.check_output("docker inspect --format '{{.State.StartedAt}}' synapse")
    run = ansible_playbook("site.yml")
    assert run.rc == 0 and run.recap(VPS)["failed"] == 0, run.output[-6000:]
    # The run said why it did its work.
    assert "container matrix-bot: recreated (another container ID)" in run.output

    assert "hand-edited.test" not in host.file(WHATSAPP_CONFIG).content_string
    assert WHATSAPP_REGISTRATION_IN_SYNAPSE in host.file(HOMESERVER_YAML).content_string
    assert host.check_output(f"stat -c '%a' {TELEGRAM_REGISTRATION}") == "640"
    bot = json.loads(host.check_output("docker inspect matrix-bot"))[0]
    assert bot["Id"] != STATE["hand_bot"]
    assert bot["Config"]["User"] != "0:0" and bot["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert any(mount["Destination"] == "/run/secrets/bot" for mount in bot["Mounts"])
    for name in CONTAINERS:
        assert host.check_output(f"docker inspect --format '{{{{.State.Running}}}}' {name}") == "true", name
    # homeserver.yaml was repaired, so Synapse restarted to read it.
    assert host.check_output("docker inspect --format '{{.State.StartedAt}}' synapse") != synapse_started


def test_after_the_repair_a_run_is_a_noop_again(host):
    assert probe(host)["up_to_date"] is True
    before = started_at(host)
    assert_stopped_after_the_probe(ansible_playbook("site.yml"))
    assert started_at(host) == before


def test_without_the_fast_path_every_task_is_idempotent_and_the_record_is_forgotten(host):
    """Idempotence of each role on its own (the probe is off, every task runs): 0 changed,
    nothing restarted. Such a run leaves no record (nothing compared, nothing to vouch for),
    so the next fast-path run is a full one, which records again."""
    before = started_at(host)
    run = ansible_playbook("site.yml", "-e", "switchboard_fast_noop=false")
    assert run.rc == 0, run.output[-4000:]
    recap = run.recap(VPS)
    assert recap["changed"] == 0 and recap["failed"] == 0, recap
    assert "TASK [switchboard.matrix.synapse" in run.output  # the roles really ran
    assert started_at(host) == before
    assert not host.file(RECORD).exists
    full = ansible_playbook("site.yml")
    assert full.rc == 0 and full.recap(VPS)["changed"] == 0, full.output[-4000:]
    assert "no record of a complete run" in full.output or "TASK [switchboard.matrix.synapse" in full.output
    assert probe(host)["up_to_date"] is True
