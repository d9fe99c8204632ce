#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: appservice_registration
short_description: Write a Matrix appservice (bridge) registration file
version_added: 0.1.0
description:
  - Writes the registration file that tells Synapse about a bridge or other application
    service, and checks it the way Synapse does when it starts.
  - Tokens not given are generated once, from the operating system's CSPRNG, and read back
    from the file on later runs, so they stay stable.
  - The file is rewritten only when its content differs; comments in an existing file are
    kept. Token values never appear in the diff or in the results.
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
    details: Once the tokens exist in the file. Without O(as_token) and O(hs_token), the first run generates them.
options:
  path:
    description:
      - Path of the registration file. An existing file must hold a YAML mapping; otherwise the
        module fails and leaves it alone.
    type: path
    required: true
  id:
    description:
      - Unique ID of the appservice. Must not contain C(|).
    type: str
    required: true
  url:
    description:
      - URL where Synapse reaches the appservice, or V(null) for one that receives no events.
      - Required so that it is never left out by mistake; Synapse insists on it too.
      - A string or V(null).
    type: raw
    required: true
  sender_localpart:
    description:
      - Localpart of the appservice's bot user. Must need no URL encoding.
    type: str
    required: true
  namespaces:
    description:
      - Namespaces the appservice claims, as in the registration file format.
      - Keys V(users), V(aliases) and V(rooms), each a list of mappings with C(regex) (a
        string) and C(exclusive) (a boolean).
    type: dict
    default: {}
  rate_limited:
    description:
      - Whether Synapse rate-limits the appservice's users.
    type: bool
    default: false
  protocols:
    description:
      - Third-party protocols the appservice bridges, for example V(telegram).
      - Left out of the file when not given.
    type: list
    elements: str
  extra:
    description:
      - Additional top-level keys, for example C(de.sorunome.msc2409.push_ephemeral) or
        C(receive_ephemeral). Cannot set keys that have their own option.
    type: dict
    default: {}
  as_token:
    description:
      - Token the appservice uses to authenticate to the homeserver.
      - When not given, the token already in the file is kept, or a new one is generated.
    type: str
  hs_token:
    description:
      - Token the homeserver uses to authenticate to the appservice.
      - When not given, the token already in the file is kept, or a new one is generated.
    type: str
  mode:
    description:
      - Permissions of the file. The file holds secrets, so the default allows only its owner.
    type: raw
    default: '0600'
  owner:
    description:
      - Owner of the file. Unchanged when not given.
    type: str
  group:
    description:
      - Group of the file. Unchanged when not given.
    type: str
notes:
  - The bridge needs the same tokens in its own configuration. Read them from this file
    on the managed host (for example with M(ansible.builtin.slurp) and C(no_log)), or pass
    your own with O(as_token) and O(hs_token).
seealso:
  - module: switchboard.matrix.synapse_appservices
  - name: Application service registration
    description: The registration file format in the Matrix specification.
    link: https://spec.matrix.org/latest/application-service-api/#registration
"""

EXAMPLES = r"""
- name: Write the Telegram bridge registration
  switchboard.matrix.appservice_registration:
    path: /matrix/bridges/telegram/registration.yaml
    id: telegram
    url: http://matrix-telegram:29317
    sender_localpart: telegrambot
    namespaces:
      users:
        - regex: '@telegram_.*:example\.org'
          exclusive: true
      aliases:
        - regex: '#telegram_.*:example\.org'
          exclusive: true
    extra:
      de.sorunome.msc2409.push_ephemeral: true
      receive_ephemeral: true
    owner: "1000"
    group: "1000"

- name: Write a registration with tokens kept in a vault
  switchboard.matrix.appservice_registration:
    path: /matrix/bridges/chatbot/registration.yaml
    id: chatbot
    url: null
    sender_localpart: chatbot
    as_token: "{{ vault_chatbot_as_token }}"
    hs_token: "{{ vault_chatbot_hs_token }}"
"""

RETURN = r"""
id:
  description: The appservice ID.
  returned: success
  type: str
  sample: telegram
sender_localpart:
  description: Localpart of the appservice's bot user.
  returned: success
  type: str
  sample: telegrambot
path:
  description: Path of the registration file.
  returned: success
  type: str
  sample: /matrix/bridges/telegram/registration.yaml
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.switchboard.matrix.plugins.module_utils._appservice import run_appservice_registration
from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import (
    require_absolute_paths,
    require_ruamel,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            id=dict(type="str", required=True),
            url=dict(type="raw", required=True),
            sender_localpart=dict(type="str", required=True),
            namespaces=dict(type="dict", default={}),
            rate_limited=dict(type="bool", default=False),
            protocols=dict(type="list", elements="str"),
            extra=dict(type="dict", default={}),
            as_token=dict(type="str", no_log=True),
            hs_token=dict(type="str", no_log=True),
            mode=dict(type="raw", default="0600"),
            owner=dict(type="str"),
            group=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    require_ruamel(module)
    require_absolute_paths(module, "path")
    run_appservice_registration(module)


if __name__ == "__main__":
    main()
