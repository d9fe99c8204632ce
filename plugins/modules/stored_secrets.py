#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stored_secrets
short_description: Generate secrets once on the managed host and keep them
version_added: 0.1.0
description:
  - Makes sure each named secret exists as a file C(<directory>/<name>) on the managed host,
    generating missing ones with a cryptographically secure random generator, and returns all
    of them.
  - Existing secrets are never changed, so database passwords and tokens stay stable across
    runs and controllers. New files are written atomically with mode C(0600); an existing
    file whose mode was loosened (say to C(0644)) is made C(0600) again and reported.
  - A secret file must be a small regular file; a symbolic link, FIFO or device in its place
    is refused with a message naming it, never followed.
  - One call serves any number of secrets, so a run that changes nothing costs one module run.
author:
  - Switchboard developers (@switchboard)
extends_documentation_fragment:
  - switchboard.matrix._attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode, missing secrets are generated in memory and returned but not stored.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  directory:
    description:
      - Directory that holds the secret files. Created with mode C(0700) when missing.
    type: path
    required: true
  names:
    description:
      - Names of the secrets; each is a file name in O(directory). Letters, digits, C(_), C(.) and C(-),
        not starting with a symbol, at most 255 characters.
    type: list
    elements: str
    default: []
  length:
    description:
      - Length in characters of newly generated secrets (hexadecimal digits), 16 to 4095.
    type: int
    default: 48
  kept:
    description:
      - Also read every secret already kept in O(directory) (each file with a valid name), so that
        one run serves the later tasks that need some of them; a missing directory reads as none.
        Those files are checked and repaired like the named ones.
    type: bool
    default: false
notes:
  - The result holds the secrets. Always set C(no_log) on the task.
"""

EXAMPLES = r"""
- name: Database passwords, generated once
  switchboard.matrix.stored_secrets:
    directory: /matrix/secrets
    names: [postgres-superuser, postgres-synapse]
  register: db_secrets
  no_log: true

- name: Read every secret kept so far, for the tasks that follow
  switchboard.matrix.stored_secrets:
    directory: /matrix/secrets
    kept: true
  register: kept_secrets
  no_log: true

- name: Use one
  ansible.builtin.debug:
    msg: "The synapse password has {{ db_secrets.secrets['postgres-synapse'] | length }} characters"
"""

RETURN = r"""
secrets:
  description: Each secret by name.
  returned: success
  type: dict
  sample: {postgres-synapse: 8c1f0a7e3b92d4c6a5f1e0b7c3d2a9f4e8b1c6d5a3f2e7b0}
repaired:
  description: Names of existing secrets whose file mode was made 0600 again (or would be, in check mode); V(.) when the directory was made 0700 again.
  returned: success
  type: list
  elements: str
  sample: [postgres-synapse]
created:
  description: Names of the secrets created by this run (or that would be, in check mode).
  returned: success
  type: list
  elements: str
  sample: [postgres-synapse]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.switchboard.matrix.plugins.module_utils._secrets import run_stored_secrets
from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import require_absolute_paths


def main():
    module = AnsibleModule(
        argument_spec=dict(
            directory=dict(type="path", required=True),
            names=dict(type="list", elements="str", default=[]),
            length=dict(type="int", default=48),
            kept=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    require_absolute_paths(module, "directory")
    run_stored_secrets(module)


if __name__ == "__main__":
    main()
