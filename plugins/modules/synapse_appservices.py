#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: synapse_appservices
short_description: List appservice registration files in Synapse's homeserver.yaml
version_added: 0.1.0
description:
  - Adds registration files to, or removes them from, C(app_service_config_files) in a Synapse
    C(homeserver.yaml). Everything else in the file stays as it is, comments, key order and
    quoting included.
  - Before it changes anything, checks every registration that will be listed the way Synapse
    does when it starts (required keys and their types, namespaces, regular expressions, unique
    C(id) and C(as_token) across all listed files), and checks C(homeserver.yaml) itself.
    On any problem the module fails with a message naming the file and the key, and
    C(homeserver.yaml) is left untouched.
  - The file is replaced atomically and keeps its owner, group and mode.
author:
  - Switchboard developers (@switchboard)
requirements:
  - ruamel.yaml
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
  path:
    description:
      - Path of C(homeserver.yaml) on the managed host. It must exist and hold a YAML mapping.
    type: path
    required: true
  registrations:
    description:
      - Paths of registration files on the managed host.
      - With O(path_map), each is translated to the path Synapse sees inside its container,
        and a file outside every mapped host prefix is an error.
      - With O(state=absent) the files need not exist.
    type: list
    elements: path
    default: []
  state:
    description:
      - V(present) makes sure O(registrations) are listed (appended in the given order).
      - V(absent) makes sure they are not listed.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - With O(state=present), remove every listed file that is not in O(registrations), so
        the list becomes exactly O(registrations).
      - Ignored with O(state=absent).
    type: bool
    default: false
  prune_missing:
    description:
      - Before anything else, unlist every listed file that does not exist on the host (found
        through O(path_map)), with a warning naming it. Synapse refuses to start while a listed
        file is missing, for example a bridge's registration deleted by hand; the bridge's role
        writes and lists it again later in the same run.
    type: bool
    default: false
  path_map:
    description:
      - Host path prefix to the path Synapse sees for it inside its container, for example
        V(/matrix/bridges) to V(/bridges).
      - Prefixes match whole path components, and the longest matching prefix wins.
      - Entries already in the list are read on the host through the reverse mapping; an
        entry outside every container prefix is an error.
      - Without it, Synapse sees the same paths as the host.
    type: dict
notes:
  - Synapse reads the list only when it starts; restart it after a change.
seealso:
  - module: switchboard.matrix.appservice_registration
  - name: Synapse application services
    description: How Synapse loads appservice registration files.
    link: https://element-hq.github.io/synapse/latest/application_services.html
"""

EXAMPLES = r"""
- name: Register the Telegram bridge with Synapse running in a container
  switchboard.matrix.synapse_appservices:
    path: /matrix/synapse/data/homeserver.yaml
    registrations:
      - /matrix/bridges/telegram/registration.yaml
    path_map:
      /matrix/synapse/data: /data
      /matrix/bridges: /bridges
  notify: Restart Synapse

- name: List exactly these bridges, dropping any other
  switchboard.matrix.synapse_appservices:
    path: /matrix/synapse/data/homeserver.yaml
    registrations:
      - /matrix/bridges/telegram/registration.yaml
      - /matrix/bridges/whatsapp/registration.yaml
    exclusive: true
    path_map:
      /matrix/bridges: /bridges

- name: Unregister the Discord bridge (its file may already be gone)
  switchboard.matrix.synapse_appservices:
    path: /matrix/synapse/data/homeserver.yaml
    registrations:
      - /matrix/bridges/discord/registration.yaml
    state: absent
    path_map:
      /matrix/bridges: /bridges
"""

RETURN = r"""
app_service_config_files:
  description: The resulting list, as Synapse sees it (container paths when O(path_map) is set).
  returned: success
  type: list
  elements: str
  sample:
    - /bridges/telegram/registration.yaml
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.switchboard.matrix.plugins.module_utils._appservice import run_synapse_appservices
from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import (
    require_absolute_paths,
    require_ruamel,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            registrations=dict(type="list", elements="path", default=[]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            exclusive=dict(type="bool", default=False),
            prune_missing=dict(type="bool", default=False),
            path_map=dict(type="dict"),
        ),
        supports_check_mode=True,
    )
    require_ruamel(module)
    require_absolute_paths(module, "path", "registrations")
    run_synapse_appservices(module)


if __name__ == "__main__":
    main()
