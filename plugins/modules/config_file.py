#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: config_file
short_description: Write a YAML configuration file from data, secrets hidden
version_added: 0.1.0
description:
  - Writes a whole YAML file (a bridge's C(config.yaml), for example) so that its data is exactly
    O(content) deep-merged with O(secret_content).
  - The file is rewritten only when its data differs (formatting and comments of an existing file
    do not count), atomically, and its mode and owner are set like M(ansible.builtin.file) does.
  - Values in O(secret_content) (tokens, database passwords) are hidden by Ansible wherever they
    would appear in its output, the diff included, so C(--diff) stays usable without C(no_log).
author:
  - Switchboard developers (@switchboard)
requirements:
  - ruamel.yaml
extends_documentation_fragment:
  - switchboard.matrix._attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  path:
    description: Path of the file. Its directory must exist.
    type: path
    required: true
  content:
    description: The file's data.
    type: dict
    required: true
  secret_content:
    description:
      - Secret parts of the data, deep-merged into O(content) (mappings merge key by key).
    type: dict
    default: {}
  header:
    description:
      - Text written before the data, such as a comment saying the file is managed.
      - YAML comment lines (each starting with C(#)), ending with a newline; or empty.
    type: str
    default: "# Managed by Ansible (switchboard.matrix); changes here are overwritten.\n"
  force:
    description:
      - Replace an existing file that is not valid YAML. By default the module fails instead,
        naming the file.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Write the bridge's configuration
  switchboard.matrix.config_file:
    path: /matrix/bridges/whatsapp/config.yaml
    content:
      homeserver: {address: "http://synapse:8008", domain: example.org}
      appservice: {address: "http://mautrix-whatsapp:29318", port: 29318}
    secret_content:
      appservice: {as_token: "{{ as_token }}", hs_token: "{{ hs_token }}"}
    owner: "1337"
    mode: "0600"
"""

RETURN = r"""
path:
  description: The file written.
  returned: success
  type: str
  sample: /matrix/bridges/whatsapp/config.yaml
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.switchboard.matrix.plugins.module_utils._config_file import run_config_file
from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import (
    require_absolute_paths,
    require_ruamel,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            content=dict(type="dict", required=True),
            secret_content=dict(type="dict", default={}, no_log=True),
            header=dict(type="str", default="# Managed by Ansible (switchboard.matrix); changes here are overwritten.\n"),
            force=dict(type="bool", default=False),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    require_ruamel(module)
    require_absolute_paths(module, "path")
    run_config_file(module)


if __name__ == "__main__":
    main()
