# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to this collection: may change without notice.

from __future__ import annotations


class ModuleDocFragment:
    # Options of every module that talks to Synapse over HTTP (module_utils/_client.py HOMESERVER_ARGS).
    DOCUMENTATION = r"""
options:
  homeserver_url:
    description:
      - Base URL of Synapse's client listener, as seen from the managed host, for example
        V(http://127.0.0.1:8008). The admin API (C(/_synapse/admin)) must be reachable there.
      - Set it once for several tasks with C(module_defaults) and the C(group/switchboard.matrix.homeserver) action group.
    type: str
    required: true
  timeout:
    description:
      - Seconds to wait for each HTTP request.
    type: int
    default: 10
  retries:
    description:
      - How many times to retry a request after a connection error, an HTTP 5xx or an HTTP 429
        answer, so a homeserver that is still starting does not fail the task.
      - Waits between attempts are short and grow (0.5 s, 1 s, 2 s, ... at most 5 s); after an HTTP 429
        the module waits as long as Synapse's C(retry_after_ms) asks, at most 30 s.
      - V(0) sends each request once.
    type: int
    default: 5
  validate_certs:
    description:
      - Whether to verify the homeserver's TLS certificate when O(homeserver_url) is C(https).
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file of CA certificates to verify the homeserver's certificate with, instead of the system's.
    type: path
"""
