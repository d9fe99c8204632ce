#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: synapse_media_purge
short_description: Delete old or large local media and old remote media from Synapse
version_added: 0.1.0
description:
  - Deletes local media (uploaded to this homeserver) last used before a date or an age, and/or
    larger than a size, through Synapse's admin API C(POST /_synapse/admin/v1/media/delete).
  - Media count as used when downloaded; media never downloaded count from their upload.
    Quarantined media and media protected from quarantine are never deleted, as in Synapse.
  - Can also purge the cache of media fetched from other homeservers
    (C(POST /_synapse/admin/v1/purge_media_cache)); remote media are fetched again when needed.
  - Before deleting, the module lists every user's media through the admin API and picks the
    ones Synapse will delete, so check mode tells truthfully what would go, and how many bytes.
  - Refuses to run with neither an age nor a size, which would delete all local media, unless
    only the remote cache is to be purged.
author:
  - Switchboard developers (@switchboard)
extends_documentation_fragment:
  - switchboard.matrix._attributes
  - switchboard.matrix._homeserver
attributes:
  check_mode:
    support: partial
    details:
      - Local media are counted truthfully, from the admin API's listing of each user's media.
      - The remote media cache cannot be listed through the admin API; with O(purge_remote=true)
        check mode predicts a change and returns no RV(remote_deleted).
  diff_mode:
    support: full
    details:
      - Lists the IDs of the local media that go.
  idempotent:
    support: full
options:
  access_token:
    description:
      - Access token of a Synapse server admin.
    type: str
    required: true
  older_than:
    description:
      - Delete local media last used longer ago than this, for example V(30d), V(12h), V(2w),
        V(90m) (minutes) or V(45s).
      - Mutually exclusive with O(before_ts).
    type: str
  before_ts:
    description:
      - Delete local media last used before this Unix time in milliseconds.
      - Mutually exclusive with O(older_than).
    type: int
  larger_than:
    description:
      - Delete only local media larger than this size, for example V(10M), V(1.5G), V(512K) or
        V(100) (bytes). Units are binary, V(1K) is 1024 bytes; V(KiB) and V(KB) mean the same.
      - Without O(older_than) or O(before_ts), large media of any age go.
      - Mutually exclusive with O(size_gt).
    type: str
  size_gt:
    description:
      - Delete only local media larger than this many bytes.
      - Mutually exclusive with O(larger_than).
    type: int
  keep_profiles:
    description:
      - Keep media used as avatars of users and rooms.
      - Check mode knows users' and rooms' current avatars; a per-room avatar that differs from
        the user's own is kept by Synapse but counted in the prediction.
    type: bool
    default: true
  purge_remote:
    description:
      - Also purge cached remote media last used before O(remote_older_than).
    type: bool
    default: false
  remote_older_than:
    description:
      - Age of the remote media to purge, in the format of O(older_than).
      - Defaults to the age of the local media, O(older_than) or O(before_ts); one of them is
        needed when O(purge_remote=true).
    type: str
notes:
  - On a homeserver with many users, listing the media takes one request per user (and per 500 media).
  - Media stored by Synapse without an uploader are deleted too but are not in the
    prediction; outside check mode RV(deleted_media) is what Synapse reports it deleted.
seealso:
  - name: Synapse media admin API
    description: Deleting local media and purging the remote media cache.
    link: https://element-hq.github.io/synapse/latest/admin_api/media_admin_api.html
"""

EXAMPLES = r"""
- name: See what media older than 90 days would go
  switchboard.matrix.synapse_media_purge:
    homeserver_url: http://127.0.0.1:8008
    access_token: "{{ synapse_admin_token }}"
    older_than: 90d
  check_mode: true
  register: old_media

- name: Delete uploads larger than 50 MiB older than 30 days, and remote media older than a week
  switchboard.matrix.synapse_media_purge:
    homeserver_url: http://127.0.0.1:8008
    access_token: "{{ synapse_admin_token }}"
    older_than: 30d
    larger_than: 50M
    purge_remote: true
    remote_older_than: 7d
