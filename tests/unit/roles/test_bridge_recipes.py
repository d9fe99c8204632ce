"""What each bridge and flavor would build and write, from the roles' own variables.

The engine's defaults and vars and each bridge role's defaults are loaded into a local
play (no Docker, no host) and templated exactly as a deploy does; the test reads the
resolved self-build recipe, its build arguments, the generated secrets' config keys and
the rendered config.
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
ROLES = REPO / "roles"

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_vars: {roles}/bridge_{name}/defaults/main.yml
    - ansible.builtin.include_vars: {roles}/bridge_{name}/vars/main.yml
    - ansible.builtin.include_vars: {engine}/defaults/main.yml
    - ansible.builtin.include_vars: {engine}/vars/main.yml
    - ansible.builtin.set_fact:
        bridge_secrets: "{{{{ dict(bridge_secret_names | zip(bridge_secret_names | map('regex_replace', '^', 'value-of-'))) }}}}"
    - ansible.builtin.copy:
        dest: "{out}"
        mode: "0600"
        content: "{{{{ {{'recipe': bridge_self_build_recipe, 'args': bridge_self_build_build_args,
                       'image': bridge_self_build_image, 'secret_names': bridge_secret_names,
                       'config': bridge_config, 'secrets': bridge_config_secrets,
                       'format': bridge_format}} | to_json }}}}"
"""


def resolve(tmp_path, name, **extra):
    tmp_path.mkdir(exist_ok=True)
    out = tmp_path / "resolved.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(engine=ROLES / "bridge", roles=ROLES, name=name, out=out))
    # The template lookup looks next to the playbook, as it looks in the role in a deploy.
    (tmp_path / "templates").symlink_to(ROLES / "bridge" / "templates")
    # Extra vars: they outrank include_vars, as the including role's vars do in a deploy.
    variables = {"bridge_name": name, "role_path": str(ROLES / "bridge"),
                 f"bridge_{name}_server_name": "example.test", f"bridge_{name}_api_id": 12345} | extra
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    # The ansible-playbook of the Python running the tests (the project's venv).
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-e", json.dumps(variables)],
                         capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("name, module, package, binary", [
    ("telegram", "go.mau.fi/mautrix-telegram", "./cmd/mautrix-telegram", "mautrix-telegram"),
    ("whatsapp", "go.mau.fi/mautrix-whatsapp", "./cmd/mautrix-whatsapp", "mautrix-whatsapp"),
    ("discord", "go.mau.fi/mautrix-discord", ".", "mautrix-discord"),
    ("wechat", "github.com/duo/matrix-wechat", ".", "matrix-wechat"),
])
def test_go_bridges_build_from_their_module_with_the_engine_recipe(tmp_path, name, module, package, binary):
    resolved = resolve(tmp_path, name, **{f"bridge_{name}_self_build": True})
    assert resolved["recipe"] == str(ROLES / "bridge" / "files" / "Dockerfile.go")
    args = resolved["args"]
    assert (args["GO_MODULE"], args["GO_PACKAGE"], args["BINARY_NAME"]) == (module, package, binary)
    # A Go module version: vX.Y.Z or a pseudo-version, never a bare tag like 0.2.4.
    assert args["GO_MODULE_VERSION"].startswith("v"), args
    assert args["GO_TOOLCHAIN"].startswith("go1.")


def test_the_legacy_telegram_flavor_builds_from_pypi(tmp_path):
    resolved = resolve(tmp_path, "telegram", bridge_telegram_flavor="legacy", bridge_telegram_self_build=True)
    assert resolved["recipe"].endswith("bridge_telegram/files/Dockerfile.legacy")
    assert resolved["args"]["MAUTRIX_TELEGRAM_VERSION"] == "0.15.3"
    assert "GO_MODULE" not in resolved["args"]


def test_a_new_release_is_a_new_image_tag(tmp_path):
    before = resolve(tmp_path / "before", "whatsapp")["image"]
    after = resolve(tmp_path / "after", "whatsapp", bridge_whatsapp_version="v0.2608.0")["image"]
    assert before != after and before.startswith("localhost/switchboard/whatsapp:")


