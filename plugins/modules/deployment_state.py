#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: deployment_state
short_description: Tell in one module run whether a Switchboard deployment is exactly as the last complete run left it
version_added: 0.2.0
description:
  - With O(state=record), at the end of a complete run, fingerprints everything the run manages on
    the host and keeps the fingerprint in a file. That is every file and directory under O(paths) (content,
    type, mode, owner and group), the Docker network O(docker_network) and every container on it
    (ID, running or not, image reference, the image it runs and the image its reference names now), and
    the installed state of the Debian O(packages).
  - With O(state=probe), at the start of the next run, fingerprints the host the same way, and compares
    it and the digest of the run's inputs with the record. C(up_to_date) is true only when nothing
    differs, so a playbook can skip its roles and a run that would change nothing costs one module run.
  - Anything else is reported in RV(differences), such as a file edited, added, removed or given another mode or
    owner; a container stopped, removed or recreated by hand; the network recreated; Docker not
    answering; a package removed; other settings, tags or Switchboard code (the inputs digest).
  - Paths matching O(excluded_paths) are data the services own, such as database files. A directory
    among them counts by its own type, mode and owner only, not by what it holds; a file not at all.
  - With O(state=absent), removes the record. A playbook does that before it changes anything, so a run
    that does not finish leaves no record and the next run does all of its work.
  - The action plugin computes the inputs digest on the controller from O(variables_matching) and
    O(extra_inputs) and the collection's own code; those values never leave the controller.
author:
  - Switchboard developers (@switchboard)
extends_documentation_fragment:
  - switchboard.matrix._attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is recorded or removed.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - The record file is the module's own bookkeeping; writing or removing it is not reported as a change.
      - A probe only reads.
options:
  state:
    description:
      - V(probe) compares the host with the record; V(record) writes the record; V(absent) removes it.
    type: str
    choices: [probe, record, absent]
    default: probe
  path:
    description:
      - The record file on the host. Written atomically with mode C(0600).
    type: path
    required: true
  inputs_digest:
    description:
      - Digest of the run's inputs. With O(state=probe) the action plugin sets it from
        O(variables_matching) and O(extra_inputs); with O(state=record) pass the C(inputs_digest) the
        probe returned at the start of the same run.
    type: str
  variables_matching:
    description:
      - Regular expression; every variable whose name matches goes into the inputs digest, templated.
        Handled on the controller.
    type: str
  extra_inputs:
    description:
      - Any other data that goes into the inputs digest, such as the run's tags. Handled on the controller.
    type: raw
  paths:
    description:
      - Directories to fingerprint, recursively. A path under another one is walked once. Only with
        O(state=record); the probe walks the paths of the record.
    type: list
    elements: path
    default: []
  excluded_paths:
    description:
      - Paths or shell patterns (C(fnmatch), where C(*) also matches C(/)) of service data. Directories
        count by their own type, mode and owner only, files not at all. Only with O(state=record).
    type: list
    elements: str
    default: []
  docker_network:
    description:
      - The Docker network whose containers are fingerprinted. Only with O(state=record).
    type: str
  packages:
    description:
      - Debian packages whose installed state is fingerprinted (C(dpkg-query)). Only with O(state=record).
    type: list
    elements: str
    default: []
notes:
  - The digests of secret files are kept in the record, never their content.
"""

EXAMPLES = r"""
- name: Compare the host with the end of the last complete run
  switchboard.matrix.deployment_state:
    path: /matrix/.switchboard-state.json
    variables_matching: ^(synapse|postgres)_
    extra_inputs: {tags: "{{ ansible_run_tags }}"}
  register: deployment

- name: Skip everything when nothing differs
  ansible.builtin.meta: end_host
  when: deployment.up_to_date

- name: Forget the record until this run is complete
  switchboard.matrix.deployment_state:
    state: absent
    path: /matrix/.switchboard-state.json

# ... the roles ...

- name: Record what this complete run left
  switchboard.matrix.deployment_state:
    state: record
    path: /matrix/.switchboard-state.json
    inputs_digest: "{{ deployment.inputs_digest }}"
    paths: [/matrix]
    excluded_paths: [/matrix/postgres/data, /matrix/synapse/data/media_store]
    docker_network: matrix
    packages: [docker.io]
  when: not ansible_check_mode
"""

RETURN = r"""
up_to_date:
  description: Whether the inputs and the host are exactly as the record says (O(state=probe)).
  returned: success
  type: bool
  sample: false
differences:
  description: What differs from the record, at most 20 entries (O(state=probe)).
  returned: success
  type: list
  elements: str
  sample: ["/matrix/synapse/data/homeserver.yaml: content changed", "container matrix-bot: stopped"]
inputs_digest:
  description: The inputs digest this probe compared; pass it to O(state=record) at the end of the run.
  returned: success
  type: str
  sample: 3f1c0e...
