# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Private to the switchboard.matrix collection: may change without notice.
"""A role's directories and files in one module run (the files module)."""

from __future__ import annotations

import copy
import os
import pwd
import stat

from ansible_collections.switchboard.matrix.plugins.module_utils._config_file import header_problem
from ansible_collections.switchboard.matrix.plugins.module_utils._yaml_file import (
    Document,
    YamlFileError,
    atomic_write,
    check_regular_file,
    deep_merge,
    load_plain,
    make_diff,
    mask_secrets,
    path_problem,
    read_text,
    run_validate,
    same_data,
)

# What a diff shows for a file whose content is secret.
HIDDEN = "(secret content, not shown)\n"


class FilesError(Exception):
    """A path cannot be made what the task asks; the message starts with the path."""


def lstat_or_none(path):
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def look(path):
    """What is at `path`, never following a link: exists, type, owner, mode and times."""
    info = lstat_or_none(path)
    if info is None:
        return {"exists": False}
    kind = ("link" if stat.S_ISLNK(info.st_mode) else "directory" if stat.S_ISDIR(info.st_mode)
            else "file" if stat.S_ISREG(info.st_mode) else "other")
    return {"exists": True, "type": kind, "uid": info.st_uid, "gid": info.st_gid,
            "mode": "%04o" % stat.S_IMODE(info.st_mode), "size": info.st_size, "mtime": info.st_mtime}


