"""The double-puppet appservice is written, and listed for Synapse, exactly while an enabled
bridge uses it: the wiring (playbooks/vars/wiring.yml) resolved in a local play with an
inventory's values, and the role's own tasks in check mode.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
REGISTRATION = "/matrix/bridges/double-puppet.yaml"

WIRING = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [{wiring}]
  tasks:
    - ansible.builtin.copy:
        dest: "{out}"
        mode: "0600"
        content: "{{{{ {{'files': synapse_app_service_files_auto, 'enabled': appservice_double_puppet_enabled_auto,
                       'changed': synapse_app_service_files_changed_auto}} | to_json }}}}"
"""


def run(tmp_path, playbook, variables, *args):
    path = tmp_path / "play.yml"
    path.write_text(playbook)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    variables = {"ansible_python_interpreter": sys.executable} | variables
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(path), "-e", json.dumps(variables),
                           *args], capture_output=True, text=True, env=env, check=False)


def wiring(tmp_path, **variables):
    out = tmp_path / "wired.json"
    result = run(tmp_path, WIRING.format(wiring=REPO / "playbooks" / "vars" / "wiring.yml", out=out),
                 {"synapse_server_name": "example.test"} | variables)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("variables, listed", [
    ({}, False),  # no bridge enabled
    ({"bridge_whatsapp_enabled": True}, True),  # on by default in every bridge role
    ({"bridge_whatsapp_enabled": "true", "bridge_whatsapp_double_puppet_enabled": "false"}, False),
    ({"bridge_whatsapp_enabled": True, "bridge_whatsapp_double_puppet_enabled": False, "bridge_discord_enabled": True},
     True),
    ({"bridge_whatsapp_enabled": False, "bridge_discord_enabled": True, "bridge_discord_double_puppet_enabled": False},
     False),
    # A disabled bridge with double puppeting on does not keep it.
    ({"bridge_wechat_double_puppet_enabled": True, "bridge_telegram_enabled": False}, False),
])
def test_listed_while_an_enabled_bridge_uses_it(tmp_path, variables, listed):
    wired = wiring(tmp_path, **variables)
    assert (REGISTRATION in wired["files"]) is listed
    assert wired["enabled"] is listed
    enabled = [name for name in ("telegram", "whatsapp", "discord", "wechat")
               if str(variables.get(f"bridge_{name}_enabled", False)).lower() == "true"]
    assert [path for path in wired["files"] if path != REGISTRATION] == \
        [f"/matrix/bridges/{name}/registration.yaml" for name in enabled]


def test_its_change_restarts_synapse(tmp_path):
    wired = wiring(tmp_path, bridge_whatsapp_enabled=True, appservice_double_puppet_changed=True,
                   bridge_registrations_changed=["whatsapp"])
    assert wired["changed"] == ["whatsapp", "double-puppet"]
    assert wiring(tmp_path, bridge_whatsapp_enabled=True)["changed"] == []


ROLE = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: switchboard.matrix.appservice_double_puppet
"""


def test_the_role_writes_one_registration_in_two_module_runs(tmp_path):
    """Check mode on this machine: the tokens (generated in memory) and the registration, nothing else.
    (When site.yml's one read of the store found both tokens, the registration alone: one run.)"""
    result = run(tmp_path, ROLE, {"appservice_double_puppet_enabled": True, "appservice_double_puppet_server_name":
                                  "example.test", "appservice_double_puppet_registration_path": str(tmp_path / "dp.yaml"),
                                  "appservice_double_puppet_secrets_path": str(tmp_path / "secrets")}, "--check", "--diff")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    modules = re.findall(r"^TASK \[switchboard\.matrix\.appservice_double_puppet : (.*)\]", output, flags=re.M)
    assert "Generate or read the double-puppet appservice's tokens" in modules
    assert "Write the registration of the double-puppet appservice" in modules
    # The diff names the file's keys but never a token.
    assert "_switchboard_double_puppet" in output and "@.*:example\\.test" in output and "'********'" in output
    assert not (tmp_path / "dp.yaml").exists() and not (tmp_path / "secrets").exists()


def test_the_role_refuses_a_missing_server_name(tmp_path):
    result = run(tmp_path, ROLE, {"appservice_double_puppet_enabled": True}, "--check")
    assert result.returncode != 0
    assert "appservice_double_puppet_server_name" in result.stdout + result.stderr


def test_the_role_does_nothing_when_no_bridge_uses_it(tmp_path):
    result = run(tmp_path, ROLE, {}, "--check")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert re.search(r"ok=\d+\s+changed=0", output), output[-3000:]
