# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to this collection: may change without notice.
"""Edit YAML files in place: round-trip load and dump, in-place updates, atomic writes, diffs.

Edits keep comments, key order and quoting. Lines outside the edited keys are copied
from the original file byte for byte (see Document.render).
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import io
import json
import os
import re
import shlex
import stat
import tempfile
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    # Synapse reads registrations with PyYAML's safe_load; use it (with libyaml, much faster
    # than pure-Python ruamel.yaml) to read files that are only checked, never written.
    import yaml as pyyaml
except ImportError:
    pyyaml = None

try:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.error import CommentMark, YAMLError
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
    from ruamel.yaml.tokens import CommentToken
except ImportError:
    HAS_RUAMEL = False
    RUAMEL_IMPORT_ERROR = traceback.format_exc()
    YAMLError = ValueError
    CollectionStartEvent = CollectionEndEvent = None
else:
    HAS_RUAMEL = True
    RUAMEL_IMPORT_ERROR = None

MASK = "********"
MASK_CHANGED = "******** (changed)"
# Keys whose values no diff shows, wherever they are in a file (case-insensitive globs).
SECRET_LIKE_KEYS = ("*token*", "*secret*", "*password*", "*passwd*", "*pass", "*key", "*pickle*", "*hash*")
# user:password@ in a connection string (postgres://user:password@host/db).
_DSN_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*(@)")

# Synapse and the bridges read YAML with PyYAML, which implements YAML 1.1: there
# `yes`/`no`/`on`/`off` are booleans. Load and dump with the same rules so that a value
# means here what it means to them (a string "yes" gets quoted on output).
_YAML_VERSION = (1, 1)
_VERSION_HEADER = "%YAML 1.1\n---\n"

# Indentation used when a file has no nested block to learn it from: the style of the
# homeserver.yaml that Synapse generates.
_DEFAULT_INDENT = {"mapping": 2, "sequence": 4, "offset": 2}


class YamlFileError(Exception):
    """A YAML file is missing, unreadable or not valid YAML; the message starts with its path."""


# Config files are small; anything bigger is not one of ours (or is /dev/zero behind a link).
MAX_FILE_BYTES = 4 * 1024 * 1024


def check_regular_file(path, info, max_bytes=MAX_FILE_BYTES):
    """Raise YamlFileError unless `info` (an lstat/fstat result of `path`) is a regular file of at most `max_bytes`."""
    if stat.S_ISLNK(info.st_mode):
        raise YamlFileError("%s: is a symbolic link; refusing to read or write through it (remove the link, "
                            "the next run writes the file)" % path)
    if stat.S_ISDIR(info.st_mode):
        raise YamlFileError("%s: is a directory, expected a YAML file" % path)
    if not stat.S_ISREG(info.st_mode):
        raise YamlFileError("%s: is not a regular file (a FIFO, socket or device); refusing to use it" % path)
    if info.st_size > max_bytes:
        raise YamlFileError("%s: is %d bytes, more than the %d it may have" % (path, info.st_size, max_bytes))


def read_regular_file(path, max_bytes=MAX_FILE_BYTES):
    """(bytes, fstat result) of `path`, or raise YamlFileError saying why it cannot be read.

    A directory that another user can write may hold a link planted there: the file is
    opened without following links and without blocking (a FIFO), and must be a regular
    file of at most `max_bytes`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise YamlFileError("%s: file does not exist" % path) from None
    except ValueError:  # a NUL byte in the path
        raise YamlFileError("%r: cannot read: the path contains a NUL byte" % path) from None
    except OSError as exc:
        if os.path.islink(path):
            check_regular_file(path, os.lstat(path))
        raise YamlFileError("%s: cannot read: %s" % (path, exc)) from None
    try:
        info = os.fstat(fd)
        check_regular_file(path, info, max_bytes)
    except YamlFileError:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise YamlFileError("%s: is more than the %d bytes it may have" % (path, max_bytes))
    return data, info


