"""Each bridge role hands the shared engine (roles/bridge) its settings by name, and the
engine's argument spec types every one of them.

The static tests read the files; the last ones include each bridge role for real on this
machine, switched off and in its wait pass (so nothing runs but both roles' argument-spec
validation and the skipped steps), with values as an inventory may give them: strings
for numbers and switches.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
ROLES = REPO / "roles"
BRIDGES = sorted(path.name.removeprefix("bridge_") for path in ROLES.glob("bridge_*"))
ENGINE_SPEC = yaml.safe_load((ROLES / "bridge" / "meta" / "argument_specs.yml").read_text())["argument_specs"]
INPUTS = ENGINE_SPEC["main"]["options"]["bridge_inputs"]["options"]


def defaults(name, kind="defaults"):
    return yaml.safe_load((ROLES / f"bridge_{name}" / kind / "main.yml").read_text())


def test_the_four_bridges_are_there():
    assert BRIDGES == ["discord", "telegram", "wechat", "whatsapp"]


@pytest.mark.parametrize("name", BRIDGES)
def test_every_input_is_one_variable_of_the_role(name):
    role_defaults = defaults(name)
    # A role variable: not an option of the role, so no argument check templates it whole.
    handed = defaults(name, "vars")[f"bridge_{name}_engine"]
    assert f"bridge_{name}_engine" not in role_defaults
    assert set(handed) <= set(INPUTS), set(handed) - set(INPUTS)
    assert {key for key, option in INPUTS.items() if option.get("required")} <= set(handed)
    for key, value in handed.items():
        # By name, so that grep finds where each variable goes.
        assert value == f"{{{{ bridge_{name}_{key} }}}}", (key, value)
        assert f"bridge_{name}_{key}" in role_defaults, key


@pytest.mark.parametrize("name", BRIDGES)
def test_the_role_hands_its_dict_wherever_it_includes_the_engine(name):
    for tasks in ("main", "validate"):
        text = (ROLES / f"bridge_{name}" / "tasks" / f"{tasks}.yml").read_text()
        assert f'bridge_inputs: "{{{{ bridge_{name}_engine }}}}"' in text, tasks


def test_every_input_is_typed_and_described():
    for key, option in INPUTS.items():
        assert option.get("type") in {"str", "int", "bool", "list", "dict"}, key
        assert len(str(option.get("description", "")).split()) >= 3, key
        assert option.get("required") or "default" in option, key


def test_the_engine_reads_no_setting_by_a_computed_name():
    lookups = []
    for path in sorted((ROLES / "bridge").glob("[dtv]*/*")):  # defaults, tasks, templates, vars
        if path.suffix in {".yml", ".j2"}:
            lookups += [(path.relative_to(ROLES).as_posix(), line.strip()) for line in path.read_text().splitlines()
                        if "lookup('ansible.builtin.vars'" in line or "bridge_prefix" in line]
    # The one left: a caller that names only the bridge gets its role's whole dict.
    assert lookups == [("bridge/defaults/main.yml",
                        "bridge_inputs: \"{{ lookup('ansible.builtin.vars', 'bridge_' ~ bridge_name ~ '_engine') }}\"")]


PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: switchboard.matrix.bridge_{name}
      vars:
        bridge_phase: wait
"""


def include(tmp_path, name, **variables):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(name=name))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(playbook),
                           "-e", json.dumps(variables)], capture_output=True, text=True, env=env, check=False)


@pytest.mark.parametrize("name", BRIDGES)
def test_inventory_strings_pass_the_engines_types(tmp_path, name):
    run = include(tmp_path, name, **{
        f"bridge_{name}_enabled": "false", f"bridge_{name}_port": str(defaults(name)[f"bridge_{name}_port"]),
        f"bridge_{name}_container_uid": "1337", f"bridge_{name}_image_pull": "no",
        f"bridge_{name}_self_build": "false", f"bridge_{name}_server_name": "example.test"})
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    # Both specs ran: the bridge role's and the engine's, on the dict the role handed over.
    validations = re.findall(r"^TASK \[(.*Validating arguments against arg spec 'main'.*)\]", output, flags=re.M)
    assert any(task.startswith(f"switchboard.matrix.bridge_{name} :") for task in validations), validations
    assert any(task.startswith("switchboard.matrix.bridge :") for task in validations), validations


def test_the_engines_spec_checks_what_the_role_hands_over(tmp_path):
    run = include(tmp_path, "whatsapp", bridge_whatsapp_enabled=False, bridge_whatsapp_format="mautrix_unknown")
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "mautrix_unknown" in output and "bridge_inputs" in output, output[-3000:]
