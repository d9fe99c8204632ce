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
import stat

from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import (
    YamlFileError,
    atomic_write,
    read_regular_file,
)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
# A secret is one line; anything bigger is not ours.
MAX_SECRET_BYTES = 4096
MIN_LENGTH, MAX_LENGTH = 16, MAX_SECRET_BYTES - 1  # the file holds the secret and a newline


def new_secret(length):
    """A CSPRNG secret of `length` hex characters: safe in URLs, YAML, env files and DSNs."""
    return secrets.token_hex((length + 1) // 2)[:length]


def read_secret(path):
    """(secret, mode) of the file at `path`; (None, None) when it does not exist or is empty.

    Read as every file run as root is (read_regular_file): never through a link, never
    blocking on a FIFO, a small regular file only.
    """
    if not os.path.lexists(path):
        return None, None
    try:
        data, info = read_regular_file(path, MAX_SECRET_BYTES)
        text = data.decode("utf-8")
    except YamlFileError as exc:
        raise ValueError(str(exc)) from None
    except UnicodeDecodeError:
        raise ValueError("%s: is not UTF-8 text, so not a secret of ours; remove it and the next run "
                         "generates a new one" % path) from None
    return text.strip() or None, stat.S_IMODE(info.st_mode)


def ensure_secrets(directory, names, length, check_mode):
    """Read each named secret, creating the missing ones and making loosened files 0600 again.

    Returns (secrets, created names, names whose mode was repaired; "." for the directory).
    """
    bad = [name for name in names if not NAME_PATTERN.fullmatch(name)]
    if bad:
        raise ValueError("names must be letters, digits, '_', '.', '-' (not starting with a symbol, at most 255): %s"
                         % ", ".join(repr(name) for name in bad))
    if os.path.islink(directory):
        raise ValueError("%s is a symbolic link; refusing to keep secrets through it" % directory)
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise ValueError("is not a directory")
    values, created, repaired = {}, [], []
    # The directory too: a loosened one would let others see (or add) the secrets' names.
    if os.path.isdir(directory) and stat.S_IMODE(os.lstat(directory).st_mode) != 0o700:
        repaired.append(".")
        if not check_mode:
            os.chmod(directory, 0o700, follow_symlinks=False)
    for name in names:
        path = os.path.join(directory, name)
        value, mode = read_secret(path)
        if value is None:
            value = new_secret(length)
            created.append(name)
            if not check_mode:
                if not os.path.isdir(directory):
                    os.makedirs(directory, mode=0o700)
                atomic_write(path, value + "\n")
                os.chmod(path, 0o600, follow_symlinks=False)
        elif mode != 0o600:
            repaired.append(name)
            if not check_mode:
                os.chmod(path, 0o600, follow_symlinks=False)
        values[name] = value
    return values, created, repaired


def run_stored_secrets(module):
    params = module.params
    if not MIN_LENGTH <= params["length"] <= MAX_LENGTH:
        module.fail_json(msg="length must be %d to %d characters, got %d" % (MIN_LENGTH, MAX_LENGTH, params["length"]))
    try:
        names = list(params["names"])
        if params["kept"] and os.path.isdir(params["directory"]) and not os.path.islink(params["directory"]):
            # Regular files only: anything else is not a secret of ours (a named one is still refused).
            names += sorted(name for name in os.listdir(params["directory"])
                            if NAME_PATTERN.fullmatch(name) and name not in names
                            and stat.S_ISREG(os.lstat(os.path.join(params["directory"], name)).st_mode))
        values, created, repaired = ensure_secrets(params["directory"], names, params["length"],
                                                   module.check_mode)
    except (ValueError, OSError, YamlFileError) as exc:
        module.fail_json(msg="%s: %s" % (params["directory"], exc))
    module.exit_json(changed=bool(created or repaired), created=created, repaired=repaired, secrets=values)
