"""Helpers to run a module's main() in-process and capture its exit_json / fail_json result."""
from __future__ import annotations

import contextlib
import json
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class AnsibleExitJson(Exception):
    """Raised in place of exit_json; args[0] is the result dict."""


class AnsibleFailJson(Exception):
    """Raised in place of fail_json; args[0] is the result dict."""


def _exit_json(self, **kwargs):  # pylint: disable=unused-argument
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def _fail_json(self, **kwargs):  # pylint: disable=unused-argument
    kwargs["failed"] = True
    raise AnsibleFailJson(kwargs)


@contextlib.contextmanager
def set_module_args(args, check_mode=False, diff=False):
    """Run a module in-process with these arguments; exit/fail raise AnsibleExitJson/AnsibleFailJson."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    # Round-trip through JSON so the module sees exactly what a controller would send.
    args = json.loads(json.dumps(args))
    with patch_module_args(args), \
            mock.patch.object(basic.AnsibleModule, "exit_json", _exit_json), \
            mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json):
        yield


def run_module(main, args, check_mode=False, diff=False):
    """Run a module's main() with `args`; return its result dict (`failed` is set when it failed)."""
    with set_module_args(args, check_mode=check_mode, diff=diff):
        try:
            main()
        except (AnsibleExitJson, AnsibleFailJson) as exc:
            return exc.args[0]
    raise AssertionError("the module neither exited nor failed")
