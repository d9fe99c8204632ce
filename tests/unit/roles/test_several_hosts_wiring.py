"""One deployment over several hosts (docs/SCALING.md): the wiring (playbooks/vars/wiring.yml)
resolved on each host of a local inventory, as site.yml resolves it. Each part runs on the host
of its group, reaches the others at their private addresses, and publishes there only what
another host uses; without part groups, every host is a deployment of its own, as before.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]

PLAY = """
- hosts: matrix_servers
  connection: local
  gather_facts: false
  vars_files: [{wiring}]
  tasks:
    - tags: [always]
      ansible.builtin.copy:
        dest: "{out}/{{{{ inventory_hostname }}}}.json"
        mode: "0600"
        content: >-
          {{{{ {{'parts': switchboard_host_parts, 'registered': switchboard_registered_bridges,
               'deployment': switchboard_deployment_hosts,
               'synapse_database_host': synapse_database_host_auto,
               'synapse_ports': synapse_container_auto_published_ports,
               'postgres_ports': postgres_container_auto_published_ports,
               'proxy_upstream': proxy_synapse_upstream_auto,
               'bridge_homeserver_url': bridge_homeserver_url_auto,
               'bridge_database_host': bridge_database_host_auto,
               'bridge_private_address': bridge_private_address_auto,
               'bridge_tokens_here': bridge_secrets_generated_here_auto,
               'check_host': switchboard_check_host,
               'check_synapse_url': switchboard_check_args.synapse_url}} | to_json }}}}
"""

VARIABLES = {"synapse_server_name": "example.test", "postgres_enabled": True, "proxy_enabled": True,
             "bridge_telegram_enabled": True, "bridge_whatsapp_enabled": True}


def resolve(tmp_path, inventory, *args, play=PLAY):
    """Each host's resolved wiring, by host name."""
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(play.format(wiring=REPO / "playbooks" / "vars" / "wiring.yml", out=out))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
               ANSIBLE_LOCALHOST_WARNING="false")
    variables = {"ansible_python_interpreter": sys.executable} | VARIABLES
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
         str(tmp_path / "play.yml"), "-e", json.dumps(variables), *args],
        capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}


def three_hosts(**groups):
    """db (PostgreSQL), hs (Synapse and whatever else `groups` does not place), br (bridges)."""
    children = {"matrix_postgres": {"hosts": {"db": None}}, "matrix_synapse": {"hosts": {"hs": None}},
                "matrix_bridges": {"hosts": {"br": None}}} | groups
    hosts = {"db": {"switchboard_private_address": "10.0.0.1"}, "hs": {"switchboard_private_address": "10.0.0.2"},
             "br": {"switchboard_private_address": "10.0.0.3"}}
    return {"all": {"children": {"matrix_servers": {"hosts": hosts, "children": children}}}}


def test_each_part_on_its_host_reaching_the_others_at_their_private_addresses(tmp_path):
    wired = resolve(tmp_path, three_hosts())
    bridges = ["telegram", "whatsapp", "discord", "wechat"]
    assert wired["db"]["parts"] == ["docker", "network", "postgres"]
    assert wired["hs"]["parts"] == ["docker", "network", "redis", "synapse", "proxy", "bot"]
    assert wired["br"]["parts"] == ["docker", "network", *bridges]
    for host in wired.values():
        assert sorted(host["deployment"]) == ["br", "db", "hs"]
        # Synapse's host lists every registration; the others write none.
        assert host["registered"] == (bridges if host is wired["hs"] else [])
        assert host["synapse_database_host"] == "10.0.0.1"
        assert host["bridge_database_host"] == "10.0.0.1"
        assert host["bridge_homeserver_url"] == "http://10.0.0.2:8008"
        assert host["bridge_private_address"] == "10.0.0.3"
        # Published on the private address only, and only what another host uses.
        assert host["postgres_ports"] == ["10.0.0.1:5432:5432"]
        assert host["synapse_ports"] == ["10.0.0.2:8008:8008"]
        # The proxy shares Synapse's host: it reaches it on the Docker network.
        assert host["proxy_upstream"] == "synapse:8008"
        assert host["check_host"] == "hs"
    # Only Synapse's host generates the appservice tokens.
    assert [name for name, host in wired.items() if host["bridge_tokens_here"]] == ["hs"]
    assert wired["hs"]["check_synapse_url"] == "http://127.0.0.1:8008"


def test_a_proxy_on_its_own_host_reaches_synapse_at_its_address(tmp_path):
    wired = resolve(tmp_path, three_hosts(matrix_proxy={"hosts": {"db": None}}))
    assert wired["db"]["parts"] == ["docker", "network", "postgres", "proxy"]
    assert "proxy" not in wired["hs"]["parts"]
    assert wired["db"]["proxy_upstream"] == "10.0.0.2:8008"
    # The check runs where the proxy is, and reaches Synapse across.
    assert wired["db"]["check_host"] == "db"
    assert wired["db"]["check_synapse_url"] == "http://10.0.0.2:8008"


def test_parts_without_a_group_run_on_synapses_host(tmp_path):
    # Only PostgreSQL apart: Synapse, the proxy and the bridges share hs.
    inventory = three_hosts()
    del inventory["all"]["children"]["matrix_servers"]["children"]["matrix_bridges"]
    del inventory["all"]["children"]["matrix_servers"]["hosts"]["br"]
    wired = resolve(tmp_path, inventory)
    assert set(wired) == {"db", "hs"}
    assert "telegram" in wired["hs"]["parts"]
    assert wired["hs"]["bridge_homeserver_url"] == "http://synapse:8008"
    assert wired["hs"]["bridge_private_address"] == ""
    assert wired["hs"]["bridge_database_host"] == "10.0.0.1"
    # Nobody outside Synapse's host needs its client API: only the loopback default stays.
    assert wired["hs"]["synapse_ports"] == []
    assert wired["db"]["postgres_ports"] == ["10.0.0.1:5432:5432"]


def test_without_part_groups_every_host_is_a_deployment_of_its_own(tmp_path):
    hosts = {"one": {"switchboard_private_address": "10.0.0.1"}, "two": {}}
    wired = resolve(tmp_path, {"all": {"children": {"matrix_servers": {"hosts": hosts}}}})
    for name, host in wired.items():
        assert host["deployment"] == [name]
        assert "postgres" in host["parts"] and "synapse" in host["parts"] and "telegram" in host["parts"]
        assert host["synapse_database_host"] == "postgres"
        assert host["bridge_homeserver_url"] == "http://synapse:8008"
        assert host["postgres_ports"] == [] and host["synapse_ports"] == []
        assert host["bridge_tokens_here"] is True


@pytest.mark.parametrize("tags, registered, deployed_on_br", [
    ("telegram", ["telegram"], ["telegram"]),   # Synapse's host still lists the bridge it deploys
    ("synapse", ["telegram", "whatsapp", "discord", "wechat"], []),
])
def test_tags_select_the_parts_on_every_host(tmp_path, tags, registered, deployed_on_br):
    play = PLAY.replace("'parts': switchboard_host_parts", "'parts': switchboard_run_parts")
    wired = resolve(tmp_path, three_hosts(), "--tags", tags, play=play)
    assert wired["hs"]["registered"] == registered
    assert wired["br"]["parts"] == deployed_on_br
