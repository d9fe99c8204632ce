"""The worker presets through the wiring (playbooks/vars/wiring.yml) into the synapse role's
homeserver.yaml keys and worker files, Redis's switch, and the proxy's Caddyfile; and the
first play's refusal of a bad preset or list. Rendered by a local play, as site.yml would."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [{wiring}]
  tasks:
    - ansible.builtin.include_role: {{name: switchboard.matrix.synapse, tasks_from: validate, public: true}}
    - ansible.builtin.include_role: {{name: switchboard.matrix.proxy, tasks_from: validate, public: true}}
    - ansible.builtin.copy:
        dest: "{out}"
        mode: "0600"
        content: >-
          {{{{ {{'config': synapse_configuration, 'removed': synapse_removed_configuration,
                'secret_keys': synapse_secret_configuration.keys() | list, 'files': synapse_worker_files,
                'redis': redis_enabled_auto | bool, 'parts': switchboard_parts,
                'caddyfile': lookup('ansible.builtin.template', '{caddyfile}')}} | to_json }}}}
"""
BASE = {"synapse_server_name": "example.test", "postgres_enabled": True, "synapse_database_password": "pw",
        "proxy_enabled": True, "proxy_matrix_domain": "matrix.example.test", "proxy_tls_mode": "internal",
        "switchboard_kept": {}}
WORKER_KEYS = {"instance_map", "redis", "worker_replication_secret", "stream_writers", "federation_sender_instances",
               "pusher_instances", "notify_appservices_from_worker", "update_user_directory_from_worker",
               "run_background_tasks_on", "enable_media_repo", "media_instance_running_background_jobs"}


def run(tmp_path, variables):
    out = tmp_path / "out.json"
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(wiring=REPO / "playbooks" / "vars" / "wiring.yml", out=out,
                                caddyfile=REPO / "roles" / "proxy" / "templates" / "Caddyfile.j2"))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    result = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(play), "-e",
                             json.dumps({"ansible_python_interpreter": sys.executable} | BASE | variables)],
                            capture_output=True, text=True, env=env, check=False)
    return result, (json.loads(out.read_text()) if out.exists() else None)


def rendered(tmp_path, **variables):
    result, out = run(tmp_path, variables)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_without_workers_nothing_changes_and_the_worker_keys_go(tmp_path):
    out = rendered(tmp_path)
    assert not WORKER_KEYS & set(out["config"])
    assert WORKER_KEYS <= set(out["removed"])
    assert [listener["port"] for listener in out["config"]["listeners"]] == [8008]
    assert out["files"] == [] and out["redis"] is False
    assert out["secret_keys"] == ["database"]
    assert "synapse_worker" not in out["caddyfile"] and "synapse-" not in out["caddyfile"]
    assert out["parts"].index("postgres") < out["parts"].index("redis") < out["parts"].index("synapse")


def test_small_sets_the_shared_keys_writes_four_files_and_routes_to_two_upstreams(tmp_path):
    out = rendered(tmp_path, synapse_workers_preset="small")
    config = out["config"]
    assert config["instance_map"] == {"main": {"host": "synapse", "port": 9093}}
    assert config["redis"] == {"enabled": True, "host": "redis", "port": 6379}
    assert config["enable_media_repo"] is False
    assert sorted(out["secret_keys"]) == ["database", "redis", "worker_replication_secret"]
    # Set keys are never also removed; the unused ones are.
    assert not set(out["removed"]) & (set(config) | {"redis", "worker_replication_secret"})
    assert {"stream_writers", "run_background_tasks_on"} <= set(out["removed"])
    assert [Path(item["path"]).name for item in out["files"]] == [
        "generic-1.yaml", "federation-sender-1.yaml", "media-1.yaml", "appservice-pusher-1.yaml"]
    assert {(item["owner"], item["mode"]) for item in out["files"]} == {("root", "0640")}
    assert out["redis"] is True
    caddyfile = out["caddyfile"]
    assert "reverse_proxy synapse-media-1:8008" in caddyfile
    assert "reverse_proxy synapse-generic-1:8008 {" in caddyfile
    assert "/_matrix/client/(r0|v3)/sync$" in caddyfile and "/_matrix/federation/v1/send/" in caddyfile
    # The admin API's rules come first; the main process takes the rest last.
    admin, workers, rest = (caddyfile.index("handle @synapse_admin"), caddyfile.index("import synapse_workers"),
                            caddyfile.index("handle @synapse {"))
    assert admin < workers < rest


def test_large_routes_to_three_readers_and_writes_events_on_a_persister(tmp_path):
    out = rendered(tmp_path, synapse_workers_preset="large")
    assert out["config"]["stream_writers"] == {"events": ["event-persister-1"]}
    assert "synapse-generic-1:8008 synapse-generic-2:8008 synapse-generic-3:8008" in out["caddyfile"]


def test_an_explicit_list_wins_over_the_preset(tmp_path):
    out = rendered(tmp_path, synapse_workers_preset="large",
                   synapse_workers=[{"name": "reader-1", "serves": ["client"]},
                                    {"name": "sender-1", "handles": ["federation_sender"]}])
    assert out["config"]["federation_sender_instances"] == ["sender-1"]
    assert "enable_media_repo" in out["removed"]
    assert "reverse_proxy synapse-reader-1:8008" in out["caddyfile"]
    assert "synapse_worker_federation" not in out["caddyfile"] and "synapse_worker_media" not in out["caddyfile"]


@pytest.mark.parametrize("variables, words", [
    ({"synapse_workers_preset": "huge"}, ["synapse_workers_preset", "huge"]),
    ({"synapse_workers": [{"name": "main", "serves": ["client"]}]}, ["synapse_workers[0].name is 'main'"]),
    ({"synapse_workers_preset": "small", "postgres_enabled": False}, ["synapse_workers_preset", "PostgreSQL"]),
])
def test_a_bad_setting_is_refused_by_its_name(tmp_path, variables, words):
    result, _out = run(tmp_path, variables)
    assert result.returncode != 0
    for word in words:
        assert word in result.stdout, result.stdout[-3000:]