"""

import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.switchboard.matrix.plugins.module_utils._fingerprint import (
    RECORD_VERSION,
    compare,
    host_fingerprint,
)
from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import (
    YamlFileError,
    atomic_write,
    read_regular_file,
    require_absolute_paths,
)


def command_runner(module):
    """run_command that answers 'not installed' for a missing program instead of failing the module."""
    def run(argv):
        program = module.get_bin_path(argv[0])
        if program is None:
            return 127, "", "the %s command is not installed" % argv[0]
        return module.run_command([program] + argv[1:])
    return run


RECORD_KEYS = {"inputs", "paths", "excluded_paths", "docker_network", "packages", "host"}
# A record holds a line per file of the deployment; one bigger than this is not ours.
MAX_RECORD_BYTES = 64 * 1024 * 1024
# Passed to docker and dpkg-query as arguments: a name, never an option.
NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?")


def bad_paths(paths):
    """The entries of `paths` that may not be walked: the root, or a relative path, would walk the whole host."""
    return [path for path in paths if not isinstance(path, str) or not os.path.isabs(path) or not path.strip("/")]


def read_record(path):
    """The record at `path`, or None when there is none; raise YamlFileError when `path` is not a regular file."""
    if not os.path.lexists(path):
        return None
    data, _info = read_regular_file(path, MAX_RECORD_BYTES)
    try:
        record = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    # Another version, or a record damaged by hand, counts as none: the run then does all of its work.
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION or not RECORD_KEYS <= set(record):
        return None
    return record


def write_record(path, record):
    """Write `record` to `path` atomically, mode 0600; raise YamlFileError naming the file when that fails."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise YamlFileError("%s: cannot create the directory %s: %s" % (path, directory, exc.strerror or exc)) from None
    atomic_write(path, json.dumps(record, sort_keys=True))
    os.chmod(path, 0o600)


def probe(module, params):
    digest = params["inputs_digest"]
    try:
        record = read_record(params["path"])
    except YamlFileError as exc:
        module.fail_json(msg="path: %s" % exc)
    if record is None:
        differences = ["no record of a complete run (the first run, or the last one did not finish)"]
    elif digest is None or record["inputs"] != digest:
        differences = ["the settings, the tags or Switchboard's code differ from the last complete run"]
    else:
        try:
            if not isinstance(record["paths"], list) or bad_paths(record["paths"]):
                raise ValueError("paths")  # damaged: walking "/" would take forever
            now = host_fingerprint(record["paths"], record["excluded_paths"], record["docker_network"],
                                   record["packages"], command_runner(module))
            differences = compare(record["host"], now)
        except (AttributeError, KeyError, TypeError, ValueError):
            differences = ["the record of the last complete run is damaged"]
    shown = differences[:20]
    if len(differences) > 20:
        shown.append("... and %d more" % (len(differences) - 20))
    module.exit_json(changed=False, up_to_date=not differences, differences=shown, inputs_digest=digest)


def record(module, params):
    if not params["inputs_digest"]:
        module.fail_json(msg="deployment_state: state=record needs inputs_digest (from the probe of this run)")
    if not params["docker_network"]:
        module.fail_json(msg="deployment_state: state=record needs docker_network")
    if not NETWORK_NAME.fullmatch(params["docker_network"]):
        module.fail_json(msg="docker_network must be a Docker network name (letters, digits, '_', '.', '-', "
                             "not starting with a symbol), got %r" % params["docker_network"])
    bad = [name for name in params["packages"] if not PACKAGE_NAME.fullmatch(name)]
    if bad:
        module.fail_json(msg="packages must be Debian package names, got %s" % ", ".join(repr(name) for name in bad))
    paths = sorted({os.path.normpath(path) for path in params["paths"]})
    host = host_fingerprint(paths, params["excluded_paths"], params["docker_network"], params["packages"],
                            command_runner(module))
    if not module.check_mode:
        try:
            write_record(params["path"], {
                "version": RECORD_VERSION,
                "inputs": params["inputs_digest"],
                "paths": paths,
                "excluded_paths": params["excluded_paths"],
                "docker_network": params["docker_network"],
                "packages": params["packages"],
                "host": host,
            })
        except (YamlFileError, OSError) as exc:
            module.fail_json(msg="path: %s" % exc)
    module.exit_json(changed=False, up_to_date=True, differences=[], inputs_digest=params["inputs_digest"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["probe", "record", "absent"], default="probe"),
            path=dict(type="path", required=True),
            inputs_digest=dict(type="str"),
            variables_matching=dict(type="str"),
            extra_inputs=dict(type="raw"),
            paths=dict(type="list", elements="path", default=[]),
            excluded_paths=dict(type="list", elements="str", default=[]),
            docker_network=dict(type="str"),
            packages=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    require_absolute_paths(module, "path")
    # The fingerprint walks these trees: a relative path or the root would walk the whole host.
    bad = bad_paths(module.params["paths"])
    if bad:
        module.fail_json(msg="paths must be absolute directories below /, got %s" % ", ".join(repr(p) for p in bad))
    state = module.params["state"]
    if state == "probe":
        probe(module, module.params)
    elif state == "record":
        record(module, module.params)
    else:
        path = module.params["path"]
        if os.path.isdir(path) and not os.path.islink(path):
            module.fail_json(msg="path: %s is a directory, not a record; refusing to remove it" % path)
        if not module.check_mode and os.path.lexists(path):
            try:
                os.remove(path)
            except OSError as exc:
                module.fail_json(msg="path: %s: cannot remove it: %s" % (path, exc.strerror or exc))
        module.exit_json(changed=False, up_to_date=False, differences=[], inputs_digest=None)


if __name__ == "__main__":
    main()
