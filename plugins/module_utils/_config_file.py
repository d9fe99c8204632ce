# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to the switchboard.matrix collection: may change without notice.
"""Write a whole YAML configuration file from data, with secrets kept out of Ansible's output."""

from __future__ import annotations

import copy
import os

from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import (
    Document,
    YamlFileError,
    check_regular_file,
    deep_merge,
    load_plain,
    make_diff,
    mask_secrets,
    atomic_write,
    same_data,
)


def header_problem(header):
    """Why `header` cannot go before the data, or None: it must hold only comments, and end a line."""
    if header and not header.endswith("\n"):
        return "must end with a newline, got %r" % header
    data_lines = [line for line in header.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if data_lines:
        return "must be YAML comment lines, each starting with '#', got %r" % data_lines[0]
    return None


def run_config_file(module):
    params = module.params
    path = params["path"]
    problem = header_problem(params["header"])
    if problem:
        module.fail_json(msg="header: " + problem)
    wanted = deep_merge(params["content"], params["secret_content"])
    current = None
    if os.path.lexists(path):
        try:
            # A link, directory, FIFO or device is never replaced, force or not.
            check_regular_file(path, os.lstat(path))
        except YamlFileError as exc:
            module.fail_json(msg=str(exc))
        try:
            current = load_plain(path)
        except YamlFileError as exc:
            if not params["force"]:
                module.fail_json(msg="%s; refusing to overwrite it (force: true replaces it)" % exc)
    changed = current is None or not same_data(current, wanted)
    result = {"changed": changed, "path": path}
    if changed:
        text = params["header"] + Document.new(path).dump(wanted)
        if module._diff:
            # Old and new values of the secrets never show; the rest of the file does.
            hidden_before, hidden_after = mask_secrets(copy.deepcopy(current), copy.deepcopy(wanted))
            before = "" if current is None else Document.new(path).dump(hidden_before)
            result["diff"] = make_diff(path, before, params["header"] + Document.new(path).dump(hidden_after))
        if not module.check_mode:
            try:
                atomic_write(path, text)
            except YamlFileError as exc:
                module.fail_json(msg=str(exc))
    if not module.check_mode or os.path.exists(path):
        file_args = module.load_file_common_arguments(params, path=path)
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    module.exit_json(**result)