def read_text(path):
    """Return the text of `path` (see read_regular_file), or raise YamlFileError saying why it cannot be read."""
    data, _info = read_regular_file(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlFileError("%s: cannot read: %s" % (path, exc)) from None


def path_problem(path):
    """Why `path`, given as a path option, cannot be used, or None.

    Modules run in a temporary directory on the managed host: a relative path would
    land somewhere nobody looks.
    """
    if not isinstance(path, str) or not os.path.isabs(path):
        return "must be an absolute path, got %r" % (path,)
    if "\0" in path:
        return "must not contain a NUL byte, got %r" % path
    return None


def require_absolute_paths(module, *options):
    """Fail `module` unless each of the path `options` (a path, a list of paths, or None) holds absolute paths."""
    for option in options:
        value = module.params[option]
        for path in value if isinstance(value, list) else [] if value is None else [value]:
            problem = path_problem(path)
            if problem:
                module.fail_json(msg="%s: %s" % (option, problem))


def type_name(value):
    """A YAML-flavoured name for the type of `value`, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def load_mapping(path):
    """Load `path` for editing; raise YamlFileError unless it holds a YAML mapping."""
    document = Document.load(path)
    if not isinstance(document.data, dict):
        raise YamlFileError("%s: must be a YAML mapping, got %s" % (path, type_name(document.data)))
    return document


def load_plain(path):
    """Load `path` into plain Python data (dict, list, str, ...), as Synapse would read it."""
    text = read_text(path)
    check_nesting(text, path)
    if pyyaml is None:
        loader = YAML(typ="safe", pure=True)
        loader.version = _YAML_VERSION
        return _parse(loader, text, path)
    try:
        return check_expanded_size(pyyaml.load(text, Loader=getattr(pyyaml, "CSafeLoader", pyyaml.SafeLoader)), path)
    except pyyaml.YAMLError as exc:
        raise YamlFileError("%s: invalid YAML: %s" % (path, exc)) from None


# The YAML parsers recurse once per level of nesting (and ruamel.yaml slows down badly):
# a file nested deeper than any config of ours is refused before it is parsed.
MAX_NESTING = 64


def check_nesting(text, path):
    """Raise YamlFileError when `text` nests mappings and lists more than MAX_NESTING deep.

    Reads only a parser's event stream, without recursion: libyaml's when available (fast),
    else, or when libyaml gives up (it looks ahead through a whole flow collection),
    ruamel.yaml's. Invalid YAML is left to the parser that loads the file, which reports it.
    """
    parsers = [(lambda: YAML(typ="safe", pure=True).parse(text), CollectionStartEvent, CollectionEndEvent, YAMLError)]
    if pyyaml is not None:
        parsers.insert(0, (lambda: pyyaml.parse(text, Loader=getattr(pyyaml, "CSafeLoader", pyyaml.SafeLoader)),
                           pyyaml.CollectionStartEvent, pyyaml.CollectionEndEvent, pyyaml.YAMLError))
    for events, start, end, error in parsers:
        depth = 0
        try:
            for event in events():
                if isinstance(event, start):
                    depth += 1
                    if depth > MAX_NESTING:
                        raise YamlFileError("%s: nests mappings and lists more than %d levels deep; refusing to "
                                            "read it" % (path, MAX_NESTING))
                elif isinstance(event, end):
                    depth -= 1
            return
        except error:
            continue


# Aliases let a small file stand for a huge tree (a "billion laughs" file): more nodes
# than any config of ours has, once expanded, and the file is refused.
MAX_EXPANDED_NODES = 200000


def check_expanded_size(data, path):
    """Raise YamlFileError when `data`, with its aliases expanded, has more than MAX_EXPANDED_NODES nodes."""
    count, pending = 0, [data]
    while pending:
        node = pending.pop()
        count += 1
        if count > MAX_EXPANDED_NODES:
            raise YamlFileError("%s: expands to more than %d values (YAML aliases nested too deep?); "
                                "refusing to read it" % (path, MAX_EXPANDED_NODES))
        if isinstance(node, dict):
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return data


def _parse(yaml, text, path):
    try:
        return check_expanded_size(yaml.load(text), path)
    except YAMLError as exc:
        raise YamlFileError("%s: invalid YAML: %s" % (path, exc)) from None


def _round_trip_yaml(indent=None):
    yaml = YAML()
    yaml.version = _YAML_VERSION
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold long lines
    yaml.indent(**(indent or _DEFAULT_INDENT))
    return yaml


class Document:
    """A YAML file loaded for editing. Change `data` (see set_key / delete_key), then render()."""

    def __init__(self, path, text, data):
        self.path = path
        self.text = text
        self.data = data
        self._indent = _guess_indent(data)

    @classmethod
    def load(cls, path):
        text = read_text(path)
        check_nesting(text, path)
        return cls(path, text, _parse(_round_trip_yaml(), text, path))

    @classmethod
    def new(cls, path):
        return cls(path, "", CommentedMap())

    def dump(self, data):
        """Serialize `data` with this file's indentation."""
        stream = io.StringIO()
        _round_trip_yaml(self._indent).dump(data, stream)
        text = stream.getvalue()
        # The version directive only tells the dumper which rules to apply; keep it out.
        if text.startswith(_VERSION_HEADER):
            text = text[len(_VERSION_HEADER):]
        return text

    def render(self):
        """Return the new file text.

        ruamel.yaml normalizes a few things when it re-serializes a whole file (`key: null`
        becomes `key:`, spacing inside flow collections, ...). To keep every line we did not
        edit exactly as it was, only the lines that differ between a dump of the original
        data and a dump of the edited data are replaced in the original text. If that is
        not possible cleanly, the full dump is used.
        """
        edited = self.dump(self.data)
        if not self.text:
            return edited
        baseline = self.dump(_parse(_round_trip_yaml(), self.text, self.path))
        spliced = _splice(self.text, baseline, edited)
        if spliced is None:
            return edited
        try:
            same = same_data(_parse(_round_trip_yaml(), spliced, self.path), self.data)
        except YamlFileError:
            same = False
        return spliced if same else edited

    def masked_texts(self, secret_paths=()):
        """Before and after texts for a diff, with secrets hidden.

        Hidden: the values at `secret_paths` (tuples of keys, each may be an fnmatch
        pattern such as `*password*`), every value under a secret-like key anywhere
        (SECRET_LIKE_KEYS) and the password in connection strings. A secret that changes
        shows as MASK_CHANGED on the after side. None when there is nothing to hide.
        """
        original = _parse(_round_trip_yaml(), self.text, self.path) if self.text else None
        before, after = mask_secrets(copy.deepcopy(original), copy.deepcopy(self.data), secret_paths)
        if same_data(before, original) and same_data(after, self.data):
            return None
        return (self.dump(before) if before is not None else ""), self.dump(after)


def mask_secrets(before, after, secret_paths=()):
    """(before, after) data with secrets hidden (see Document.masked_texts); changes them in place."""
    for secret_path in secret_paths:
        _mask(after, before, secret_path, MASK_CHANGED)
        _mask(before, None, secret_path, MASK)
    _mask_secret_like(after, before, MASK_CHANGED)
    _mask_secret_like(before, None, MASK)
    return before, after


def is_secret_like(key):
    return isinstance(key, str) and any(fnmatch.fnmatchcase(key.lower(), pattern) for pattern in SECRET_LIKE_KEYS)


def _mask_secret_like(node, reference, changed_mask):
    """Hide values under secret-like keys and DSN passwords, in place, at any depth."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(reference, dict):
            other = reference.get(key)
        elif isinstance(reference, list) and isinstance(key, int) and key < len(reference):
            other = reference[key]
        else:
            other = None
        if isinstance(value, (dict, list)):
            _mask_secret_like(value, other, changed_mask)
        elif value is not None and is_secret_like(key):
            node[key] = MASK if reference is None or same_data(value, other) else changed_mask
        elif isinstance(value, str) and _DSN_PASSWORD.search(value):
            hidden = MASK if reference is None or same_data(value, other) else changed_mask
            node[key] = _DSN_PASSWORD.sub(lambda match: match.group(1) + hidden + match.group(2), value)


def _mask(node, reference, secret_path, changed_mask):
    """Replace secrets in `node`; one that differs from `reference` gets `changed_mask`."""
    if not isinstance(node, dict) or not secret_path:
        return
    pattern, rest = secret_path[0], secret_path[1:]
    for key in node:
        if not isinstance(key, str) or not fnmatch.fnmatchcase(key, pattern):
            continue
        other = reference.get(key) if isinstance(reference, dict) else None
        if rest:
            _mask(node[key], other, rest, changed_mask)
        elif node[key] is not None:
            node[key] = MASK if reference is None or same_data(node[key], other) else changed_mask


def write_if_changed(module, document, changed, secret_paths=(), validate=None, backup_path=None):
    """Finish an edit of `document`: the `changed` and `diff` results, and the write.

    Nothing is written in check mode. The diff never shows a secret: those at
    `secret_paths` and every secret-like key are masked (see masked_texts).

    `validate`: a command with %s (the new file's path), run before the new file replaces
    the old one; when it fails, the module fails and the file is untouched. `backup_path`:
    where the old text is kept (mode 0600) before the file is replaced (`backup_file`).
    """
    result = {"changed": changed}
    if not changed:
        return result
    text = document.render()
    if module._diff:
        # The exact texts unless something must be hidden.
        before, after = document.masked_texts(secret_paths) or (document.text, text)
        result["diff"] = make_diff(document.path, before, after)
    if not module.check_mode:
        try:
            if backup_path and document.text:
                atomic_write(backup_path, document.text)
                result["backup_file"] = backup_path
            atomic_write(document.path, text,
                         validate=validate and (lambda candidate: run_validate(module, validate, candidate, document.path)))
        except YamlFileError as exc:
            module.fail_json(msg=str(exc), **result)
        except OSError as exc:
            module.fail_json(msg="%s: cannot write it: %s" % (document.path, exc), **result)
    return result


def run_validate(module, command, candidate, path):
    """Run `command` (%s: the candidate file) for atomic_write; raise YamlFileError when it fails."""
    rc, out, err = module.run_command(command.replace("%s", shlex.quote(candidate)))
    if rc != 0:
        last_lines = "\n".join((err or out).strip().splitlines()[-8:])
        raise YamlFileError("%s: the new content was not accepted by `validate` (exit code %d), so the file is "
                            "unchanged. Its last words:\n%s" % (path, rc, last_lines))


def _guess_indent(data):
    """Learn mapping and sequence indentation from the first nested blocks of `data`."""
    found = {}
    pending = [data]
    while pending and len(found) < 3:
        node = pending.pop(0)
        if not isinstance(node, CommentedMap) or node.fa.flow_style():
            continue
        for key, value in node.items():
            if not isinstance(value, (CommentedMap, CommentedSeq)) or not value or value.fa.flow_style():
                continue
            key_line, key_col = node.lc.key(key)
            if isinstance(value, CommentedMap):
                value_line, value_col = node.lc.value(key)
                if "mapping" not in found and value_line > key_line:
                    found["mapping"] = value_col - key_col
                pending.append(value)
            elif "sequence" not in found and value.lc.line > key_line:
                found["offset"] = value.lc.col - key_col
                found["sequence"] = value.lc.item(0)[1] - key_col
                pending.extend(value)
    indent = dict(_DEFAULT_INDENT, **found)
    if indent["mapping"] < 1 or indent["offset"] < 0 or indent["sequence"] < indent["offset"] + 2:
        return dict(_DEFAULT_INDENT)
    return indent


def _splice(original, baseline, edited):
    """Apply the line changes baseline -> edited to `original`; None if they do not map onto it."""
    original_lines = original.splitlines(True)
    baseline_lines = baseline.splitlines(True)
    edited_lines = edited.splitlines(True)
    # Which original line each baseline line comes from. A run of lines that ruamel
    # rewrote one for one (`yes` -> `true`) still maps line by line.
    position = {}
    matcher = difflib.SequenceMatcher(None, baseline_lines, original_lines, autojunk=False)
    for tag, base_start, base_end, orig_start, orig_end in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and base_end - base_start == orig_end - orig_start):
            for offset in range(base_end - base_start):
                position[base_start + offset] = orig_start + offset
    position[-1] = -1
    position[len(baseline_lines)] = len(original_lines)
    out, copied_to = [], 0
    matcher = difflib.SequenceMatcher(None, baseline_lines, edited_lines, autojunk=False)
    for tag, base_start, base_end, edit_start, edit_end in matcher.get_opcodes():
        if tag == "equal":
            continue
        # The changed lines and their neighbours must map to one run of original lines.
        span = range(base_start - 1, base_end + 1)
        if any(i not in position or position[i] - position[span[0]] != i - span[0] for i in span):
            return None
        start, end = position[base_start - 1] + 1, position[base_end]
        out += original_lines[copied_to:start] + edited_lines[edit_start:edit_end]
        copied_to = end
    out += original_lines[copied_to:]
    return "".join(out)


def same_data(left, right):
    """Deep equality that tells booleans from numbers (YAML `true` is not `1`)."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_data(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same_data(a, b) for a, b in zip(left, right))
    if isinstance(left, (dict, list)) or isinstance(right, (dict, list)):
        return False
    return _kind(left) == _kind(right) and left == right


def _kind(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


# In-place updates. ruamel.yaml attaches the comment lines that follow a block to the last
# scalar inside it, so those lines travel with whatever is edited last. The helpers below
# detach them before an edit and re-attach them to whatever ends the block afterwards.

def set_key(mapping, key, value):
    """Set mapping[key] to exactly `value`, editing nested data in place. Returns True if it changed."""
    if key not in mapping:
        last = next(reversed(mapping), None) if mapping else None
        tail = _take_tail(mapping, last) if last is not None else ""
        mapping[key] = _commented(value)
        _put_tail(mapping, key, tail)
        return True
    tail = _take_tail(mapping, key)
    changed = _assign(mapping, key, value)
    _put_tail(mapping, key, tail)
    return changed


def delete_key(mapping, key):
    """Remove `key`, keeping the comment lines below it. Returns True if it was there."""
    if key not in mapping:
        return False
    keys = list(mapping)
    tail = _take_tail(mapping, key)
    del mapping[key]
    mapping.ca.items.pop(key, None)
    index = keys.index(key)
    if index > 0:
        _put_tail(mapping, keys[index - 1], tail)
    return True


def _assign(container, key, value):
    old = container[key]
    if isinstance(old, CommentedMap) and isinstance(value, dict):
        return update_mapping(old, value)
    if isinstance(old, CommentedSeq) and isinstance(value, list):
        return _sync_list(old, value)
    if same_data(old, value):
        return False
    container[key] = _commented(value)
    return True


def update_mapping(old, new):
    """Make mapping `old` equal to `new` (keys not in `new` go), in place. True if it changed."""
    changed = False
    for key in [key for key in old if key not in new]:
        changed = delete_key(old, key) or changed
    for key, value in new.items():
        changed = set_key(old, key, value) or changed
    return changed


def _sync_list(old, new):
    """Turn list `old` into `new` with minimal edits, so kept items keep their comments."""
    if same_data(old, new):
        return False
    matcher = difflib.SequenceMatcher(None, [_fingerprint(x) for x in old], [_fingerprint(x) for x in new], autojunk=False)
    # Apply from the end so earlier indexes stay valid.
    for tag, old_start, old_end, new_start, new_end in reversed(matcher.get_opcodes()):
        if tag == "equal":
            continue
        if tag == "replace" and old_end - old_start == new_end - new_start:
            for offset in range(old_end - old_start):
                index, value = old_start + offset, new[new_start + offset]
                if isinstance(old[index], dict) and isinstance(value, dict):
                    update_mapping(old[index], value)
                else:
                    del old[index]
                    old.insert(index, _commented(value))
            continue
        for index in reversed(range(old_start, old_end)):
            del old[index]
        for offset, value in enumerate(new[new_start:new_end]):
            old.insert(old_start + offset, _commented(value))
    return True


def _fingerprint(value):
    return json.dumps([_kind(value), value], sort_keys=True, default=str)


def _commented(value):
    """Copy plain dicts and lists into ruamel containers (block style) so comments can attach."""
    if isinstance(value, dict):
        return CommentedMap((k, _commented(v)) for k, v in value.items())
    if isinstance(value, list):
        return CommentedSeq(_commented(v) for v in value)
    return value


def _last_slot(container, key):
    """The (container, key) whose comment slot holds the lines that follow container[key]."""
    while True:
        value = container[key]
        if not isinstance(value, (CommentedMap, CommentedSeq)) or not value or value.fa.flow_style():
            return container, key
        container = value
        key = next(reversed(value)) if isinstance(value, CommentedMap) else len(value) - 1


def _comment_index(container):
    return 0 if isinstance(container, CommentedSeq) else 2


def _take_tail(container, key):
    """Detach and return the comment lines after container[key] (its end-of-line comment stays)."""
    container, key = _last_slot(container, key)
    slots = container.ca.items.get(key)
    index = _comment_index(container)
    token = slots[index] if slots and len(slots) > index else None
    if not isinstance(token, CommentToken):
        return ""
    head, _newline, tail = token.value.partition("\n")
    if not tail:
        return ""
    if head:
        token.value = head + "\n"
    else:
        slots[index] = None
    return tail


def _put_tail(container, key, tail):
    if not tail:
        return
    container, key = _last_slot(container, key)
    value = container[key]
    if isinstance(value, (CommentedMap, CommentedSeq)) and not value:
        # An empty block collection is written as `[]`/`{}` anyway; only in flow
        # style does ruamel place the comment after it rather than before it.
        value.fa.set_flow_style()
    index = _comment_index(container)
    slots = container.ca.items.setdefault(key, [None, None, None, None])
    token = slots[index]
    if isinstance(token, CommentToken):
        token.value = token.value + tail
    else:
        slots[index] = CommentToken("\n" + tail, start_mark=CommentMark(0))


def deep_merge(base, extra):
    """`base` with `extra` merged in: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = deep_merge(merged[key], value)
        merged[key] = value
    return merged


def atomic_write(path, text, validate=None):
    """Replace `path` with `text` atomically; an existing file keeps its owner, group and mode.

    A link, FIFO, device or directory at `path` is refused, never followed. Whatever stops
    the write (a missing directory, no space left...) raises YamlFileError naming `path`.

    A new file is created with mode 0600 (callers set the final mode). `validate`, when
    given, is called with the path of the complete new file (owner and mode already set)
    before it replaces `path`; whatever it raises leaves `path` untouched.
    """
    # Never through a link: a bridge may plant config.yaml -> /root/.ssh/authorized_keys
    # in the directory it can write.
    directory = os.path.dirname(os.path.abspath(path))
    try:
        current = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        current = None
    except ValueError:  # a NUL byte in the path
        raise YamlFileError("%r: cannot write: the path contains a NUL byte" % path) from None
    if current is not None:
        check_regular_file(path, current)
    if not os.path.isdir(directory):
        raise YamlFileError("%s: cannot write: the directory %s does not exist (or is not a directory)"
                            % (path, directory))
    tmp_path = None
    try:
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path), suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if current is not None:
            os.chmod(tmp_path, stat.S_IMODE(current.st_mode))
            tmp_stat = os.stat(tmp_path)
            if (tmp_stat.st_uid, tmp_stat.st_gid) != (current.st_uid, current.st_gid):
                os.chown(tmp_path, current.st_uid, current.st_gid)
        if validate is not None:
            validate(tmp_path)
        os.replace(tmp_path, path)
    except BaseException as exc:
        if tmp_path is not None and os.path.exists(tmp_path):
            os.unlink(tmp_path)
        if isinstance(exc, OSError):  # no space left, no permission...
            raise YamlFileError("%s: cannot write: %s" % (path, getattr(exc, "strerror", None) or exc)) from None
        raise
    # Make the rename itself durable.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def make_diff(path, before, after):
    """The `diff` return value for a file whose text changes from `before` to `after`."""
    return {
        "before": before,
        "after": after,
        "before_header": path,
        "after_header": path,
    }


def require_ruamel(module):
    """Fail `module` with the standard message when ruamel.yaml is not installed."""
    if not HAS_RUAMEL:
        module.fail_json(msg=missing_required_lib("ruamel.yaml"), exception=RUAMEL_IMPORT_ERROR)
