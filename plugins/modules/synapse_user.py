#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: synapse_user
short_description: Register a Matrix user or bot account on Synapse with the shared secret
version_added: 0.1.0
description:
  - Makes sure a local user exists on a Synapse homeserver, registering it through Synapse's
    shared-secret registration API (C(/_synapse/admin/v1/register)) when it does not.
  - Works while public registration is closed; it needs Synapse's C(registration_shared_secret).
  - A user that already exists is left as it is (C(changed=false)); its password, admin flag
    and user type are not compared or changed.
  - Can log the user in and return an access token, for example for a bot.
author:
  - Switchboard developers (@switchboard)
extends_documentation_fragment:
  - switchboard.matrix._attributes
  - switchboard.matrix._homeserver
attributes:
  check_mode:
    support: full
    details:
      - Asks C(/_matrix/client/v3/register/available) whether the user exists. When public
        registration is closed Synapse refuses that question, and the module looks up the
        user's profile instead (Synapse gives every new user a display name). A user whose
        profile is empty (a deactivated one) or a homeserver that hides profiles from
        anonymous requests makes the prediction C(changed=true), with a warning in the latter case.
      - No access token is returned in check mode.
  diff_mode:
    support: full
    details:
      - Shows whether the user existed before and exists after.
  idempotent:
    support: full
options:
  localpart:
    description:
      - Localpart of the user ID, the V(alice) in C(@alice:example.org).
      - Synapse allows lowercase letters V(a-z), digits and the characters C(. _ = - / +) only.
    type: str
    required: true
    aliases: [user]
  password:
    description:
      - Password to register the user with, and to log in with when O(return_access_token=true).
      - Set only when the user is created; an existing user's password is not changed.
    type: str
    required: true
  admin:
    description:
      - Whether a newly registered user is a server admin.
    type: bool
    default: false
  user_type:
    description:
      - Synapse user type of a newly registered user, for example V(bot) or V(support).
        Omit it for a normal user.
    type: str
  registration_shared_secret:
    description:
      - The C(registration_shared_secret) of Synapse's C(homeserver.yaml).
      - Exactly one of O(registration_shared_secret) and O(synapse_config_path) is required.
    type: str
  synapse_config_path:
    description:
      - Path of Synapse's C(homeserver.yaml) on the managed host, to read the
        C(registration_shared_secret) from, so the secret never passes through Ansible's variables.
      - The file is read the safe way for a directory Synapse can write in - no link followed,
        a regular file only, of bounded size - and a problem fails with a message naming the file.
    type: path
  return_access_token:
    description:
      - Log the user in (or take the token of the registration that created it) and return
        RV(access_token). Every login makes a new device unless O(device_id) is set.
    type: bool
    default: false
  device_id:
    description:
      - Device ID to log in with when O(return_access_token=true), so repeated runs reuse one
        device instead of adding one per run. Synapse makes one up when it is not set.
    type: str
notes:
  - The returned RV(access_token) is a secret; use C(no_log) on the task that registers it.
  - The user ID's server part comes from Synapse's C(/_matrix/key/v2/server) when the user
    already exists and no login was asked for.
seealso:
  - name: Synapse shared-secret registration
    description: The admin API this module uses.
    link: https://element-hq.github.io/synapse/latest/admin_api/register_api.html
"""

EXAMPLES = r"""
- name: Make sure the admin account exists
  switchboard.matrix.synapse_user:
    homeserver_url: http://127.0.0.1:8008
    localpart: admin
    password: "{{ matrix_admin_password }}"
    admin: true
    synapse_config_path: /matrix/synapse/data/homeserver.yaml

- name: Register the chatbot and get a token for it
  switchboard.matrix.synapse_user:
    homeserver_url: http://127.0.0.1:8008
    user: chatbot
    password: "{{ chatbot_password }}"
    user_type: bot
    registration_shared_secret: "{{ synapse_registration_shared_secret }}"
    return_access_token: true
    device_id: ANSIBLE
  register: chatbot
  no_log: true
"""

RETURN = r"""
user_id:
  description: Full Matrix user ID of the user.
  returned: when the homeserver tells its server name, which a standard Synapse does
  type: str
  sample: "@chatbot:example.org"
access_token:
  description: Access token of the user.
  returned: when O(return_access_token=true), outside check mode
  type: str
  sample: syt_Y2hhdGJvdA_kZtWJKBlqOcUzTmJzSnQO_0e5Yn1
device_id:
  description: Device the access token belongs to.
  returned: when O(return_access_token=true), outside check mode
  type: str
  sample: ANSIBLE
"""

import urllib.parse

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import (
    YamlFileError,
    load_plain,
    path_problem,
)
from ansible_collections.switchboard.matrix.plugins.module_utils._client import (
    HOMESERVER_ARGS,
    Homeserver,
    HomeserverError,
    localpart_problem,
    registration_mac,
)

REGISTER = "/_synapse/admin/v1/register"
AVAILABLE = "/_matrix/client/v3/register/available"
LOGIN = "/_matrix/client/v3/login"
SERVER_KEYS = "/_matrix/key/v2/server"
# The fields of Synapse's answers that this module reads (see answer_problem).
TOKEN_ANSWER = {"access_token": str, "device_id": (str, type(None))}


def server_name(hs):
    """The homeserver's server name, or None if it will not say."""
    try:
        return hs.request("GET", SERVER_KEYS, expect={"server_name": (str, type(None))}).get("server_name")
    except HomeserverError:
        return None


