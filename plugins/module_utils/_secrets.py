# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to the switchboard.matrix collection: may change without notice.
"""Secrets generated once on the managed host and kept in files of their own."""

from __future__ import annotations

import os
import re
import secrets

from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import atomic_write

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def new_secret(length):
    """A CSPRNG secret of `length` hex characters: safe in URLs, YAML, env files and DSNs."""
    return secrets.token_hex((length + 1) // 2)[:length]


def read_secret(path):
    """The secret stored at `path`, or None when the file does not exist or is empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except FileNotFoundError:
        return None
    return value or None


def ensure_secrets(directory, names, length, check_mode):
    """Read each named secret, creating the missing ones. Returns (secrets, created names)."""
    bad = [name for name in names if not NAME_PATTERN.match(name)]
    if bad:
        raise ValueError("names must be letters, digits, '_', '.', '-' (not starting with a symbol): %s"
                         % ", ".join(bad))
    values, created = {}, []
    for name in names:
        path = os.path.join(directory, name)
        value = read_secret(path)
        if value is None:
            value = new_secret(length)
            created.append(name)
            if not check_mode:
                if not os.path.isdir(directory):
                    os.makedirs(directory, mode=0o700)
                atomic_write(path, value + "\n")
                os.chmod(path, 0o600)
        values[name] = value
    return values, created


def run_stored_secrets(module):
    params = module.params
    if params["length"] < 16:
        module.fail_json(msg="length must be at least 16 characters, got %d" % params["length"])
    try:
        values, created = ensure_secrets(params["directory"], params["names"], params["length"], module.check_mode)
    except (ValueError, OSError) as exc:
        module.fail_json(msg="%s: %s" % (params["directory"], exc))
    module.exit_json(changed=bool(created), created=created, secrets=values)
