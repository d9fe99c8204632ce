# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Synapse's workers as data: the presets, their checks, and what they make of homeserver.yaml,
each worker's own file and the proxy's upstreams. Plain Python, so that the role, the wiring
and the unit tests all use the same rules (Synapse's docs/workers.md, 1.163)."""

from __future__ import annotations

import copy
import re

# A worker serves HTTP (what the proxy routes to it) and/or handles work the main process
# then leaves to it. Names are Synapse's worker_name and the tail of the container name.
SERVES = ("client", "federation", "media")
HANDLES = ("federation_sender", "pusher", "appservices", "user_directory", "background_tasks", "events")
# Only one process may do each of these (Synapse's docs: "cannot be load-balanced").
SINGLE = ("appservices", "user_directory", "background_tasks")
NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}\Z")

# Every worker listens on the main process's port inside its own container, so the image's
# health check (/health on 8008) works for all of them; stream writers add replication.
HTTP_PORT = 8008
REPLICATION_PORT = 9093

PRESETS = {
    "none": [],
    # Sync and the other client reads, federation reads, media, and the background senders off
    # the main process: what one busy community server benefits from first.
    "small": [
        {"name": "generic-1", "serves": ["client", "federation"], "handles": []},
        {"name": "federation-sender-1", "serves": [], "handles": ["federation_sender"]},
        {"name": "media-1", "serves": ["media"], "handles": []},
        {"name": "appservice-pusher-1", "serves": [], "handles": ["appservices", "pusher"]},
    ],
    # More readers, events written by their own process, and the periodic jobs off main too.
    "large": [
        {"name": "generic-1", "serves": ["client", "federation"], "handles": []},
        {"name": "generic-2", "serves": ["client", "federation"], "handles": []},
        {"name": "generic-3", "serves": ["client", "federation"], "handles": []},
        {"name": "event-persister-1", "serves": [], "handles": ["events"]},
        {"name": "federation-sender-1", "serves": [], "handles": ["federation_sender"]},
        {"name": "federation-sender-2", "serves": [], "handles": ["federation_sender"]},
        {"name": "media-1", "serves": ["media"], "handles": []},
        {"name": "appservice-pusher-1", "serves": [], "handles": ["appservices", "pusher"]},
        {"name": "background-1", "serves": [], "handles": ["background_tasks", "user_directory"]},
    ],
}


def synapse_workers_preset(preset):
    """The workers of a preset (a new list each time); [] for an unknown one (the role's checks name it)."""
    return copy.deepcopy(PRESETS.get(preset, [])) if isinstance(preset, str) else []


def _listed(worker, key):
    value = worker.get(key) or []
    return list(value) if isinstance(value, (list, tuple)) else value


def synapse_worker_problems(workers, variable="synapse_workers"):
    """What is wrong with a list of workers, each message naming the variable; [] when it is good."""
    if not isinstance(workers, (list, tuple)):
        return ["%s must be a list of workers like {name: generic-1, serves: [client, federation]} (got %r)."
                % (variable, workers)]
    problems, seen, single = [], set(), {}
    for index, worker in enumerate(workers):
        where = "%s[%d]" % (variable, index)
        if not isinstance(worker, dict):
            problems.append("%s must be a mapping with name, serves and handles (got %r)." % (where, worker))
            continue
        unknown = sorted(set(worker) - {"name", "serves", "handles"})
        if unknown:
            problems.append("%s has unknown keys %s: a worker has name, serves and handles." % (where, ", ".join(unknown)))
        name = worker.get("name")
        if not isinstance(name, str) or not NAME.match(name) or name == "main":
            problems.append("%s.name is %r: lowercase letters, digits and '-', starting with a letter, at most 40 "
                            "characters, and not 'main' (the main process's name)." % (where, name))
        elif name in seen:
            problems.append("%s.name %r is used twice: each worker needs its own name." % (where, name))
        else:
            seen.add(name)
        serves, handles = _listed(worker, "serves"), _listed(worker, "handles")
        if not isinstance(serves, list) or any(item not in SERVES for item in serves):
            problems.append("%s.serves is %r: a list of %s." % (where, worker.get("serves"), ", ".join(SERVES)))
            serves = []
        elif "media" in serves and len(serves) > 1:
            problems.append("%s.serves is %r: a media worker serves media only (Synapse's media_repository)."
                            % (where, serves))
        if not isinstance(handles, list) or any(item not in HANDLES for item in handles):
            problems.append("%s.handles is %r: a list of %s." % (where, worker.get("handles"), ", ".join(HANDLES)))
            handles = []
        if not serves and not handles:
            problems.append("%s (%s) neither serves nor handles anything." % (where, name))
        for item in handles:
            if item in SINGLE:
                single.setdefault(item, []).append(str(name))
    for item, names in sorted(single.items()):
        if len(names) > 1:
            problems.append("%s: only one worker may handle %s (Synapse runs it in one process); %s do."
                            % (variable, item, ", ".join(names)))
    return problems


