# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to this collection: may change without notice.
"""Appservice registrations: the checks Synapse makes when it loads them, tokens, building one.

The checks follow synapse/config/appservice.py (load_appservices, _load_appservice) and
ApplicationService: a registration that passes here does not stop Synapse from starting.
One check is stricter: Synapse quietly ignores a `rate_limited` that is not a boolean;
here that is an error, as it is almost certainly a typo.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from urllib.parse import quote

from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import (
    Document,
    YamlFileError,
    load_mapping,
    load_plain,
    set_key,
    type_name,
    update_mapping,
    write_if_changed,
)

REQUIRED_STRING_KEYS = ("id", "as_token", "hs_token", "sender_localpart")
NAMESPACE_KINDS = ("users", "aliases", "rooms")
TOKEN_KEYS = ("as_token", "hs_token")
# Optional flags that Synapse refuses unless they are booleans.
BOOLEAN_FLAGS = ("rate_limited", "org.matrix.msc3202", "io.element.msc4190")


class RegistrationError(Exception):
    """A registration would stop Synapse from starting; the message names the file and key."""


def check_registration(data, path):
    """Raise RegistrationError unless `data`, read from `path`, is a registration Synapse accepts."""

    def fail(key, problem):
        raise RegistrationError("%s: key '%s' %s" % (path, key, problem))

    if not isinstance(data, dict):
        raise RegistrationError("%s: must be a YAML mapping, got %s" % (path, type_name(data)))
    for key in REQUIRED_STRING_KEYS:
        if key not in data:
            fail(key, "is missing")
        if not isinstance(data[key], str):
            fail(key, "must be a string, got %s" % type_name(data[key]))
    # Synapse wants `url` spelled out, null included, so push is never turned off by accident.
    if "url" not in data:
        fail("url", "is missing (set it to null for an appservice that receives no events)")
    if data["url"] is not None and not isinstance(data["url"], str):
        fail("url", "must be a string or null, got %s" % type_name(data["url"]))
    if "|" in data["id"]:
        fail("id", "must not contain '|', got %r" % data["id"])
    localpart = data["sender_localpart"]
    if quote(localpart) != localpart:
        fail("sender_localpart", "must only use characters that need no URL encoding, got %r" % localpart)

    for key in BOOLEAN_FLAGS:
        if key in data and not isinstance(data[key], bool):
            fail(key, "must be a bool, got %s" % type_name(data[key]))

    if "namespaces" not in data:
        fail("namespaces", "is missing (Synapse requires a mapping, which may be empty)")
    namespaces = data["namespaces"]
    if not isinstance(namespaces, dict):
        fail("namespaces", "must be a mapping, got %s" % type_name(namespaces))
    for kind in NAMESPACE_KINDS:
        if kind in namespaces:
            _check_namespace(namespaces[kind], "namespaces.%s" % kind, fail)

    # Synapse only looks at `protocols` when it is truthy, so null and [] are fine.
    protocols = data.get("protocols")
    if protocols:
        if not isinstance(protocols, list):
            fail("protocols", "must be a list of strings, got %s" % type_name(protocols))
        for index, protocol in enumerate(protocols):
            if not isinstance(protocol, str):
                fail("protocols[%d]" % index, "must be a string, got %s" % type_name(protocol))

    ip_ranges = data.get("ip_range_whitelist")
    if ip_ranges and (not isinstance(ip_ranges, list) or not all(isinstance(r, str) for r in ip_ranges)):
        fail("ip_range_whitelist", "must be a list of IP ranges (strings)")
    for index, ip_range in enumerate(ip_ranges or []):
        # Synapse builds a netaddr IPSet from the list and refuses to start on a bad entry.
        try:
            ipaddress.ip_network(ip_range, strict=False)
        except ValueError:
            fail("ip_range_whitelist[%d]" % index, "is not an IP address or CIDR range, got %r" % ip_range)


def _check_namespace(entries, key, fail):
    if not isinstance(entries, list):
        fail(key, "must be a list, got %s" % type_name(entries))
    for index, entry in enumerate(entries):
        entry_key = "%s[%d]" % (key, index)
        if not isinstance(entry, dict):
            fail(entry_key, "must be a mapping with 'regex' and 'exclusive', got %s" % type_name(entry))
        if "regex" not in entry:
            fail(entry_key + ".regex", "is missing")
        if not isinstance(entry["regex"], str):
            fail(entry_key + ".regex", "must be a string, got %s" % type_name(entry["regex"]))
        try:
            re.compile(entry["regex"])
        except re.error as exc:
            fail(entry_key + ".regex", "is not a valid regular expression: %s" % exc)
        if "exclusive" not in entry:
            fail(entry_key + ".exclusive", "is missing")
        if not isinstance(entry["exclusive"], bool):
            fail(entry_key + ".exclusive", "must be a bool, got %s" % type_name(entry["exclusive"]))


def check_unique(registrations):
    """Raise RegistrationError if two registrations share an `id` or an `as_token`.

    `registrations` is a list of (path, data) pairs of registrations that passed
    check_registration, in the order Synapse will load them.
    """
    seen = {"id": {}, "as_token": {}}
    for path, data in registrations:
        for key, owners in seen.items():
            first = owners.get(data[key])
            if first is not None:
                shown = "" if key in TOKEN_KEYS else " %r" % data[key]  # never print a token
                raise RegistrationError(
                    "%s: key '%s'%s is already used by %s; Synapse requires it to be unique"
                    % (path, key, shown, first)
                )
            owners[data[key]] = path


def generate_token():
    """A new random token for as_token / hs_token (256 bits from the OS CSPRNG)."""
    return secrets.token_hex(32)


def build_registration(appservice_id, url, sender_localpart, namespaces, rate_limited, as_token, hs_token,
                       protocols=None, extra=None):
    """The registration mapping, keys in the order bridges usually write them."""
    registration = {
        "id": appservice_id,
        "url": url,
        "as_token": as_token,
        "hs_token": hs_token,
        "sender_localpart": sender_localpart,
        "rate_limited": rate_limited,
        "namespaces": {kind: namespaces[kind] for kind in NAMESPACE_KINDS if kind in namespaces},
    }
    # Keep unknown namespace kinds too, after the ones Synapse knows.
    registration["namespaces"].update((k, v) for k, v in namespaces.items() if k not in NAMESPACE_KINDS)
    if protocols is not None:
        registration["protocols"] = protocols
    for key, value in (extra or {}).items():
        if key in registration:
            raise RegistrationError("extra: key '%s' is set by its own option, not through extra" % key)
        registration[key] = value
    return registration


class PathMap:
    """Translate between paths on the managed host and paths inside Synapse's container.

    Prefixes match whole path components (/matrix/bridges does not match
    /matrix/bridges2/x) and the longest matching prefix wins. Without a map, both
    sides see the same paths.
    """

    def __init__(self, host_to_container=None):
        self.pairs = []
        for host, container in (host_to_container or {}).items():
            if not isinstance(container, str) or not os.path.isabs(host) or not os.path.isabs(container):
                raise RegistrationError(
                    "path_map: %s -> %s: both sides must be absolute paths" % (host, container)
                )
            self.pairs.append((os.path.normpath(host), os.path.normpath(container)))

    def to_container(self, host_path):
        return self._translate(host_path, 0, "host")

    def to_host(self, container_path):
        return self._translate(container_path, 1, "container")

    def _translate(self, path, side, side_name):
        if not self.pairs:
            return path
        path = os.path.normpath(path)
        matches = [pair for pair in self.pairs if _is_under(path, pair[side])]
        if not matches:
            raise RegistrationError(
                "%s is outside every %s path in path_map (%s)"
                % (path, side_name, ", ".join(sorted(pair[side] for pair in self.pairs)))
            )
        pair = max(matches, key=lambda p: len(p[side]))
        rest = os.path.relpath(path, pair[side])
        return pair[1 - side] if rest == "." else os.path.join(pair[1 - side], rest)


def _is_under(path, prefix):
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


LIST_KEY = "app_service_config_files"


def listed_files(document):
    """The `app_service_config_files` of a homeserver.yaml Document, checked as Synapse does."""
    listed = document.data.get(LIST_KEY)
    if listed is None:
        return []
    if not isinstance(listed, list):
        raise RegistrationError(
            "%s: key '%s' must be a list of paths, got %s" % (document.path, LIST_KEY, type_name(listed))
        )
    for index, entry in enumerate(listed):
        if not isinstance(entry, str):
            raise RegistrationError(
                "%s: key '%s[%d]' must be a string, got %s" % (document.path, LIST_KEY, index, type_name(entry))
            )
        if not entry:
            raise RegistrationError("%s: key '%s[%d]' must be a path, got an empty string"
                                    % (document.path, LIST_KEY, index))
    return list(listed)


def plan_list(current, wanted, state, exclusive):
    """The new `app_service_config_files`: `wanted` holds container paths, in order.

    Entries that stay keep their order; new ones are appended.
    """
    if state == "absent":
        return [entry for entry in current if os.path.normpath(entry) not in wanted]
    listed = set(os.path.normpath(entry) for entry in current)
    added = [path for path in wanted if path not in listed]
    if not exclusive:
        return current + added
    kept, seen = [], set()
    for entry in current:
        normalized = os.path.normpath(entry)
        if normalized in wanted and normalized not in seen:
            kept.append(entry)
            seen.add(normalized)
    return kept + added


def load_registrations(entries, hs_path, requested, path_map, check_mode=False):
    """Read and check the registrations Synapse would load for `entries`, as Synapse would.

    `requested` maps container paths to the host paths given to the module; other entries
    were listed already and are found on the host through `path_map`. In check mode a
    requested file that does not exist yet is one an earlier task would have written: it
    cannot be read, so it is not checked.
    """
    loaded = []
    for entry in entries:
        host_path = requested.get(os.path.normpath(entry))
        if check_mode and host_path is not None and not os.path.lexists(host_path):
            continue
        try:
            if host_path is None:
                host_path = path_map.to_host(entry)
            data = load_plain(host_path)
            check_registration(data, host_path)
        except (RegistrationError, YamlFileError) as exc:
            if os.path.normpath(entry) in requested:
                raise RegistrationError(str(exc)) from None
            raise RegistrationError(
                "%s (already listed in %s, key '%s', as %s); Synapse would fail to start"
                % (exc, hs_path, LIST_KEY, entry)
            ) from None
        loaded.append((host_path, data))
    check_unique(loaded)
    return loaded


def plan_appservices(document, appservices, check_mode):
    """The checked `app_service_config_files` of `document` listing exactly `appservices["registrations"]`."""
    path_map = PathMap(appservices["path_map"])
    requested = {}  # container path -> host path
    for host_path in appservices["registrations"]:
        host_path = os.path.normpath(host_path)
        requested.setdefault(os.path.normpath(path_map.to_container(host_path)), host_path)
    new = plan_list(listed_files(document), requested, "present", True)
    load_registrations(new, document.path, requested, path_map, check_mode)
    return new


def run_synapse_appservices(module):
    """The synapse_appservices module: list or unlist registrations in homeserver.yaml."""
    params = module.params
    try:
        path_map = PathMap(params["path_map"])
        document = load_mapping(params["path"])
        listed = listed_files(document)
        current = listed
        if params.get("prune_missing"):
            current = [entry for entry in listed if os.path.lexists(path_map.to_host(entry))]
            for entry in listed:
                if entry not in current:
                    module.warn("%s: unlisted %s from '%s': the file does not exist (Synapse would not start)"
                                % (params["path"], entry, LIST_KEY))
        requested = {}  # container path -> host path
        for host_path in params["registrations"]:
            host_path = os.path.normpath(host_path)
            requested.setdefault(os.path.normpath(path_map.to_container(host_path)), host_path)
        new = plan_list(current, requested, params["state"], params["exclusive"])
        load_registrations(new, params["path"], requested, path_map, module.check_mode)
    except (RegistrationError, YamlFileError) as exc:
        module.fail_json(msg=str(exc))

    changed = new != listed
    if changed:
        set_key(document.data, LIST_KEY, new)
    result = write_if_changed(module, document, changed)
    module.exit_json(app_service_config_files=new, **result)


def _existing_token(data, key):
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def run_appservice_registration(module):
    """The appservice_registration module: write one bridge's registration file."""
    params = module.params
    path = params["path"]
    try:
        document = load_mapping(path) if os.path.lexists(path) else Document.new(path)
        # Tokens: as given, else as already in the file, else new ones.
        tokens = {
            key: params[key] or _existing_token(document.data, key) or generate_token()
            for key in TOKEN_KEYS
        }
        registration = build_registration(
            appservice_id=params["id"],
            url=params["url"],
            sender_localpart=params["sender_localpart"],
            namespaces=params["namespaces"],
            rate_limited=params["rate_limited"],
            protocols=params["protocols"],
            extra=params["extra"],
            **tokens
        )
        check_registration(registration, path)
    except (RegistrationError, YamlFileError) as exc:
        module.fail_json(msg=str(exc))

    changed = update_mapping(document.data, registration)
    result = write_if_changed(module, document, changed, secret_paths=[(key,) for key in TOKEN_KEYS])
    changed = module.set_owner_if_different(path, params["owner"], result["changed"])
    changed = module.set_group_if_different(path, params["group"], changed)
    result["changed"] = module.set_mode_if_different(path, params["mode"], changed)
    module.exit_json(id=params["id"], sender_localpart=params["sender_localpart"], path=path, **result)