def user_id_of(localpart, name):
    return "@%s:%s" % (localpart, name) if name else None


def user_exists(module, hs, user_id):
    """True/False as Synapse sees it, None when the homeserver will not tell."""
    localpart = module.params["localpart"]
    try:
        hs.request("GET", AVAILABLE, query={"username": localpart})
        return False
    except HomeserverError as err:
        if err.errcode == "M_USER_IN_USE":
            return True
        if err.status != 403:
            raise
    # Registration is closed, so Synapse will not answer the question above. Registration gives
    # every user a display name, so a profile tells an existing user apart from a free name.
    if user_id:
        try:
            hs.request("GET", "/_matrix/client/v3/profile/" + urllib.parse.quote(user_id, safe="@:"))
            return True
        except HomeserverError as err:
            if err.status == 404:
                return False
            if err.status not in (401, 403):
                raise
    module.warn("Could not find out whether %s exists: registration is closed and profiles are not public. "
                "Check mode reports it as one to register." % localpart)
    return None


def register(module, hs):
    """Register the user; return the registration answer, or None if the user exists."""
    p = module.params
    nonce = hs.request("GET", REGISTER, expect={"nonce": str})["nonce"]
    body = dict(
        nonce=nonce, username=p["localpart"], password=p["password"], admin=p["admin"],
        mac=registration_mac(p["registration_shared_secret"], nonce, p["localpart"], p["password"],
                             p["admin"], p["user_type"]),
    )
    if p["user_type"]:
        body["user_type"] = p["user_type"]
    if not p["return_access_token"]:
        body["inhibit_login"] = True  # no token wanted, so leave no device behind
    elif p["device_id"]:
        body["device_id"] = p["device_id"]
    try:
        # The nonce is good for one request: never send it twice.
        expect = dict(TOKEN_ANSWER, user_id=str) if p["return_access_token"] else {"user_id": str}
        return hs.request("POST", REGISTER, body=body, resend=False, expect=expect)
    except HomeserverError as err:
        if err.errcode == "M_USER_IN_USE":
            return None
        raise


def login(module, hs):
    p = module.params
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": p["localpart"]},
        "password": p["password"],
        "initial_device_display_name": "switchboard.matrix",
    }
    if p["device_id"]:
        body["device_id"] = p["device_id"]
    return hs.request("POST", LOGIN, body=body, expect=TOKEN_ANSWER)


def hint(err):
    """What to check for the errors people actually run into."""
    error = err.error or ""
    if err.status == 403 and "HMAC" in error:
        return "Is registration_shared_secret right?"
    if "Shared secret registration is not enabled" in error:
        return "Set registration_shared_secret in homeserver.yaml and restart Synapse."
    if err.url.endswith(LOGIN) and err.errcode == "M_FORBIDDEN":
        return "The user exists with another password? This module sets the password only when it creates the user."
    if err.status == 404:
        return "Is homeserver_url Synapse's client listener, with /_synapse/admin reachable?"
    return None


def ensure_user(module, hs):
    p = module.params
    if module.check_mode:
        user_id = user_id_of(p["localpart"], server_name(hs))
        existed = user_exists(module, hs, user_id)
        result = dict(changed=existed is not True)
    else:
        answer = register(module, hs)
        existed = answer is None
        result = dict(changed=not existed)
        if p["return_access_token"]:
            if existed:
                answer = login(module, hs)
            result.update(access_token=answer["access_token"], device_id=answer.get("device_id"))
        user_id = answer["user_id"] if answer else user_id_of(p["localpart"], server_name(hs))
    if user_id:
        result["user_id"] = user_id
    if module._diff:
        result["diff"] = dict(before=dict(user=p["localpart"], exists=existed),
                              after=dict(user=p["localpart"], exists=True))
    return result


def read_shared_secret(module, path):
    """The registration_shared_secret of the homeserver.yaml at `path`, or fail saying why not."""
    problem = path_problem(path)
    if problem:
        module.fail_json(msg="synapse_config_path: " + problem)
    try:
        config = load_plain(path)
    except YamlFileError as err:
        module.fail_json(msg="synapse_config_path: %s" % err)
    secret = config.get("registration_shared_secret") if isinstance(config, dict) else None
    if not isinstance(secret, str) or not secret:
        module.fail_json(msg="%s has no registration_shared_secret (a non-empty string): accounts are "
                             "registered with it. Set it in homeserver.yaml and restart Synapse." % path)
    return secret


def main():
    module = AnsibleModule(
        argument_spec=dict(
            HOMESERVER_ARGS,
            localpart=dict(type="str", required=True, aliases=["user"]),
            password=dict(type="str", required=True, no_log=True),
            admin=dict(type="bool", default=False),
            user_type=dict(type="str"),
            registration_shared_secret=dict(type="str", no_log=True),
            synapse_config_path=dict(type="path"),
            return_access_token=dict(type="bool", default=False, no_log=False),
            device_id=dict(type="str"),
        ),
        mutually_exclusive=[("registration_shared_secret", "synapse_config_path")],
        required_one_of=[("registration_shared_secret", "synapse_config_path")],
        supports_check_mode=True,
    )
    if module.params["synapse_config_path"]:
        module.params["registration_shared_secret"] = read_shared_secret(module, module.params["synapse_config_path"])
    problem = localpart_problem(module.params["localpart"])
    if problem:
        module.fail_json(msg="localpart: " + problem)
    hs = Homeserver(module)
    try:
        result = ensure_user(module, hs)
    except HomeserverError as err:
        hs.fail(err, hint(err))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