@pytest.mark.parametrize("name, database_path", [
    ("telegram", ["database", "uri"]),
    ("whatsapp", ["database", "uri"]),
    ("discord", ["appservice", "database", "uri"]),
    ("wechat", ["appservice", "database", "uri"]),
])
def test_database_sits_where_each_framework_reads_it(tmp_path, name, database_path):
    resolved = resolve(tmp_path, name, **{f"bridge_{name}_database_engine": "postgres",
                                          f"bridge_{name}_database_password": "pw"})
    node = resolved["secrets"]
    for key in database_path:
        node = node[key]
    assert node == f"postgres://{name}:pw@postgres/{name}?sslmode=disable"
    where = resolved["config"] if database_path[0] == "database" else resolved["config"]["appservice"]
    assert where["database"]["type"] == "postgres"
    if database_path[0] == "appservice":
        # The older framework exits when the database is only at the top level.
        assert "database" not in resolved["config"]


@pytest.mark.parametrize("name, keys", [
    ("whatsapp", [["provisioning", "shared_secret"], ["encryption", "pickle_key"], ["public_media", "signing_key"]]),
    ("telegram", [["provisioning", "shared_secret"], ["encryption", "pickle_key"]]),
    ("discord", [["bridge", "provisioning", "shared_secret"], ["bridge", "avatar_proxy_key"]]),
    ("wechat", [["bridge", "listen_secret"]]),
])
def test_values_upstream_generates_come_from_kept_secrets(tmp_path, name, keys):
    resolved = resolve(tmp_path, name)
    for path in keys:
        node = resolved["secrets"]
        for key in path:
            node = node[key]
        assert node.startswith(f"value-of-bridge-{name}-"), (path, node)
        assert node.removeprefix("value-of-") in resolved["secret_names"]


def test_legacy_config_keeps_no_example_entries(tmp_path):
    resolved = resolve(tmp_path, "telegram", bridge_telegram_flavor="legacy")
    bridge = resolved["config"]["bridge"]
    assert bridge["login_shared_secret_map"] == {} and bridge["double_puppet_server_map"] == {}
    assert "example.com" not in json.dumps(resolved["config"])
    assert resolved["secrets"]["appservice"]["provisioning"]["shared_secret"].startswith("value-of-")


# Tags upstream published, read from the upstream repositories on 2026-11-28 (docs/BRIDGES.md).
PUBLISHED = {
    "telegram": {"v0.2604.0", "v0.2605.0", "v0.2606.0", "v0.2607.0", "v0.2608.0", "v0.15.3"},
    "whatsapp": {"v0.2604.0", "v0.2605.0", "v0.2606.0", "v0.2607.0", "v0.2608.0"},
    "discord": {"v0.7.5", "v0.7.6", "v0.7.7"},
    "wechat": {"0.2.4"},
}


@pytest.mark.parametrize("name, flavor", [("telegram", "bridgev2"), ("telegram", "legacy"),
                                          ("whatsapp", None), ("discord", None), ("wechat", None)])
def test_default_releases_are_published_upstream(name, flavor):
    defaults = yaml.safe_load((ROLES / f"bridge_{name}" / "defaults" / "main.yml").read_text())
    version = defaults[f"bridge_{name}_version_{flavor}" if flavor else f"bridge_{name}_version"]
    assert version in PUBLISHED[name]
    image = defaults[f"bridge_{name}_image"]
    assert image.endswith(f":{{{{ bridge_{name}_version }}}}"), image


@pytest.mark.parametrize("name, flavor", [("telegram", "legacy"), ("whatsapp", None), ("discord", None)])
def test_a_display_name_with_emoji_renders(tmp_path, name, flavor):
    extra = {f"bridge_{name}_bot_displayname": "Bridge bot \U0001F916 – café"}
    if flavor:
        extra[f"bridge_{name}_flavor"] = flavor
    config = resolve(tmp_path, name, **extra)["config"]
    assert "Bridge bot \U0001F916 – café" in json.dumps(config["appservice"], ensure_ascii=False)
