#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: appservice_ping
short_description: Wait until Synapse reaches an appservice (a bridge), or say why it does not
version_added: 0.1.0
description:
  - Asks Synapse to ping the appservice (C(POST /_matrix/client/v1/appservice/<id>/ping), client
    API v1.7). Synapse then calls the appservice's C(/_matrix/app/v1/ping) with its C(hs_token),
    so a success proves both directions work - Synapse reaches the bridge and the bridge accepts
    Synapse's token.
  - The request is made from inside Synapse's container (C(docker exec)), so Synapse need not be
    published on the host. The token goes to C(docker exec) in its environment, never on a
    command line.
  - Returns at once when the appservice answers. The wait is bounded by O(timeout) and ends
    early when the bridge's container does not exist, is not running, or keeps restarting once
    Synapse is healthy (a crash loop). The failure says which, with the container's last log lines.
author:
  - Switchboard developers (@switchboard)
extends_documentation_fragment:
  - switchboard.matrix._attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is asked, since a check run starts and restarts nothing to wait for.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  appservice_id:
    description:
      - The C(id) of the appservice's registration. Give this, O(as_token) and O(container), or O(appservices).
    type: str
  as_token:
    description:
      - The appservice's C(as_token). Synapse only pings an appservice for the holder of its token.
    type: str
  container:
    description:
      - The appservice's container, watched while waiting.
    type: str
  appservices:
    description:
      - Several appservices to wait for in one module run. One request from Synapse's container
        pings them all; those that do not answer then are waited for one after the other (each
        bounded by O(timeout)), and the first that is not reached fails the task.
    type: list
    elements: dict
    suboptions:
      appservice_id:
        description: The C(id) of its registration.
        type: str
        required: true
      as_token:
        description: Its C(as_token).
        type: str
        required: true
      container:
        description: Its container.
        type: str
        required: true
  synapse_container:
    description:
      - Synapse's container, which makes the request on its own loopback (port 8008).
    type: str
    default: synapse
  timeout:
    description:
      - Seconds to wait at most.
    type: int
    default: 120
  log_lines:
    description:
      - How many of the container's last log lines a failure shows.
    type: int
    default: 25
"""

EXAMPLES = r"""
- name: Read the bridge's appservice token
  switchboard.matrix.stored_secrets:
    directory: /matrix/secrets
    names: [bridge-whatsapp-as-token]
  register: tokens
  no_log: true

- name: Wait until Synapse reaches the WhatsApp bridge
  switchboard.matrix.appservice_ping:
    appservice_id: whatsapp
    as_token: "{{ tokens.secrets['bridge-whatsapp-as-token'] }}"
    container: mautrix-whatsapp

- name: Wait until Synapse reaches two bridges, in one module run
  switchboard.matrix.appservice_ping:
    appservices:
      - {appservice_id: whatsapp, as_token: "{{ tokens.secrets['bridge-whatsapp-as-token'] }}", container: mautrix-whatsapp}
      - {appservice_id: telegram, as_token: "{{ tokens.secrets['bridge-telegram-as-token'] }}", container: mautrix-telegram}
"""

RETURN = r"""
seconds:
  description: How long the wait took (for all of O(appservices)).
  returned: success, outside check mode
  type: float
  sample: 3.2
reason:
  description:
    - Why the wait failed - V(missing), V(stopped), V(crash-looping) or V(timeout).
  returned: failure
  type: str
  sample: stopped
