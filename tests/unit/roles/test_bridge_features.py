"""Encryption, double puppeting, relay, backfill, admins, metrics and provisioning: what each
bridge and flavor writes for them, rendered from the roles' own variables as a deploy does
(test_bridge_recipes.resolve), and what the first play refuses.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_bridge_recipes import PLAY as RECIPES_PLAY

REPO = Path(__file__).resolve().parents[3]
ROLES = REPO / "roles"
TOKEN = "value-of-appservice-double-puppet-as-token"
FLAVORS = [("whatsapp", {}), ("telegram", {}), ("telegram", {"bridge_telegram_flavor": "legacy"}),
           ("discord", {}), ("wechat", {})]
IDS = ["whatsapp", "telegram-bridgev2", "telegram-legacy", "discord", "wechat"]


# test_bridge_recipes' play, with the registration too.
PLAY = RECIPES_PLAY.replace("'format': bridge_format}}", "'format': bridge_format, 'registration': bridge_registration}}")
assert PLAY != RECIPES_PLAY


def resolve(tmp_path, name, **extra):
    """What the engine would write for this bridge (test_bridge_recipes.resolve, with the registration)."""
    tmp_path.mkdir(exist_ok=True)
    out = tmp_path / "resolved.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(engine=ROLES / "bridge", roles=ROLES, name=name, out=out))
    (tmp_path / "templates").symlink_to(ROLES / "bridge" / "templates")
    variables = {"bridge_name": name, "role_path": str(ROLES / "bridge"),
                 f"bridge_{name}_server_name": "example.test", f"bridge_{name}_api_id": 12345} | extra
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-e", json.dumps(variables)],
                         capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(out.read_text())


def encryption_section(resolved):
    config = resolved["config"]
    return config["encryption"] if resolved["format"] == "mautrix_bridgev2" else config["bridge"]["encryption"]


@pytest.mark.parametrize("name, extra", FLAVORS[:4], ids=IDS[:4])
def test_encryption_is_on_by_default(tmp_path, name, extra):
    resolved = resolve(tmp_path, name, **extra)
    section = encryption_section(resolved)
    assert section["allow"] is True and section["default"] is True
    assert section["require"] is False and section["appservice"] is False
    # MSC4190; the registration says so to Synapse.
    assert section["msc4190"] is True
    assert resolved["registration"]["extra"]["io.element.msc4190"] is True
    assert resolved["registration"]["extra"]["receive_ephemeral"] is True
    # The bot is not the appservice's sender: Synapse serves a sender no /sync, and the bot syncs.
    assert resolved["registration"]["sender_localpart"] == f"_switchboard_{name}_appservice"
    # The bot is in its exclusive namespace instead.
    assert resolved["registration"]["namespaces"]["users"][0] == {"regex": f"@{name}bot:example\\.test", "exclusive": True}


def test_wechat_bot_is_the_sender_and_does_not_encrypt(tmp_path):
    resolved = resolve(tmp_path, "wechat")
    assert resolved["registration"]["sender_localpart"] == "wechatbot"
    section = encryption_section(resolved)
    assert section["allow"] is False and section["default"] is False and section["msc4190"] is False
    assert "io.element.msc4190" not in resolved["registration"]["extra"]


@pytest.mark.parametrize("name, extra", FLAVORS, ids=IDS)
def test_encryption_off(tmp_path, name, extra):
    resolved = resolve(tmp_path, name, **{f"bridge_{name}_encryption": "false"}, **extra)
    section = encryption_section(resolved)
    assert section["allow"] is False and section["default"] is False and section["msc4190"] is False
    assert "io.element.msc4190" not in resolved["registration"]["extra"]


def test_the_bridgev2_pickle_key_is_the_kept_secret(tmp_path):
    resolved = resolve(tmp_path, "whatsapp")
    assert resolved["secrets"]["encryption"]["pickle_key"] == "value-of-bridge-whatsapp-pickle-key"
    assert "pickle_key" not in resolved["config"]["encryption"]


@pytest.mark.parametrize("name, extra", FLAVORS, ids=IDS)
def test_double_puppeting_uses_the_shared_appservice_token(tmp_path, name, extra):
    resolved = resolve(tmp_path, name, **extra)
    assert "appservice-double-puppet-as-token" in resolved["secret_names"]
    secrets = resolved["secrets"]
    where = secrets["double_puppet"]["secrets"] if resolved["format"] == "mautrix_bridgev2" \
        else secrets["bridge"]["login_shared_secret_map"]
    assert where == {"example.test": f"as_token:{TOKEN}"}
    # Never in the part Ansible may print.
    assert TOKEN not in json.dumps(resolved["config"])


@pytest.mark.parametrize("name, extra", FLAVORS, ids=IDS)
def test_double_puppeting_off(tmp_path, name, extra):
    resolved = resolve(tmp_path, name, **{f"bridge_{name}_double_puppet_enabled": False}, **extra)
    assert "appservice-double-puppet-as-token" not in resolved["secret_names"]
    assert TOKEN not in json.dumps(resolved["secrets"])


def test_the_engine_and_the_role_name_the_token_alike():
    engine = yaml.safe_load((ROLES / "bridge" / "defaults" / "main.yml").read_text())
    role = yaml.safe_load((ROLES / "appservice_double_puppet" / "vars" / "main.yml").read_text())
    assert engine["bridge_double_puppet_secret_name"] == role["appservice_double_puppet_secret_names"][0]
    role_defaults = yaml.safe_load((ROLES / "appservice_double_puppet" / "defaults" / "main.yml").read_text())
    assert engine["bridge_secrets_path"] == role_defaults["appservice_double_puppet_secrets_path"]


@pytest.mark.parametrize("name, extra, levels", [
    ("whatsapp", {}, {"example.test": "user"}),
    ("telegram", {"bridge_telegram_flavor": "legacy"}, {"example.test": "full"}),
    ("discord", {}, {"example.test": "user"}),
    ("wechat", {}, {"example.test": "user"}),
])
def test_admins_are_added_to_the_permissions(tmp_path, name, extra, levels):
    admins = ["@alice:example.test", "@bob:other.test"]
    config = resolve(tmp_path, name, **{f"bridge_{name}_admins": admins}, **extra)["config"]
    assert config["bridge"]["permissions"] == levels | {admin: "admin" for admin in admins}


def test_an_admin_outranks_the_permissions_entry(tmp_path):
    config = resolve(tmp_path, "whatsapp", bridge_whatsapp_permissions={"@alice:example.test": "user"},
                     bridge_whatsapp_admins=["@alice:example.test"])["config"]
    assert config["bridge"]["permissions"] == {"@alice:example.test": "admin"}


@pytest.mark.parametrize("name, extra, relay, backfill", [
    ("whatsapp", {}, False, True),
    ("telegram", {}, False, False),
])
def test_bridgev2_relay_and_backfill_defaults(tmp_path, name, extra, relay, backfill):
    config = resolve(tmp_path, name, **extra)["config"]
    assert config["bridge"]["relay"]["enabled"] is relay
    assert config["backfill"]["enabled"] is backfill
    flipped = resolve(tmp_path / "flipped", name, **{f"bridge_{name}_relay_enabled": not relay,
                                                     f"bridge_{name}_backfill_enabled": not backfill})["config"]
    assert flipped["bridge"]["relay"]["enabled"] is (not relay)
    assert flipped["backfill"]["enabled"] is (not backfill)


def test_legacy_backfill_and_metrics(tmp_path):
    config = resolve(tmp_path, "telegram", bridge_telegram_flavor="legacy")["config"]
    assert config["bridge"]["backfill"]["enable"] is True  # upstream's default
    assert config["metrics"] == {"enabled": False, "listen_port": 8000}
    config = resolve(tmp_path / "on", "telegram", bridge_telegram_flavor="legacy", bridge_telegram_metrics_enabled=True,
                     bridge_telegram_metrics_port="9100", bridge_telegram_backfill_enabled=False)["config"]
    assert config["metrics"] == {"enabled": True, "listen_port": 9100}
    assert config["bridge"]["backfill"]["enable"] is False


def test_discord_backfill_limits(tmp_path):
    config = resolve(tmp_path, "discord")["config"]
    assert config["bridge"]["backfill"]["forward_limits"]["initial"] == {"dm": 0, "channel": 0, "thread": 0}
    config = resolve(tmp_path / "on", "discord", bridge_discord_backfill_enabled=True)["config"]
    limits = config["bridge"]["backfill"]["forward_limits"]
    assert limits["initial"] == limits["missed"] == {"dm": 50, "channel": 50, "thread": 50}


def test_wechat_gets_no_backfill_section(tmp_path):
    assert "backfill" not in resolve(tmp_path, "wechat")["config"]["bridge"]


@pytest.mark.parametrize("name, extra, path", [
    ("whatsapp", {}, ["provisioning", "shared_secret"]),
    ("discord", {}, ["bridge", "provisioning", "shared_secret"]),
])
def test_provisioning_off_writes_disable_and_no_secret(tmp_path, name, extra, path):
    resolved = resolve(tmp_path, name, **{f"bridge_{name}_provisioning_enabled": False}, **extra)
    node = resolved["config"]
    for key in path:
        node = node[key]
    assert node == "disable"
    assert f"bridge-{name}-provisioning-secret" not in resolved["secret_names"]
    assert "provisioning" not in json.dumps(resolved["secrets"])


def test_legacy_provisioning_off(tmp_path):
    resolved = resolve(tmp_path, "telegram", bridge_telegram_flavor="legacy", bridge_telegram_provisioning_enabled=False)
    assert resolved["config"]["appservice"]["provisioning"]["enabled"] is False
    assert "bridge-telegram-provisioning-secret" not in resolved["secret_names"]


def test_wechat_has_no_provisioning_secret(tmp_path):
    assert "bridge-wechat-provisioning-secret" not in resolve(tmp_path, "wechat")["secret_names"]


VALIDATE = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: switchboard.matrix.bridge_{name}
        tasks_from: validate
"""


