# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host half of deployment_state: what a deployment looks like, and what differs."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat

RECORD_VERSION = 1


def _file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(path):
    """One line per path: type, mode, owner, group, and the content digest or link target."""
    info = os.lstat(path)
    owner = "%04o %d %d" % (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    if stat.S_ISLNK(info.st_mode):
        return "link %s -> %s" % (owner, os.readlink(path))
    if stat.S_ISDIR(info.st_mode):
        return "dir %s" % owner
    if stat.S_ISREG(info.st_mode):
        return "file %s %s" % (owner, _file_digest(path))
    return "other %s" % owner


def _outermost(paths):
    kept = []
    for path in sorted(set(os.path.normpath(path) for path in paths)):
        if not any(path == root or path.startswith(root.rstrip("/") + "/") for root in kept):
            kept.append(path)
    return kept


def file_fingerprint(paths, excluded_paths):
    def excluded(path):
        return any(fnmatch.fnmatchcase(path, pattern.rstrip("/")) for pattern in excluded_paths)

    files = {}
    for root in _outermost(paths):
        if not os.path.lexists(root):
            files[root] = "missing"
            continue
        files[root] = _entry(root)
        if excluded(root) or not os.path.isdir(root) or os.path.islink(root):
            continue
        for directory, subdirectories, names in os.walk(root):
            for name in names + subdirectories:
                path = os.path.join(directory, name)
                if excluded(path) and name in names:
                    continue
                try:
                    files[path] = _entry(path)
                except OSError as error:  # gone while walking (a service's runtime file)
                    files[path] = "unreadable %s" % error.strerror
            # An excluded directory counts with its own mode and owner, not its contents.
            subdirectories[:] = sorted(name for name in subdirectories
                                       if not excluded(os.path.join(directory, name))
                                       and not os.path.islink(os.path.join(directory, name)))
    return files


def _lines(run_command, argv):
    rc, out, err = run_command(argv)
    if rc != 0:
        return None, (err or out).strip().splitlines()[-1:] or ["exit code %d" % rc]
    return [line for line in out.splitlines() if line.strip()], None


def docker_fingerprint(network, run_command):
    """The network's ID, and for each container on it: ID, running, image reference and image IDs."""
    ids, error = _lines(run_command, ["docker", "network", "inspect", "--format", "{{.Id}}", network])
    if error or not ids:
        return {"error": "Docker network %s: %s" % (network, error[0] if error else "docker gave no ID")}
    result = {"network": ids[0], "containers": {}}
    containers, error = _lines(run_command, ["docker", "ps", "--all", "--quiet", "--no-trunc",
                                             "--filter", "network=" + network])
    if error:
        return {"error": "Docker containers: %s" % error[0]}
    if not containers:
        return result
    # The state as JSON: a template naming .State.Health fails on a container without a
    # health check (Docker's templates refuse a missing map key).
    rows, error = _lines(run_command, ["docker", "container", "inspect", "--format",
                                       "{{.Name}}\t{{.Id}}\t{{.Config.Image}}\t{{.Image}}\t{{.RestartCount}}"
                                       "\t{{json .State}}"]
                         + containers)
    rows = [row.split("\t") for row in rows or []]
    states = [_json_object(row[5]) if len(row) == 6 else None for row in rows]
    if error or any(len(row) != 6 or not row[4].isdigit() for row in rows) or None in states:
        return {"error": "Docker containers: %s" % (error[0] if error else "docker gave an answer of another format")}
    references = sorted({row[2] for row in rows})
    images, error = _lines(run_command, ["docker", "image", "inspect", "--format", "{{.Id}}"] + references)
    named = dict(zip(references, images)) if not error and len(images) == len(references) else {}
    for (name, container_id, reference, image, restarts, _state), state in zip(rows, states):
        health = state.get("Health")
        result["containers"][name.lstrip("/")] = {
            "id": container_id,
            "running": state.get("Running") is True,
            "image": reference,
            "image_id": image,
            "image_id_of_reference": named.get(reference, "not found"),
            # Docker's restarts of a crashing container (its restart policy), and its state:
            # a container that is up but failing is a fault the fast path must not bless.
            "restarts": int(restarts),
            "status": str(state.get("Status", "")),
            "health": str(health.get("Status", "")) if isinstance(health, dict) else "none",
        }
    return result


def _json_object(text):
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# Read afresh at each probe, never compared with the record: they change on their own
# (a health check "starting" after a restart), and only their fault values matter.
_CONTAINER_STATE_NOW = ("status", "health")


def _container_fault(name, before, after):
    """What is wrong with a container that the record says was fine, or None."""
    if after.get("status") == "restarting":
        return "container %s: restarting (Docker restarts it after it exits: a crash loop?)" % name
    if after.get("health") == "unhealthy":
        return "container %s: unhealthy (its health check fails)" % name
    restarted = after.get("restarts", 0) - before.get("restarts", 0)
    if restarted > 0:
        return "container %s: restarted %d time%s by Docker since the last complete run (it exited)" % (
            name, restarted, "" if restarted == 1 else "s")
    return None


def package_fingerprint(packages, run_command):
    """Each package's dpkg status ("ii " when installed), or "not installed"."""
    if not packages:
        return {}
    _rc, out, _err = run_command(["dpkg-query", "--show", "--showformat=${Package}\t${db:Status-Abbrev}\n"]
                                 + list(packages))
    found = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    return {name: found.get(name, "not installed") for name in packages}


def host_fingerprint(paths, excluded_paths, network, packages, run_command):
    return {"files": file_fingerprint(paths, excluded_paths), "docker": docker_fingerprint(network, run_command),
            "packages": package_fingerprint(packages, run_command)}


def _describe_file(path, before, after):
    if before is None:
        return "%s: added" % path
    if after is None:
        return "%s: removed" % path
    old, new = before.split(" "), after.split(" ")
    if old[0] != new[0]:
        return "%s: now a %s, was a %s" % (path, new[0], old[0])
    changes = []
    if old[1:2] != new[1:2]:
        changes.append("mode %s, was %s" % (new[1], old[1]))
    if old[2:4] != new[2:4]:
        changes.append("owner %s, was %s" % (":".join(new[2:4]), ":".join(old[2:4])))
    if old[4:] != new[4:]:
        changes.append("content changed")
    return "%s: %s" % (path, ", ".join(changes))


def _describe_container(name, before, after):
    if before is None:
        return "container %s: added" % name
    if after is None:
        return "container %s: removed" % name
    if before["id"] != after["id"]:
        return "container %s: recreated (another container ID)" % name
    if before["running"] and not after["running"]:
        return "container %s: stopped" % name
    if after["image_id"] != after["image_id_of_reference"]:
        return "container %s: %s now names another image, or none" % (name, after["image"])
    return "container %s: changed" % name


def compare(before, after):
    """Human-readable differences between two host fingerprints; empty when they are equal."""
    differences = []
    old_files, new_files = before.get("files", {}), after.get("files", {})
    for path in sorted(set(old_files) | set(new_files)):
        if old_files.get(path) != new_files.get(path):
            differences.append(_describe_file(path, old_files.get(path), new_files.get(path)))
    old_packages, new_packages = before.get("packages", {}), after.get("packages", {})
    for name in sorted(set(old_packages) | set(new_packages)):
        if old_packages.get(name) != new_packages.get(name):
            now, was = new_packages.get(name, "not checked"), old_packages.get(name, "not checked")
            differences.append("package %s: %s, was %s" % (name, now.strip(), was.strip()))
    old_docker, new_docker = before.get("docker", {}), after.get("docker", {})
    if "error" in new_docker:
        differences.append(new_docker["error"])
    elif "error" in old_docker or old_docker.get("network") != new_docker.get("network"):
        differences.append("Docker network: recreated or new")
    else:
        old_containers, new_containers = old_docker.get("containers", {}), new_docker.get("containers", {})
        for name in sorted(set(old_containers) | set(new_containers)):
            old, new = old_containers.get(name), new_containers.get(name)
            if old is not None and new is not None:
                # Faults only of the same container, still running: a recreated or stopped one
                # says so first (a container made by hand may also fail its image's health check).
                same_and_running = old["id"] == new["id"] and old.get("running") and new.get("running")
                fault = _container_fault(name, old, new) if same_and_running else None
                old, new = ({key: value for key, value in container.items() if key not in _CONTAINER_STATE_NOW}
                            for container in (old, new))
                if fault:
                    differences.append(fault)
                    continue
            if old != new:
                differences.append(_describe_container(name, old, new))
    return differences
