# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""switchboard.matrix.container: community.docker.docker_container, without its module run when
the container is already exactly what these options made it (see the module's documentation)."""

from __future__ import annotations

import hashlib
import json
import shlex

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

DOCKER_CONTAINER = "community.docker.docker_container"

# The label that carries the digest of the options a container was made with.
CONFIG_LABEL = "switchboard.config-hash"

# Actions of one run, not part of what the container is: a restart asked for now must not
# make the next run see another configuration.
_NOT_CONFIGURATION = frozenset(("restart", "recreate", "force_kill", "removal_wait_timeout"))

# Options that make docker_container act each time, or talk to another daemon than the
# host's `docker` command does: these always go to the module.
_ALWAYS_MODULE = frozenset((
    "restart", "recreate", "docker_host", "tls", "tls_hostname", "validate_certs", "ca_path",
    "client_cert", "client_key", "api_version", "use_ssh_client",
    # What `docker update` changes on a running container: compared by the module only.
    "memory", "memory_reservation", "memory_swap", "cpus", "cpu_period", "cpu_quota", "cpu_shares",
    "cpuset_cpus", "cpuset_mems", "blkio_weight", "pids_limit", "kernel_memory",
))


def config_hash(options, env_file_digest=""):
    """Digest of the options that describe the container, and of the content of its env_file
    (docker_container reads that file on the host): the same options, the same digest."""
    described = {key: value for key, value in options.items() if key not in _NOT_CONFIGURATION}
    described["env_file content"] = env_file_digest
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def with_config_label(options, env_file_digest=""):
    """The options, with the digest of the others among the container's labels."""
    labelled = dict(options)
    labels = dict(options.get("labels") or {})
    labels[CONFIG_LABEL] = config_hash(options, env_file_digest)
    labelled["labels"] = labels
    return labelled


def needs_module(options):
    """Why these options always need docker_container's own run, or None."""
    if options.get("state", "started") != "started":
        return "state %s" % options.get("state")
    for key in sorted(_ALWAYS_MODULE):
        if options.get(key) not in (None, False):
            return "option %s" % key
    # A pull of an image the host has already, each time; a container run until it exits.
    if options.get("pull") not in (None, False, "missing", "never"):
        return "option pull"
    if options.get("detach") is False:
        return "option detach"
    return None


def inspect_command(name, image, env_file=None):
    """One shell command: the env_file's digest (when given), the container's inspect document,
    and the image's ID, each part after a separator line."""
    parts = ["docker container inspect %s 2>/dev/null" % shlex.quote(name),
             "docker image inspect --format '{{.Id}}' %s 2>/dev/null" % shlex.quote(image)]
    if env_file:
        parts.insert(0, "sha256sum < %s 2>/dev/null" % shlex.quote(env_file))
    return "; echo; echo ---; ".join(parts)


def parse_inspect(stdout, env_file=None):
    """(the env_file's digest or '', the container's inspect document or None, the image's ID or '')
    from inspect_command's output."""
    parts = ("\n" + stdout).split("\n---\n")
    if len(parts) != (3 if env_file else 2):
        return "", None, ""
    env_file_digest = parts.pop(0).split(" ")[0].strip() if env_file else ""
    try:
        documents = json.loads(parts[0]) if parts[0].strip() else []
    except ValueError:
        documents = []
    container = documents[0] if isinstance(documents, list) and documents and isinstance(documents[0], dict) else None
    return env_file_digest, container, parts[1].strip()


def _network_names(networks):
    return {entry.get("name") for entry in networks or [] if isinstance(entry, dict)}


def difference(options, container, image_id):
    """What differs between the container and what the labelled options make (None: nothing).

    The label covers everything the options set. Besides it, only what can change on a
    container without recreating it: running or not, the image its reference names now, its
    restart policy (`docker update`) and its networks (`docker network connect/disconnect`)."""
    if container is None:
        return "no such container"
    config = container.get("Config") or {}
    state = container.get("State") or {}
    host_config = container.get("HostConfig") or {}
    if (config.get("Labels") or {}).get(CONFIG_LABEL) != options["labels"][CONFIG_LABEL]:
        return "made with other options"
    if state.get("Status") != "running":
        return "status %s" % state.get("Status")
    if not image_id or container.get("Image") != image_id:
        return "the image %s names another image now" % options.get("image")
    if "restart_policy" in options:
        policy = (host_config.get("RestartPolicy") or {}).get("Name") or "no"
        if policy != options["restart_policy"]:
            return "restart policy %s" % policy
    if "networks" in options:
        attached = set(((container.get("NetworkSettings") or {}).get("Networks") or {}).keys())
        wanted = _network_names(options["networks"])
        strict = (options.get("comparisons") or {}).get("networks") == "strict"
        if not wanted <= attached or (strict and attached != wanted):
            return "networks %s" % ", ".join(sorted(attached))
    return None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        options = dict(self._task.args)
        always_module = needs_module(options)
        env_file = options.get("env_file")
        env_file_digest, container, image_id = "", None, ""
        # A look only where it can spare the module run, or where the label needs the
        # env_file's digest (a restart writes the label the next run compares).
        if options.get("state", "started") == "started" and options.get("name") and options.get("image") and (
                always_module is None or env_file):
            answer = self._low_level_execute_command(inspect_command(options["name"], options["image"], env_file),
                                                     sudoable=True)
            env_file_digest, container, image_id = parse_inspect(
                to_text(answer.get("stdout", ""), errors="surrogate_or_strict"), env_file)
        options = with_config_label(options, env_file_digest)
        if always_module is None and difference(options, container, image_id) is None:
            # What docker_container returns when it finds nothing to do.
            result.update(changed=False, container=container)
            return result
        result.update(self._execute_module(module_name=DOCKER_CONTAINER, module_args=options, task_vars=task_vars))
        return result
