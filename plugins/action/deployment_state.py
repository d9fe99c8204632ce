# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of deployment_state: the digest of a run's inputs, sent instead of them."""

from __future__ import annotations

import hashlib
import json
import os
import re

from ansible.plugins.action import ActionBase

# The collection's own code and wiring: a change to any of them means the roles may do
# something else now, so it is part of the inputs.
_CODE = ("site.yml", "playbooks", "roles", "plugins", "meta")
_COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def code_digest(root=_COLLECTION):
    digest = hashlib.sha256()
    for top in _CODE:
        start = os.path.join(root, top)
        paths = [start] if os.path.isfile(start) else []
        for directory, subdirectories, names in os.walk(start):
            subdirectories[:] = sorted(name for name in subdirectories if name != "__pycache__")
            paths.extend(os.path.join(directory, name) for name in sorted(names) if not name.endswith(".pyc"))
        for path in paths:
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _variables(self, pattern, task_vars):
        """Each matching variable, templated; a value that cannot be templated here counts as written."""
        values = {}
        for name in sorted(task_vars):
            if not pattern.search(name):
                continue
            try:
                values[name] = self._templar.template(task_vars[name])
            except Exception:  # pylint: disable=broad-except  # undefined here, so taken as written
                values[name] = repr(task_vars[name])
        return values

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        matching = args.pop("variables_matching", None)
        extra = args.pop("extra_inputs", None)
        if args.get("state", "probe") == "probe" and matching is not None:
            try:
                pattern = re.compile(matching)
            except (re.error, TypeError) as exc:
                result.update(failed=True, msg="variables_matching is not a regular expression (%s): %r" % (exc, matching))
                return result
            inputs = {
                "variables": self._variables(pattern, task_vars or {}),
                "extra": extra,
                "code": code_digest(),
            }
            serial = json.dumps(inputs, sort_keys=True, default=str)
            args["inputs_digest"] = hashlib.sha256(serial.encode()).hexdigest()
        result.update(self._execute_module(module_name="switchboard.matrix.deployment_state",
                                           module_args=args, task_vars=task_vars))
        return result
