"""An inventory that spreads one deployment over several hosts the wrong way is refused by
site.yml's first play, naming what to fix, before any host is touched. The hosts are local
connections and every case must fail in the first play: the run is in check mode, and the first
failure ends it for every host (ANSIBLE_ANY_ERRORS_FATAL), so no later play ever starts here.
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
VARIABLES = {"synapse_server_name": "switchboard.test", "postgres_enabled": True, "proxy_enabled": True,
             "proxy_matrix_domain": "switchboard.test", "proxy_acme_email": "admin@switchboard.test",
             "switchboard_fast_noop": False, "bridge_whatsapp_enabled": True}


def inventory(groups, addresses, extra_hosts=()):
    hosts = {name: ({"switchboard_private_address": addresses[name]} if name in addresses else {})
             for name in ["db", "hs", "br", *extra_hosts]}
    children = {group: {"hosts": {name: None for name in names}} for group, names in groups.items()}
    return {"all": {"children": {"matrix_servers": {"hosts": hosts, "children": children}}}}


ADDRESSES = {"db": "10.0.0.1", "hs": "10.0.0.2", "br": "10.0.0.3"}
GROUPS = {"matrix_postgres": ["db"], "matrix_synapse": ["hs"], "matrix_bridges": ["br"]}


def first_play(tmp_path, inventory_data, *args, variables=None):
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory_data))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_ANY_ERRORS_FATAL="true", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"), ANSIBLE_ROLES_PATH=str(REPO / "roles"))
    variables = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "ansible_become": False} | VARIABLES | (variables or {})
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
         str(REPO / "playbooks" / "site.yml"), "--check", "-e", json.dumps(variables), *args],
        capture_output=True, text=True, env=env, check=False, timeout=300)


@pytest.mark.parametrize("groups, addresses, extra_hosts, variables, args, message", [
    # Two hosts in one part's group.
    (GROUPS | {"matrix_bridges": ["br", "db"]}, ADDRESSES, (), {}, (), "at most one in each of"),
    # Part groups but no Synapse host.
    ({"matrix_postgres": ["db"], "matrix_bridges": ["br"]}, ADDRESSES, ("hs",), {}, (), "exactly one host in matrix_synapse"),
    # A host of matrix_servers in no group.
    (GROUPS, ADDRESSES, ("stray",), {}, (), "stray is in none"),
    # A run that leaves the bridges' host out.
    (GROUPS, ADDRESSES, (), {}, ("--limit", "db,hs"), "no --limit leaving one out"),
    # matrix_postgres without PostgreSQL.
    (GROUPS, ADDRESSES, (), {"postgres_enabled": False}, (), "matrix_postgres only with"),
    # The bridges' host without an address, and one that is a loopback address.
    (GROUPS, {"db": "10.0.0.1", "hs": "10.0.0.2"}, (), {}, (), "switchboard_private_address of br is \"\""),
    (GROUPS, ADDRESSES | {"hs": "127.0.0.1"}, (), {}, (), "switchboard_private_address of hs is \"127.0.0.1\""),
    (GROUPS, ADDRESSES | {"db": "fd00::1"}, (), {}, (), "needs the IPv4 address of db"),
    # Workers with the proxy away from Synapse.
    (GROUPS | {"matrix_proxy": ["db"]}, ADDRESSES, (), {"synapse_workers_preset": "small"}, (),
     "the proxy that routes to them must run"),
], ids=["two-in-a-group", "no-synapse-host", "host-in-no-group", "limit", "postgres-group-without-postgres",
        "no-address", "loopback-address", "ipv6-address", "workers-proxy-elsewhere"])
def test_refused_in_the_first_play(tmp_path, groups, addresses, extra_hosts, variables, args, message):
    # pylint: disable=too-many-arguments,too-many-positional-arguments
    result = first_play(tmp_path, inventory(groups, addresses, extra_hosts), *args, variables=variables)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output[-3000:]
    assert message in output, output[-3000:]
    # The first play only: no task of the second one ran on any host.
    assert "PLAY [Matrix homeserver]" not in output, output[-3000:]
