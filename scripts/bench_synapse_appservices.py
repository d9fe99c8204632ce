#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time one run of switchboard.matrix.synapse_appservices against 200 registrations.

homeserver.yaml lists 199 registrations; the run adds the 200th, so it reads and checks
all 200 files, edits the list and writes the file: the slowest path. Runs main() in this
process and prints the wall time. Exits 1 if it takes 1 s or more.

    python scripts/bench_synapse_appservices.py [--count 200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.switchboard.matrix.plugins.modules import synapse_appservices  # noqa: E402

LIMIT_SECONDS = 1.0

REGISTRATION = """\
id: bridge{n}
url: http://bridge{n}:29317
as_token: as_{n:04d}_0123456789abcdef0123456789abcdef0123456789abcdef01234567
hs_token: hs_{n:04d}_0123456789abcdef0123456789abcdef0123456789abcdef01234567
sender_localpart: bridge{n}bot
rate_limited: false
namespaces:
  users:
    - regex: '@bridge{n}_.*:example\\.org'
      exclusive: true
  aliases:
    - regex: '#bridge{n}_.*:example\\.org'
      exclusive: true
de.sorunome.msc2409.push_ephemeral: true
"""

HOMESERVER = """\
# Configuration file for Synapse.
server_name: "example.org"
pid_file: /data/homeserver.pid
listeners:
  - port: 8008
    tls: false
    type: http
    x_forwarded: true
    resources:
      - names: [client, federation]
        compress: false
database:
  name: psycopg2
  args:
    user: synapse
    database: synapse
    host: postgres
report_stats: false
"""


def prepare(root, count):
    bridges = os.path.join(root, "bridges")
    data = os.path.join(root, "synapse", "data")
    os.makedirs(data)
    registrations = []
    for n in range(count):
        path = os.path.join(bridges, "bridge%d" % n, "registration.yaml")
        os.makedirs(os.path.dirname(path))
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(REGISTRATION.format(n=n))
        registrations.append(path)
    listed = "".join("  - /bridges/bridge%d/registration.yaml\n" % n for n in range(count - 1))
    homeserver = os.path.join(data, "homeserver.yaml")
    with open(homeserver, "w", encoding="utf-8") as handle:
        handle.write(HOMESERVER + "app_service_config_files:\n" + listed)
    return {
        "path": homeserver,
        "registrations": registrations[-1:],
        "path_map": {data: "/data", bridges: "/bridges"},
    }


def run_module(args):
    """Run the module's main() in-process; return its JSON result."""
    stdout = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(stdout):
        try:
            synapse_appservices.main()
        except SystemExit:
            pass
    return json.loads(stdout.getvalue())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="number of registrations (default 200)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        args = prepare(root, options.count)
        start = time.perf_counter()
        result = run_module(args)
        elapsed = time.perf_counter() - start
    if result.get("failed") or not result.get("changed") or len(result["app_service_config_files"]) != options.count:
        print("unexpected result: %s" % result, file=sys.stderr)
        return 2
    print("synapse_appservices, %d registrations: %.3f s (limit %.1f s)" % (options.count, elapsed, LIMIT_SECONDS))
    return 0 if elapsed < LIMIT_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
