#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: synapse_config
short_description: Set or remove top-level keys of Synapse's homeserver.yaml
version_added: 0.1.0
description:
  - Sets top-level keys of a Synapse C(homeserver.yaml) to given values and removes others,
    leaving the rest of the file as it is, comments, key order and quoting included.
  - A key that exists keeps its place and the comment above it; a new key is added at the end.
  - The file is replaced atomically, only when its data changes, and keeps its owner, group
    and mode.
  - In the diff, known secrets (C(registration_shared_secret), C(macaroon_secret_key),
    C(form_secret), passwords under C(database.args), C(email.smtp_pass) and a few more) are
    shown as C(********).
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
      - Path of C(homeserver.yaml). It must exist and hold a YAML mapping.
    type: path
    required: true
  settings:
    description:
      - Top-level keys to set. Each key ends up with exactly the given value; a mapping or
        list replaces the old one as a whole (parts that stay the same keep their comments).
    type: dict
    default: {}
  secret_settings:
    description:
      - Like O(settings), for values that are secrets (database password, SMTP password).
        Ansible hides them in its output. Deep-merged into O(settings), so
        a C(database.args.password) given here completes a C(database) mapping given there.
    type: dict
    default: {}
  remove:
    description:
      - Top-level keys to remove. Keys that are not there are ignored.
      - A key cannot be both in O(settings) and in O(remove).
    type: list
    elements: str
    default: []
  appservices:
    description:
      - The appservice registrations Synapse loads, set in the same write as the settings (one module
        run, one validation). C(app_service_config_files) becomes exactly these, in this order (entries
        that stay keep their place), each checked first the way M(switchboard.matrix.synapse_appservices)
        checks it. Omit it to leave the list alone.
    type: dict
    suboptions:
      registrations:
        description: Registration files on the managed host.
        type: list
        elements: path
        required: true
      path_map:
        description: Host path prefix to the path Synapse sees inside its container, as for M(switchboard.matrix.synapse_appservices).
        type: dict
        default: {}
  expect:
    description:
      - Top-level keys that must already hold these values. When one differs, the module fails
        and changes nothing.
      - Guards keys that must never change under an existing server, such as C(server_name),
        which is baked into every user ID and the signing key.
    type: dict
    default: {}
  validate:
    description:
      - A command that checks the new file before it replaces the old one; each V(%s) in it is
        replaced by the new file's path (complete, with the old file's owner and mode). When the command fails,
        the module fails with its last output lines and the file is left as it was.
      - For example Synapse's own config loader in a throw-away container of the same image,
        C(python -m synapse.config -c ...), which parses every value as Synapse's start does.
    type: str
  backup_path:
    description:
      - Where to keep the old text (a file of mode 0600) before the new one replaces it, so it
        can be put back if Synapse does not start on the new one. Outside the directory Synapse
        can write. Written only when the file changes.
    type: path
notes:
  - Values in O(settings) appear in the task's invocation details; put secrets in
    O(secret_settings) instead.
  - Synapse reads its configuration only when it starts; restart it after a change.
seealso:
  - module: switchboard.matrix.synapse_appservices
  - name: Synapse configuration manual
    description: All keys of homeserver.yaml.
    link: https://element-hq.github.io/synapse/latest/usage/configuration/config_documentation.html
"""

EXAMPLES = r"""
- name: Point Synapse at PostgreSQL
  switchboard.matrix.synapse_config:
    path: /matrix/synapse/data/homeserver.yaml
    settings:
      database:
        name: psycopg2
        args:
          user: synapse
          password: "{{ synapse_db_password }}"
          database: synapse
          host: postgres
          cp_min: 5
          cp_max: 10
      enable_registration: false
    remove:
      - enable_registration_without_verification
    expect:
      server_name: example.org
  no_log: true
  notify: Restart Synapse
"""

RETURN = r"""
backup_file:
  description: Where the old text was kept (O(backup_path)), when the file changed.
  returned: changed and O(backup_path) set
  type: str
  sample: /matrix/synapse/homeserver.yaml.previous
changed_keys:
  description: Top-level keys that were set to a new value, added or removed, in file order.
  returned: success
  type: list
  elements: str
  sample:
    - database
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.switchboard.matrix.plugins.module_utils._appservice import (
    LIST_KEY,
    RegistrationError,
    plan_appservices,
)
from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import (
    YamlFileError,
    deep_merge,
    delete_key,
    is_secret_like,
    load_mapping,
    require_absolute_paths,
    require_ruamel,
    set_key,
    write_if_changed,
)

# Values hidden in the diff. Each entry is a path of keys; a key may be a glob.
SECRET_PATHS = [
    ("registration_shared_secret",),
    ("macaroon_secret_key",),
    ("form_secret",),
    ("turn_shared_secret",),
    ("worker_replication_secret",),
    ("recaptcha_private_key",),
    ("database", "args", "*password*"),
    ("email", "smtp_pass"),
    ("redis", "password"),
]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            settings=dict(type="dict", default={}),
            secret_settings=dict(type="dict", default={}, no_log=True),
            remove=dict(type="list", elements="str", default=[]),
            expect=dict(type="dict", default={}),
            appservices=dict(type="dict", options=dict(
                registrations=dict(type="list", elements="path", required=True),
                path_map=dict(type="dict", default={}))),
            validate=dict(type="str"),
            backup_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    require_ruamel(module)
    require_absolute_paths(module, "path", "backup_path")
    settings = deep_merge(module.params["settings"], module.params["secret_settings"])
    remove = module.params["remove"]
    if module.params["appservices"] is not None and (LIST_KEY in settings or LIST_KEY in remove):
        module.fail_json(msg="%s is set by appservices; leave it out of settings and remove" % LIST_KEY)
    both = sorted(set(settings) & set(remove))
    if both:
        module.fail_json(msg="keys both in settings and in remove: %s" % ", ".join(both))
    try:
        document = load_mapping(module.params["path"])
    except YamlFileError as exc:
        module.fail_json(msg=str(exc))
    for key, wanted in module.params["expect"].items():
        if document.data.get(key) != wanted:
            # A secret-like key's values are not shown (a database password would be).
            found, expected = ("(hidden)", "(hidden)") if is_secret_like(key) else (document.data.get(key), wanted)
            module.fail_json(msg="%s: key '%s' is %r, expected %r. Refusing to change this file; "
                                 "if the value is right, fix the variable that sets it."
                                 % (module.params["path"], key, found, expected))

    file_order = list(document.data) + [key for key in settings if key not in document.data]
    changed_keys = {key for key, value in settings.items() if set_key(document.data, key, value)}
    changed_keys.update(key for key in remove if delete_key(document.data, key))
    if module.params["appservices"] is not None:
        try:
            listed = plan_appservices(document, module.params["appservices"], module.check_mode)
        except (RegistrationError, YamlFileError) as exc:
            module.fail_json(msg=str(exc))
        # A missing key and an empty list mean the same to Synapse: no change.
        if listed != list(document.data.get(LIST_KEY) or []) and set_key(document.data, LIST_KEY, listed):
            changed_keys.add(LIST_KEY)
            if LIST_KEY not in file_order:
                file_order.append(LIST_KEY)
    if module.params["validate"] and "%s" not in module.params["validate"]:
        module.fail_json(msg="validate must contain %%s (the new file's path), got %r" % (module.params["validate"],))
    result = write_if_changed(module, document, bool(changed_keys), secret_paths=SECRET_PATHS,
                              validate=module.params["validate"], backup_path=module.params["backup_path"])
    result["changed_keys"] = [key for key in file_order if key in changed_keys]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
