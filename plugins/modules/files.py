#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: files
short_description: A role's directories and files, in one module run
version_added: 0.2.0
description:
  - Makes a set of directories and files exactly what the task lists, in one module run where
    M(ansible.builtin.file), M(ansible.builtin.copy), M(ansible.builtin.template) and
    M(ansible.builtin.stat) would take one each. A run that changes nothing stays one module run.
  - In this order (O(directories), O(files), O(data_files), O(attributes), O(absent)), each entry in
    its list's order; the first that cannot be done fails the task with a message naming its path (what was done before it stays done, and is listed in
    RV(changed_paths)). O(look) is read first, before anything changes.
  - Never follows a link. A symbolic link, FIFO or device where a directory or file is expected is
    refused with a message naming it (a directory another user can write may hold one planted there).
  - Files are replaced atomically (a complete new file renamed over the old one), so a file is
    either fully written or untouched.
  - Check mode reports what would change; diff mode shows each change, secret content hidden.
author:
  - Switchboard developers (@switchboard)
requirements:
  - ruamel.yaml (for O(data_files))
extends_documentation_fragment:
  - switchboard.matrix._attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  look:
    description:
      - Paths to look at before anything changes, without following links; see RV(looked).
    type: list
    elements: path
    default: []
  read:
    description:
      - Small text files to read before anything changes (at most 4 MiB, never through a link); see
        RV(read). Their text is in the result, so set C(no_log) on a task that reads a secret.
    type: list
    elements: path
    default: []
  directories:
    description:
      - Directories to create when missing (missing parents are created C(0755)), with their
        owner, group and mode.
    type: list
    elements: dict
    default: []
    suboptions:
      path: &path
        description: Absolute path.
        type: path
        required: true
      owner: &owner
        description: User name or uid; unchanged when omitted.
        type: raw
      group: &group
        description: Group name or gid; unchanged when omitted.
        type: raw
      mode: &mode
        description: Mode as for M(ansible.builtin.file), for example V("0640"); unchanged when omitted.
        type: raw
      stop_if_owned_by_another:
        description:
          - When this directory exists and belongs to another user than O(directories[].owner), change
            nothing at all and return its path in RV(stopped_at), for the caller to move what the other
            user left there first (a layout where a program owned the directory that root owns now).
        type: bool
        default: false
  files:
    description:
      - Text files, written when their content differs. Their directory must exist (list it in
        O(directories)).
    type: list
    elements: dict
    default: []
    suboptions:
      path: *path
      content:
        description: The file's text. Shown in diffs.
        type: str
      secret_content:
        description:
          - The file's text when it is secret (a password). Never shown, the diff included. Give
            either this or O(files[].content).
        type: str
      validate:
        description:
          - A command that checks the new file before it replaces the old one, C(%s) standing for its path
            (as for M(ansible.builtin.template)). When it fails, the file is left as it was and the task
            fails with the command's last lines.
        type: str
      owner: *owner
      group: *group
      mode:
        description: Mode as for M(ansible.builtin.file); a new file is C(0600) when omitted.
        type: raw
  data_files:
    description:
      - YAML files written from data, like M(switchboard.matrix.config_file) writes one. Rewritten only
        when their data differs (formatting and comments do not count), O(data_files[].secret_data)
        deep-merged in and hidden from diffs.
    type: list
    elements: dict
    default: []
    suboptions:
      path: *path
      data:
        description: The file's data.
        type: dict
        default: {}
      secret_data:
        description: Secret parts of the data (tokens, passwords), deep-merged into O(data_files[].data).
        type: dict
        default: {}
      header:
        description: YAML comment lines written before the data, ending with a newline; or empty.
        type: str
        default: ""
      force:
        description: Replace an existing file that is not valid YAML (by default the task fails, naming it).
        type: bool
        default: false
      owner: *owner
      group: *group
      mode:
        description: Mode as for M(ansible.builtin.file); a new file is C(0600) when omitted.
        type: raw
  attributes:
    description:
      - Owner, group and mode of files that other programs create (a key Synapse generates). A missing
        one is left missing; a link in its place is refused.
    type: list
    elements: dict
    default: []
    suboptions:
      path: *path
      owner: *owner
      group: *group
      mode: *mode
  absent:
    description:
      - Files to remove, last. A link is removed itself, never what it points to; a directory is refused.
    type: list
    elements: path
    default: []
