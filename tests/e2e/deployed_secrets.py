"""Every secret a deploy keeps on the VPS, by where it was found: the values the secrets
grep looks for in Ansible's output (reliability's runs of site.yml, operations' day-2
playbooks)."""
from __future__ import annotations

import yaml

HOMESERVER = "/matrix/synapse/data/homeserver.yaml"


def deployed_secrets(read):
    """`read(command)` runs a shell command on the VPS and returns its stdout."""
    found = {}
    for name in read("ls /matrix/secrets").split():
        found[f"/matrix/secrets/{name}"] = read(f"cat /matrix/secrets/{name}").strip()
    config = yaml.safe_load(read(f"cat {HOMESERVER}"))
    for key in ("registration_shared_secret", "macaroon_secret_key", "form_secret"):
        found[f"homeserver.yaml {key}"] = config[key]
    if config["database"]["name"] == "psycopg2":
        found["homeserver.yaml database password"] = config["database"]["args"]["password"]
    for listed in config.get("app_service_config_files") or []:
        registration = yaml.safe_load(read(f"cat /matrix/bridges/{listed.split('/bridges/', 1)[1]}"))
        for key in ("as_token", "hs_token"):
            found[f"{listed} {key}"] = registration[key]
    found["signing key"] = read("cat /matrix/synapse/data/*.signing.key").split()[-1]
    bot_token = read("cat /matrix/bot/secrets/access_token 2>/dev/null || true").strip()
    if bot_token:
        found["bot access token"] = bot_token
    assert found and all(len(value) >= 16 for value in found.values()), sorted(found)
    return found


def occurrences(secrets, outputs):
    """{where the secret was found: [names of the outputs that print it]}."""
    found = {}
    for name, text in outputs.items():
        for where, value in secrets.items():
            if value in text:
                found.setdefault(where, []).append(name)
    return found
