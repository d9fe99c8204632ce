"""A new bridge is one role and one entry in switchboard_bridges, and nothing else.

The collection is copied, a throw-away bridge role `bridge_example` is made from the WhatsApp
role with the name replaced, and "example" is added to the list in playbooks/vars/wiring.yml.
site.yml then runs for real on this machine in check mode with `--tags example` (nothing is
written): the first play checks the new bridge's settings, and the second writes its
registration, lists it in Synapse's configuration through the wiring, writes its config and
runs its container, each only as a prediction.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]


def copy_collection(tmp_path):
    collection = tmp_path / "ansible_collections" / "switchboard" / "matrix"
    for name in ("roles", "playbooks", "plugins", "meta"):
        shutil.copytree(REPO / name, collection / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "galaxy.yml", collection)
    return collection


def add_bridge(collection):
    """The two steps docs/BRIDGES.md gives: a role, and one entry in the list."""
    source, role = collection / "roles" / "bridge_whatsapp", collection / "roles" / "bridge_example"
    for path in source.rglob("*"):
        if path.is_file():
            target = role / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text().replace("whatsapp", "example").replace("WhatsApp", "Example"))
    wiring = collection / "playbooks" / "vars" / "wiring.yml"
    text = wiring.read_text()
    assert text.count("switchboard_bridges: [telegram, whatsapp, discord, wechat]") == 1
    wiring.write_text(text.replace("switchboard_bridges: [telegram, whatsapp, discord, wechat]",
                                   "switchboard_bridges: [telegram, whatsapp, discord, wechat, example]"))


def run_site(tmp_path, collection, *args):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"matrix_servers": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "synapse_server_name": "matrix.test", "bridge_example_enabled": True,
        "bridge_example_image": "localhost/switchboard/example-test:1", "bridge_example_image_pull": True,
        # Docker's default network: the stack's own is not made in check mode.
        "bridge_example_container_network": "bridge",
        # This test's own state paths: check mode writes nothing, and reads nothing of a real deploy.
        "switchboard_state_path": str(tmp_path / "state" / "record.json"),
        "bridge_example_base_path": str(tmp_path / "bridges" / "example"),
    }}}}))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=str(tmp_path),
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_CONFIG=str(tmp_path / "none.cfg"))
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
                           str(collection / "playbooks" / "site.yml"), *args],
                          capture_output=True, text=True, env=env, check=False, cwd=tmp_path)


def test_a_new_bridge_is_one_role_and_one_entry(tmp_path):
    collection = copy_collection(tmp_path)
    add_bridge(collection)
    run = run_site(tmp_path, collection, "--check", "--tags", "example", "-e", "switchboard_fast_noop=false")
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    tasks = re.findall(r"^TASK \[(.*)\]", output, flags=re.M)
    # Its directories, registration and config are in the bridges' one module run
    # (roles/bridge/tasks/write.yml), with no other bridge's.
    for expected in ("Check the example bridge's settings", "Write the files of the bridges example",
                     "Run the container of example"):
        assert any(expected in task for task in tasks), (expected, tasks)
    # The first play checked it too, and no other bridge ran.
    assert re.search(r"Check the settings of each bridge role.*\n(.*\n)*?.*item=example", output), output[-4000:]
    assert not [task for task in tasks if re.search("telegram|whatsapp|discord|wechat", task, re.I)
                and "Validating arguments" not in task]
    # Check mode wrote nothing.
    assert not (tmp_path / "bridges").exists() and not (tmp_path / "state").exists()


def test_without_its_entry_the_role_is_not_deployed(tmp_path):
    collection = copy_collection(tmp_path)
    add_bridge(collection)
    wiring = collection / "playbooks" / "vars" / "wiring.yml"
    wiring.write_text(wiring.read_text().replace(", example]", "]"))
    run = run_site(tmp_path, collection, "--check", "--tags", "example", "-e", "switchboard_fast_noop=false")
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "of example" not in output