def validate(tmp_path, name, **variables):
    playbook = tmp_path / "play.yml"
    playbook.write_text(VALIDATE.format(name=name))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    base = {f"bridge_{name}_enabled": True, f"bridge_{name}_server_name": "example.test",
            "bridge_telegram_api_id": "12345", "bridge_telegram_api_hash": "0" * 32}
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(playbook),
                          "-e", json.dumps(base | variables)], capture_output=True, text=True, env=env, check=False)
    return run.returncode, run.stdout + run.stderr


@pytest.mark.parametrize("name, variables, message", [
    ("whatsapp", {"bridge_whatsapp_metrics_enabled": True}, "bridge_whatsapp_metrics_enabled must be false"),
    ("telegram", {"bridge_telegram_metrics_enabled": True}, "bridge_telegram_metrics_enabled must be false"),
    ("telegram", {"bridge_telegram_flavor": "legacy", "bridge_telegram_relay_enabled": True},
     "bridge_telegram_relay_enabled must be false"),
    ("discord", {"bridge_discord_relay_enabled": True}, "bridge_discord_relay_enabled must be false"),
    ("discord", {"bridge_discord_metrics_enabled": True}, "bridge_discord_metrics_enabled must be false"),
    ("wechat", {"bridge_wechat_backfill_enabled": True}, "bridge_wechat_backfill_enabled must be false"),
    ("wechat", {"bridge_wechat_provisioning_enabled": True}, "bridge_wechat_provisioning_enabled must be false"),
    ("wechat", {"bridge_wechat_relay_enabled": True}, "bridge_wechat_relay_enabled must be false"),
    ("wechat", {"bridge_wechat_encryption": True}, "bridge_wechat_encryption must be false"),
    ("whatsapp", {"bridge_whatsapp_admins": ["alice"]}, "bridge_whatsapp_admins must list Matrix user IDs"),
])
def test_a_setting_wrong_for_the_bridge_is_refused_by_name(tmp_path, name, variables, message):
    code, output = validate(tmp_path, name, **variables)
    assert code != 0 and message in output, output[-3000:]


@pytest.mark.parametrize("name, variables", [
    ("telegram", {"bridge_telegram_flavor": "legacy", "bridge_telegram_metrics_enabled": True}),
    ("telegram", {"bridge_telegram_relay_enabled": True}),
    ("whatsapp", {"bridge_whatsapp_admins": ["@alice:example.test"], "bridge_whatsapp_relay_enabled": True}),
])
def test_a_setting_the_bridge_has_passes(tmp_path, name, variables):
    code, output = validate(tmp_path, name, **variables)
    assert code == 0, output[-3000:]