class Files:
    """Applies the entries of one files task in order, collecting changed paths and diffs."""

    def __init__(self, module):
        self.module = module
        self.changed_paths = []
        self.diffs = []

    def _changed(self, path, diff=None):
        if path not in self.changed_paths:
            self.changed_paths.append(path)
        if diff is not None and self.module._diff:
            self.diffs.append(diff)

    def _attributes(self, entry, exists_now):
        """Owner, group and mode of a path that is not a link; in check mode of a path still to
        create, the creation already counts as the change."""
        if not exists_now:
            return
        path = entry["path"]
        diff = {"before": {"path": path}, "after": {"path": path}}
        try:
            changed = self.module.set_owner_if_different(path, entry.get("owner"), False, diff, expand=False)
            changed = self.module.set_group_if_different(path, entry.get("group"), changed, diff, expand=False)
            changed = self.module.set_mode_if_different(path, entry.get("mode"), changed, diff, expand=False)
        except (OSError, ValueError) as exc:
            raise FilesError("%s: cannot set owner, group or mode: %s" % (path, exc)) from None
        if changed:
            self._changed(path, dict(diff, before_header=path, after_header=path))

    def directory(self, entry):
        path = entry["path"]
        info = lstat_or_none(path)
        if info is not None and not stat.S_ISDIR(info.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a directory"
            raise FilesError("%s: is %s; expected a directory (move it away, the next run creates it)" % (path, kind))
        if info is None:
            created = {"before": {"path": path, "state": "absent"}, "after": {"path": path, "state": "directory"}}
            if self.module.check_mode:
                self._changed(path, created)
                return
            try:
                parent = os.path.dirname(path)
                if not os.path.isdir(parent):
                    os.makedirs(parent, 0o755)
                # Private until its mode is set below.
                os.mkdir(path, 0o700)
            except OSError as exc:
                raise FilesError("%s: cannot create the directory: %s" % (path, exc.strerror or exc)) from None
            self._changed(path, created)
        self._attributes(entry, exists_now=True)

    def _current_file(self, path):
        info = lstat_or_none(path)
        if info is None:
            return None
        try:
            check_regular_file(path, info)
        except YamlFileError as exc:
            raise FilesError(str(exc)) from None
        return info

    def _write(self, path, text, validate=None):
        if self.module.check_mode:
            return
        check = None
        if validate:
            def check(candidate):
                run_validate(self.module, validate, candidate, path)
        try:
            atomic_write(path, text, validate=check)
        except YamlFileError as exc:
            raise FilesError(str(exc)) from None

    def text_file(self, entry):
        path = entry["path"]
        secret = entry.get("secret_content") is not None
        wanted = entry["secret_content"] if secret else entry.get("content")
        if wanted is None or (secret and entry.get("content") is not None):
            raise FilesError("%s: give either content or secret_content" % path)
        if entry.get("validate") and "%s" not in entry["validate"]:
            raise FilesError("%s: validate must contain %%s (the new file's path), got %r" % (path, entry["validate"]))
        existed = self._current_file(path) is not None
        current = None
        if existed:
            try:
                current = read_text(path)
            except YamlFileError:
                current = None  # not UTF-8 text: replaced
        if current != wanted:
            before = "" if not existed else (HIDDEN if secret else (current or ""))
            self._write(path, wanted, entry.get("validate"))
            self._changed(path, make_diff(path, before, HIDDEN if secret else wanted))
        self._attributes(entry, exists_now=existed or not self.module.check_mode)

    def data_file(self, entry):
        path = entry["path"]
        header = entry.get("header") or ""
        problem = header_problem(header)
        if problem:
            raise FilesError("%s: header %s" % (path, problem))
        wanted = deep_merge(entry.get("data") or {}, entry.get("secret_data") or {})
        existed = self._current_file(path) is not None
        current = None
        if existed:
            try:
                current = load_plain(path)
            except YamlFileError as exc:
                if not entry.get("force"):
                    raise FilesError("%s; refusing to overwrite it (force: true replaces it)" % exc) from None
        if current is None or not same_data(current, wanted):
            # Old and new values of the secrets never show; the rest of the file does.
            hidden_before, hidden_after = mask_secrets(copy.deepcopy(current), copy.deepcopy(wanted))
            before = "" if current is None else Document.new(path).dump(hidden_before)
            self._write(path, header + Document.new(path).dump(wanted))
            self._changed(path, make_diff(path, before, header + Document.new(path).dump(hidden_after)))
        self._attributes(entry, exists_now=existed or not self.module.check_mode)

    def absent(self, path):
        """Remove the file (or link: the link itself) at `path`; a directory is refused."""
        info = lstat_or_none(path)
        if info is None:
            return
        if stat.S_ISDIR(info.st_mode):
            raise FilesError("%s: is a directory; refusing to remove it" % path)
        if not self.module.check_mode:
            try:
                os.unlink(path)
            except OSError as exc:
                raise FilesError("%s: cannot remove it: %s" % (path, exc.strerror or exc)) from None
        self._changed(path, {"before": {"path": path, "state": "file"}, "after": {"path": path, "state": "absent"}})

    def existing(self, entry):
        """Owner, group and mode of a file that may not exist yet; never created here."""
        info = lstat_or_none(entry["path"])
        if info is None:
            return
        if stat.S_ISLNK(info.st_mode):
            raise FilesError("%s: is a symbolic link; refusing to change it or what it points to (remove it, "
                             "then run again)" % entry["path"])
        self._attributes(entry, exists_now=True)


def resolve_id(value, database):
    """A uid or gid from a name or a number, or None when it names nobody here."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return database(str(value))[2]
        except KeyError:
            return None


def owned_by_another(entry):
    """Whether the directory of `entry` exists and belongs to another user than its owner."""
    info = lstat_or_none(entry["path"])
    if info is None or entry.get("owner") is None:
        return False
    return info.st_uid != resolve_id(entry["owner"], pwd.getpwnam)


def run_files(module):
    params = module.params
    groups = ("directories", "files", "data_files", "attributes")
    for group in groups:
        for entry in params[group]:
            problem = path_problem(entry["path"])
            if problem:
                module.fail_json(msg="%s: path %s" % (group, problem))
    for option in ("look", "read", "absent"):
        for path in params[option]:
            problem = path_problem(path)
            if problem:
                module.fail_json(msg="%s: path %s" % (option, problem))

    result = {"looked": {path: look(path) for path in params["look"]}, "read": {}}
    for path in params["read"]:
        if lstat_or_none(path) is None:
            continue
        try:
            result["read"][path] = read_text(path)
        except YamlFileError as exc:
            module.fail_json(msg=str(exc))
    # A directory changing hands needs its caller's care first (moving what the old owner
    # left there): nothing is done until it has been given it.
    for entry in params["directories"]:
        if entry.get("stop_if_owned_by_another") and owned_by_another(entry):
            module.exit_json(changed=False, changed_paths=[], stopped_at=entry["path"], **result)
    files = Files(module)
    try:
        for entry in params["directories"]:
            files.directory(entry)
        for entry in params["files"]:
            files.text_file(entry)
        for entry in params["data_files"]:
            files.data_file(entry)
        for entry in params["attributes"]:
            files.existing(entry)
        for path in params["absent"]:
            files.absent(path)
    except FilesError as exc:
        # What was done before the failing entry stays done, and is said.
        module.fail_json(msg=str(exc), changed=bool(files.changed_paths), changed_paths=files.changed_paths)
    result.update(changed=bool(files.changed_paths), changed_paths=files.changed_paths, stopped_at=None)
    if files.diffs:
        result["diff"] = files.diffs
    module.exit_json(**result)