"""

import json
import time
import urllib.parse

from ansible.module_utils.basic import AnsibleModule

# Run by Synapse's own Python inside its container (the image has no curl); exits 0 only
# on a 2xx answer.
PING = (
    "import http.client, json, os, sys\n"
    "connection = http.client.HTTPConnection('127.0.0.1', 8008, timeout=10)\n"
    "body = json.dumps(dict(transaction_id='switchboard-readiness'))\n"
    "headers = {'Authorization': 'Bearer ' + os.environ['AS_TOKEN'], 'Content-Type': 'application/json'}\n"
    "connection.request('POST', '/_matrix/client/v1/appservice/' + sys.argv[1] + '/ping', body, headers)\n"
    "raise SystemExit(0 if 200 <= connection.getresponse().status < 300 else 1)\n"
)
# The same for several appservices in one exec: argv holds their ids, AS_TOKEN_<n> the token
# of the n-th; prints the position of each that answered.
PING_EACH = (
    "import http.client, json, os, sys\n"
    "body = json.dumps(dict(transaction_id='switchboard-readiness'))\n"
    "for n, appservice in enumerate(sys.argv[1:]):\n"
    "    headers = {'Authorization': 'Bearer ' + os.environ['AS_TOKEN_%d' % n], 'Content-Type': 'application/json'}\n"
    "    try:\n"
    "        connection = http.client.HTTPConnection('127.0.0.1', 8008, timeout=10)\n"
    "        connection.request('POST', '/_matrix/client/v1/appservice/' + appservice + '/ping', body, headers)\n"
    "        if 200 <= connection.getresponse().status < 300:\n"
    "            print(n)\n"
    "    except OSError:\n"
    "        pass\n"
)
HEALTH = (
    "import http.client\n"
    "connection = http.client.HTTPConnection('127.0.0.1', 8008, timeout=2)\n"
    "connection.request('GET', '/health')\n"
    "raise SystemExit(0 if connection.getresponse().status == 200 else 1)\n"
)
# Restarts while Synapse was down (it restarts when a bridge changes) are normal; this many
# more once Synapse answers mean the bridge itself keeps failing.
CRASH_LOOP_RESTARTS = 2
POLL_SECONDS = 2


class Waiter:
    """The wait, with the clock, the pause and the docker commands as seams for tests."""

    def __init__(self, module, clock=time.monotonic, sleep=time.sleep):
        self.module, self.clock, self.sleep = module, clock, sleep
        self.params = module.params

    def docker(self, *argv, environ=None):
        return self.module.run_command(["docker"] + list(argv), environ_update=environ or {})

    def pinged(self):
        quoted = urllib.parse.quote(self.params["appservice_id"], safe="")
        rc, _out, _err = self.docker("exec", "-e", "AS_TOKEN", self.params["synapse_container"], "python", "-c", PING,
                                     quoted, environ={"AS_TOKEN": self.params["as_token"]})
        return rc == 0

    def pinged_each(self, targets):
        """Positions in targets of the appservices that answer now: one exec for all of them."""
        environ = {"AS_TOKEN_%d" % n: target["as_token"] for n, target in enumerate(targets)}
        argv = ["exec"] + [arg for name in environ for arg in ("-e", name)]
        argv += [self.params["synapse_container"], "python", "-c", PING_EACH]
        argv += [urllib.parse.quote(target["appservice_id"], safe="") for target in targets]
        rc, out, _err = self.docker(*argv, environ=environ)
        return {int(line) for line in out.split()} if rc == 0 else set()

    def synapse_healthy(self):
        return self.docker("exec", self.params["synapse_container"], "python", "-c", HEALTH)[0] == 0

    def state(self):
        """(State mapping, restart count) of the bridge's container, or None when it does not exist."""
        rc, out, _err = self.docker("inspect", self.params["container"])
        if rc != 0:
            return None
        info = json.loads(out)[0]
        return info["State"], info["RestartCount"]

    def wait(self):
        """(None, seconds) when reached, else (reason, message)."""
        container, started, baseline = self.params["container"], self.clock(), None
        while True:
            if self.pinged():
                return None, round(self.clock() - started, 1)
            found = self.state()
            if found is None:
                return "missing", "the container %s does not exist" % container
            state, restarts = found
            if state.get("Status") in ("exited", "dead", "created"):
                return "stopped", "the container %s is not running (%s, exit code %s)" % (
                    container, state.get("Status"), state.get("ExitCode"))
            if baseline is None and self.synapse_healthy():
                baseline = restarts
            elapsed = self.clock() - started
            if baseline is not None and restarts - baseline >= CRASH_LOOP_RESTARTS:
                return "crash-looping", "the container %s is crash-looping: it restarted %d times in %.0f s (exit code %s)" % (
                    container, restarts - baseline, elapsed, state.get("ExitCode"))
            if elapsed >= self.params["timeout"]:
                return "timeout", "Synapse got no answer from the container %s within %d s (it is %s)" % (
                    container, self.params["timeout"], state.get("Status"))
            self.sleep(POLL_SECONDS)

    def last_logs(self):
        rc, out, err = self.docker("logs", "--tail", str(self.params["log_lines"]), self.params["container"])
        return (out + err).strip() if rc == 0 else "(no logs: %s)" % err.strip()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            appservice_id=dict(type="str"),
            as_token=dict(type="str", no_log=True),
            container=dict(type="str"),
            appservices=dict(type="list", elements="dict", options=dict(
                appservice_id=dict(type="str", required=True),
                as_token=dict(type="str", required=True, no_log=True),
                container=dict(type="str", required=True))),
            synapse_container=dict(type="str", default="synapse"),
            timeout=dict(type="int", default=120),
            log_lines=dict(type="int", default=25),
        ),
        supports_check_mode=True,
        required_one_of=[("appservice_id", "appservices")],
        mutually_exclusive=[("appservice_id", "appservices")],
        required_together=[("appservice_id", "as_token", "container")],
    )
    if module.params["timeout"] < 0 or module.params["log_lines"] < 0:
        module.fail_json(msg="timeout and log_lines must not be negative")
    if module.check_mode:
        module.exit_json(changed=False)
    waiter = Waiter(module)
    single = {key: module.params[key] for key in ("appservice_id", "as_token", "container")}
    seconds = 0.0
    targets = module.params["appservices"] or [single]
    # Usually every one answers at once: one exec asks them all; the others are waited for.
    reached = waiter.pinged_each(targets) if len(targets) > 1 else set()
    for target in (target for n, target in enumerate(targets) if n not in reached):
        waiter.params = dict(module.params, **target)
        reason, detail = waiter.wait()
        if reason is not None:
            module.fail_json(reason=reason, msg="Synapse could not reach the appservice %s (container %s): %s. "
                             "Last log lines of %s:\n%s" % (target["appservice_id"], target["container"], detail,
                                                            target["container"], waiter.last_logs()))
        seconds += detail
    module.exit_json(changed=False, seconds=round(seconds, 1))


if __name__ == "__main__":
    main()