notes:
  - Paths must be absolute.
seealso:
  - module: ansible.builtin.file
  - module: switchboard.matrix.config_file
"""

EXAMPLES = r"""
- name: Write PostgreSQL's directories and the superuser password file
  switchboard.matrix.files:
    directories:
      - {path: /matrix/postgres, owner: root, group: root, mode: "0755"}
      - {path: /matrix/postgres/data, owner: "999", group: "999", mode: "0700"}
    files:
      - path: /matrix/postgres/secrets/superuser-password
        secret_content: "{{ postgres_passwords.postgres }}"
        owner: "999"
        mode: "0600"

- name: Write Synapse's logging configuration and see whether homeserver.yaml exists
  switchboard.matrix.files:
    look: [/matrix/synapse/data/homeserver.yaml]
    files:
      - path: /matrix/synapse/data/log.config
        content: "{{ lookup('ansible.builtin.template', 'log.config.j2') }}"
        mode: "0640"
  register: synapse_files
"""

RETURN = r"""
changed_paths:
  description: The paths this task created or changed (content, owner, group or mode), in order.
  returned: always
  type: list
  elements: str
  sample: [/matrix/synapse/data/log.config]
stopped_at:
  description: The directory of O(directories[].stop_if_owned_by_another) that stopped the task, or V(null).
  returned: always
  type: str
  sample: /matrix/bridges/whatsapp
read:
  description: The text of each file of O(read) that exists, by path, as it was before anything changed.
  returned: always
  type: dict
  sample: {"/matrix/bot/token/access-token": "syt_..."}
looked:
  description:
    - For each path of O(look), what was there before anything changed (links not followed).
      C(exists); when it exists, C(type) (V(file), V(directory), V(link) or V(other)), C(uid),
      C(gid), C(mode) (octal text), C(size) and C(mtime) (seconds since the epoch).
  returned: always
  type: dict
  sample: {"/matrix/synapse/data/homeserver.yaml": {"exists": true, "type": "file", "uid": 991, "gid": 991,
           "mode": "0600", "size": 1234, "mtime": 1764000000.0}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.switchboard.matrix.plugins.module_utils._files import run_files
from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import require_ruamel

ATTRIBUTES = dict(owner=dict(type="raw"), group=dict(type="raw"), mode=dict(type="raw"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            look=dict(type="list", elements="path", default=[]),
            read=dict(type="list", elements="path", default=[]),
            absent=dict(type="list", elements="path", default=[]),
            directories=dict(type="list", elements="dict", default=[],
                             options=dict(path=dict(type="path", required=True),
                                          stop_if_owned_by_another=dict(type="bool", default=False), **ATTRIBUTES)),
            files=dict(type="list", elements="dict", default=[],
                       options=dict(path=dict(type="path", required=True), content=dict(type="str"),
                                    secret_content=dict(type="str", no_log=True), validate=dict(type="str"),
                                    **ATTRIBUTES)),
            data_files=dict(type="list", elements="dict", default=[],
                            options=dict(path=dict(type="path", required=True), data=dict(type="dict", default={}),
                                         secret_data=dict(type="dict", default={}, no_log=True),
                                         header=dict(type="str", default=""), force=dict(type="bool", default=False),
                                         **ATTRIBUTES)),
            attributes=dict(type="list", elements="dict", default=[],
                            options=dict(path=dict(type="path", required=True), **ATTRIBUTES)),
        ),
        supports_check_mode=True,
    )
    if module.params["data_files"]:
        require_ruamel(module)
    run_files(module)


if __name__ == "__main__":
    main()