def _names(workers, handles):
    return [worker["name"] for worker in workers if handles in _listed(worker, "handles")]


def synapse_worker_container(worker, container="synapse"):
    """The container of a worker (a worker mapping or its name): <main container>-<name>."""
    return "%s-%s" % (container, worker["name"] if isinstance(worker, dict) else worker)


def synapse_worker_settings(workers, container="synapse", listeners=None, redis_host="redis", redis_port=6379):
    """The homeserver.yaml keys of these workers (not their secrets); {} without workers.

    listeners: the main process's own listeners, to which the replication listener is added.
    """
    if not workers:
        return {}
    persisters = _names(workers, "events")
    settings = {
        # Reached on the Docker network only, and authenticated by worker_replication_secret.
        "listeners": list(listeners or []) + [{
            "port": REPLICATION_PORT, "type": "http", "tls": False, "bind_addresses": ["0.0.0.0"],
            "resources": [{"names": ["replication"], "compress": False}],
        }],
        "instance_map": dict(
            [("main", {"host": container, "port": REPLICATION_PORT})]
            + [(name, {"host": synapse_worker_container(name, container), "port": REPLICATION_PORT})
               for name in persisters]),
        "redis": {"enabled": True, "host": redis_host, "port": int(redis_port)},
    }
    if persisters:
        settings["stream_writers"] = {"events": persisters}
    for key, handles in (("federation_sender_instances", "federation_sender"), ("pusher_instances", "pusher")):
        if _names(workers, handles):
            settings[key] = _names(workers, handles)
    for key, handles in (("notify_appservices_from_worker", "appservices"),
                         ("update_user_directory_from_worker", "user_directory"),
                         ("run_background_tasks_on", "background_tasks")):
        if _names(workers, handles):
            settings[key] = _names(workers, handles)[0]
    media = [worker["name"] for worker in workers if "media" in _listed(worker, "serves")]
    if media:
        # The main process then neither serves media nor runs the media jobs.
        settings["enable_media_repo"] = False
        settings["media_instance_running_background_jobs"] = media[0]
    return settings


def synapse_worker_file(worker, federation=True):
    """The worker's own configuration file (read after homeserver.yaml)."""
    serves = [item for item in _listed(worker, "serves") if federation or item != "federation"]
    media = "media" in serves
    listeners = [{
        "type": "http", "port": HTTP_PORT, "bind_addresses": ["0.0.0.0"], "x_forwarded": True,
        # A worker that serves nothing still answers /health (Synapse adds it to every listener).
        "resources": [{"names": serves or ["health"], "compress": False}],
    }]
    if "events" in _listed(worker, "handles"):
        listeners.append({"type": "http", "port": REPLICATION_PORT, "bind_addresses": ["0.0.0.0"],
                          "resources": [{"names": ["replication"], "compress": False}]})
    return {
        # A media worker must say so: Synapse loads the media repository in a worker only then.
        "worker_app": "synapse.app.media_repository" if media else "synapse.app.generic_worker",
        "worker_name": worker["name"],
        "worker_listeners": listeners,
    }


def synapse_worker_upstreams(workers, container="synapse", federation=True):
    """For the proxy: [{upstream: <container>:8008, serves: [...]}] of the workers that serve HTTP."""
    upstreams = []
    for worker in workers or []:
        serves = [item for item in _listed(worker, "serves") if federation or item != "federation"]
        if serves:
            upstreams.append({"upstream": "%s:%d" % (synapse_worker_container(worker, container), HTTP_PORT),
                              "serves": serves})
    return upstreams


class FilterModule:  # pylint: disable=too-few-public-methods
    """Synapse worker filters."""

    def filters(self):
        return {
            "synapse_workers_preset": synapse_workers_preset,
            "synapse_worker_problems": synapse_worker_problems,
            "synapse_worker_container": synapse_worker_container,
            "synapse_worker_settings": synapse_worker_settings,
            "synapse_worker_file": synapse_worker_file,
            "synapse_worker_upstreams": synapse_worker_upstreams,
        }