"""

RETURN = r"""
deleted_media:
  description: IDs of the local media deleted, or that would be in check mode.
  returned: always
  type: list
  elements: str
  sample: [QdmQTtcKHpwhmKySqRHrsqvv, dKLXRlMrCfqvWVaEzLcdUBhO]
total:
  description: Number of local media deleted, or that would be in check mode.
  returned: always
  type: int
  sample: 2
bytes:
  description: Bytes of the local media deleted, or that would be, as the listing gave them.
  returned: always
  type: int
  sample: 31457280
before_ts:
  description: The Unix time in milliseconds local media had to be last used before, as sent to Synapse.
  returned: when local media were considered
  type: int
  sample: 1717171717171
size_gt:
  description: The size in bytes local media had to be larger than, as sent to Synapse.
  returned: when local media were considered
  type: int
  sample: 10485760
remote_deleted:
  description: Number of cached remote media purged.
  returned: when O(purge_remote=true), outside check mode
  type: int
  sample: 12
"""

import time
import urllib.parse

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.switchboard.matrix.plugins.module_utils._client import (
    HOMESERVER_ARGS,
    Homeserver,
    HomeserverError,
    answer_problem,
    header_value_problem,
    unexpected_answer,
)
from ansible_collections.switchboard.matrix.plugins.module_utils._units import parse_age, parse_size

USERS = "/_synapse/admin/v2/users"
ROOMS = "/_synapse/admin/v1/rooms"
DELETE = "/_synapse/admin/v1/media/delete"
PURGE_REMOTE = "/_synapse/admin/v1/purge_media_cache"
PAGE = 500
# The fields of Synapse's answers that this module reads (see answer_problem).
NEXT = (str, int, type(None))
USER_FIELDS = {"name": str}
MEDIA_FIELDS = {"media_id": str, "media_length": (int, type(None)), "created_ts": (int, type(None)),
                "last_access_ts": (int, type(None))}


def listing(hs, token, path, key, query=None, fields=None):
    """Every item of a paginated admin listing; each must be an object with `fields`."""
    query = dict(query or {}, limit=PAGE)
    seen = set()
    while True:
        answer = hs.request("GET", path, query=query, token=token, expect={key: [dict], "next_token": NEXT,
                                                                           "next_batch": NEXT})
        for item in answer[key]:
            problem = answer_problem(item, fields)
            if problem:
                raise unexpected_answer("GET", hs.url(path, query), "an item of '%s': %s" % (key, problem))
            yield item
        following = answer.get("next_token", answer.get("next_batch"))
        if following is None or not answer[key]:
            return
        if following in seen:  # a listing that never ends
            raise unexpected_answer("GET", hs.url(path, query), "the same next_token %r again" % (following,))
        seen.add(following)
        query["from"] = following


def media_id_of(mxc):
    # Avatars are mxc://server/media_id; media IDs are random, so the ID alone identifies it.
    return mxc.rsplit("/", 1)[-1] if isinstance(mxc, str) and mxc.startswith("mxc://") else None


def will_delete(media, before_ts, size_gt, kept):
    """Synapse's own choice (get_local_media_ids): strict < on time, strict > on size."""
    last_used = media.get("last_access_ts")
    if last_used is None:
        last_used = media.get("created_ts")
    return (last_used is not None and last_used < before_ts
            and media.get("media_length") is not None and media["media_length"] > size_gt
            and not media.get("quarantined_by") and not media.get("safe_from_quarantine")
            and media["media_id"] not in kept)


def predict(hs, token, before_ts, size_gt, keep_profiles):
    """Map of media ID to size for the local media Synapse would delete."""
    # Locked and deactivated users keep their uploads; the listing hides them unless asked.
    users = list(listing(hs, token, USERS, "users", dict(guests="true", deactivated="true", locked="true"),
                         USER_FIELDS))
    kept = set()
    if keep_profiles:
        kept.update(media_id_of(user.get("avatar_url")) for user in users)
        kept.update(media_id_of(room.get("avatar")) for room in listing(hs, token, ROOMS, "rooms"))
    doomed = {}
    for user in users:
        path = "/_synapse/admin/v1/users/%s/media" % urllib.parse.quote(user["name"], safe="@:")
        for media in listing(hs, token, path, "media", fields=MEDIA_FIELDS):
            if will_delete(media, before_ts, size_gt, kept):
                doomed[media["media_id"]] = media["media_length"]
    return doomed


