"""Every role option is documented for `ansible-doc -t role`: a real description and its default."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
PLACEHOLDERS = ("see defaults", "no description in defaults", "todo", "fixme")


def options():
    for spec_path in sorted(ROLES.glob("*/meta/argument_specs.yml")):
        role = spec_path.parent.parent
        defaults_path = role / "defaults" / "main.yml"
        defaults = yaml.safe_load(defaults_path.read_text()) or {} if defaults_path.exists() else {}
        for entry_point, spec in yaml.safe_load(spec_path.read_text())["argument_specs"].items():
            for name, option in (spec.get("options") or {}).items():
                yield pytest.param(role.name, name, option, defaults, id=f"{role.name}:{entry_point}:{name}")


@pytest.mark.parametrize("role, name, option, defaults", list(options()))
def test_option_is_documented_with_its_default(role, name, option, defaults):
    description = option.get("description")
    text = " ".join(description) if isinstance(description, list) else str(description or "")
    assert len(text.split()) >= 3, f"{role}: {name} has no real description: {text!r}"
    assert not any(word in text.lower() for word in PLACEHOLDERS), f"{role}: {name}: {text!r}"
    if name in defaults and not option.get("required"):
        assert "default" in option, f"{role}: {name} shows no default in ansible-doc"
        assert option["default"] == defaults[name], f"{role}: {name}: the spec's default is not defaults/main.yml's"


def test_every_role_has_options_to_check():
    assert len(list(options())) > 250