def local_filters(module):
    """(before_ts, size_gt) to send to Synapse, or None when no local media are to go."""
    p = module.params
    before_ts = p["before_ts"]
    if p["older_than"] is not None:
        before_ts = now_ms() - parse_age(p["older_than"], "older_than")
    size_gt = p["size_gt"]
    if p["larger_than"] is not None:
        size_gt = parse_size(p["larger_than"], "larger_than")
    if before_ts is None and size_gt is None:
        if p["purge_remote"]:
            return None
        raise ValueError("give older_than (or before_ts) and/or larger_than (or size_gt): "
                         "without them Synapse would delete all local media")
    if size_gt is not None and size_gt < 0:
        raise ValueError("size_gt must not be negative")
    # Synapse needs a time; "used before now" is every media, so only the size picks.
    return (now_ms() if before_ts is None else before_ts), (size_gt or 0)


def remote_before_ts(module, local):
    p = module.params
    if p["remote_older_than"] is not None:
        return now_ms() - parse_age(p["remote_older_than"], "remote_older_than")
    if local is None:
        raise ValueError("purge_remote needs remote_older_than, or older_than / before_ts to go by")
    return local[0]


def now_ms():
    return int(time.time() * 1000)


def purge(module, hs):
    p = module.params
    token = p["access_token"]
    local = local_filters(module)
    result = dict(changed=False, deleted_media=[], total=0, bytes=0)
    if local:
        before_ts, size_gt = local
        doomed = predict(hs, token, before_ts, size_gt, p["keep_profiles"])
        deleted = sorted(doomed)
        if not module.check_mode:
            # Asked even when nothing is predicted: media without an uploader are not in the listing.
            query = dict(before_ts=before_ts, size_gt=size_gt, keep_profiles=str(p["keep_profiles"]).lower())
            deleted = sorted(hs.request("POST", DELETE, query=query, body={}, token=token,
                                        expect={"deleted_media": [str]})["deleted_media"])
        result.update(deleted_media=deleted, total=len(deleted), bytes=sum(doomed.get(m, 0) for m in deleted),
                      before_ts=before_ts, size_gt=size_gt, changed=bool(deleted))
        if module._diff:
            result["diff"] = dict(before=dict(media=deleted), after=dict(media=[]))
    if p["purge_remote"]:
        before = remote_before_ts(module, local)
        if module.check_mode:
            result["changed"] = True
        else:
            answer = hs.request("POST", PURGE_REMOTE, query=dict(before_ts=before), body={}, token=token,
                                expect={"deleted": (int, type(None))})
            result["remote_deleted"] = answer.get("deleted") or 0
            result["changed"] = result["changed"] or result["remote_deleted"] > 0
    return result


def hint(err):
    if err.status in (401, 403):
        return "access_token must be a valid token of a Synapse server admin."
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            HOMESERVER_ARGS,
            access_token=dict(type="str", required=True, no_log=True),
            older_than=dict(type="str"),
            before_ts=dict(type="int"),
            larger_than=dict(type="str"),
            size_gt=dict(type="int"),
            keep_profiles=dict(type="bool", default=True),
            purge_remote=dict(type="bool", default=False),
            remote_older_than=dict(type="str"),
        ),
        mutually_exclusive=[("older_than", "before_ts"), ("larger_than", "size_gt")],
        supports_check_mode=True,
    )
    problem = header_value_problem(module.params["access_token"])
    if problem:
        module.fail_json(msg="access_token: " + problem)
    hs = Homeserver(module)
    try:
        result = purge(module, hs)
    except ValueError as err:
        module.fail_json(msg=str(err))
    except HomeserverError as err:
        hs.fail(err, hint(err))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
