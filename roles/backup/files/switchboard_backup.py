# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Consistent backups of a Switchboard host, and their restore. Run by the backup role.

  create   ARGS_JSON  one .tar.gz: the /matrix tree (without PostgreSQL's data directory,
                      live SQLite files, self-build contexts and earlier backups), a
                      pg_dump of each database, a consistent copy of each SQLite database,
                      and MANIFEST.json
  inspect  ARGS_JSON  check an archive as a restore would and print its manifest
  files    ARGS_JSON  put an archive's files and SQLite databases back in place and unpack
                      its PostgreSQL dumps into a staging directory
  databases ARGS_JSON load the unpacked dumps into (empty) databases with pg_restore

Prints one JSON object. Standard library only: it runs with the host's python3 (3.10+).
Passwords never pass through here: pg_dump and pg_restore run inside the PostgreSQL
container as its superuser over the local socket.

A restore runs as root and trusts neither the archive (it may have been altered) nor
the tree it writes to (a compromised container can plant links in its own directory
under /matrix). So the whole archive and its manifest are checked, and every path on
the host it will write to, before anything is written (check_archive, check_host);
then every write goes through directory descriptors opened without following links,
into a new file renamed over the old one (write_file).
"""
import datetime
import json
import os
import posixpath
import re
import secrets
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
import tempfile

FORMAT = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
# Files SQLite keeps beside a live database; a restored database must not meet old ones.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
# Used with fullmatch: "$" would let a trailing newline through.
PG_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
OCTAL_MODE = re.compile(r"[0-7]{3,4}")
HIGH_BITS = ((0o4000, "setuid"), (0o2000, "setgid"), (0o1000, "sticky"))
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class Failure(Exception):
    pass


def is_sqlite(path):
    # Not through a link a container planted, nor blocking on a FIFO.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        return stat.S_ISREG(os.fstat(fd).st_mode) and handle.read(16) == SQLITE_MAGIC


def find_sqlite(root, skip):
    """SQLite databases under root, at most three levels down, outside the skipped trees."""
    found = []
    base_depth = root.rstrip("/").count("/")
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if os.path.join(directory, d) not in skip
                            and d != "media_store")
        if directory.count("/") - base_depth >= 3:
            subdirs[:] = []
        for name in sorted(files):
            path = os.path.join(directory, name)
            if name.endswith(SQLITE_SUFFIXES) and is_sqlite(path):
                found.append(path)
    return found


def snapshot_sqlite(source, target):
    """A consistent copy of a live database, through SQLite's online backup API."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    src = sqlite3.connect("file:%s?mode=ro" % source, uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def run(argv, stdout=None, stdin=None):
    result = subprocess.run(argv, stdout=stdout if stdout else subprocess.PIPE, stdin=stdin,
                            stderr=subprocess.PIPE, check=False)
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace").strip()[-2000:]
        raise Failure("%s failed (rc %d): %s" % (" ".join(argv[:4]), result.returncode, error))
    return result


def relative(root, path):
    return os.path.relpath(path, root)


# The names create gives its archives when none is given (a scheduled run): the only ones
# a rotation may delete.
AUTO_NAME = re.compile(r"^switchboard-[0-9]{8}T[0-9]{6}Z\.tar\.gz\Z")


def auto_name():
    return datetime.datetime.now(datetime.timezone.utc).strftime("switchboard-%Y%m%dT%H%M%SZ")


def owned_databases(container, superuser):
    """Every database of the PostgreSQL server but its own, with its owner (a scheduled run
    dumps the databases there are then, bridges added since included)."""
    listing = run(["docker", "exec", container, "psql", "-U", superuser, "-AtF", "\t", "-c",
                   "SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
                   "WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY datname"], stdout=subprocess.PIPE)
    return [dict(name=name, owner=owner) for name, owner in
            (line.split("\t") for line in listing.stdout.decode().splitlines() if line)]


def rotate(dest, keep, created):
    """Delete the oldest automatically named archives beyond the newest `keep` (0: keep all)."""
    if keep <= 0:
        return []
    archives = sorted(name for name in os.listdir(dest) if AUTO_NAME.match(name)
                      and os.path.isfile(os.path.join(dest, name)) and not os.path.islink(os.path.join(dest, name)))
    removed = [name for name in archives[:-keep] if os.path.join(dest, name) != created]
    for name in removed:
        os.unlink(os.path.join(dest, name))
    return removed


def copy_archive(archive, copy_dir, keep):
    """Copy a finished archive into copy_dir (another disk or a mounted remote), whole or not at all.

    The directory must already exist: when a remote is not mounted, its mount point is
    missing or is not the place to fill, and creating it would put the "off-site" copy on
    the local disk."""
    if not os.path.isdir(copy_dir) or os.path.islink(copy_dir):
        raise Failure("backup_copy_path %s is not a directory (is the remote storage mounted?); "
                      "the archive %s was written and is kept" % (copy_dir, archive))
    target = os.path.join(copy_dir, os.path.basename(archive))
    partial = os.path.join(copy_dir, "." + os.path.basename(archive) + ".partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with open(archive, "rb") as source, os.fdopen(fd, "wb") as copy:
            shutil.copyfileobj(source, copy, 1024 * 1024)
            copy.flush()
            os.fsync(copy.fileno())
        os.replace(partial, target)
    except OSError as err:
        if os.path.lexists(partial):
            os.unlink(partial)
        raise Failure("copying %s to backup_copy_path %s failed: %s; the archive itself is kept"
                      % (archive, copy_dir, err)) from err
    return target, rotate(copy_dir, keep, target)


def create(args):
    root = args["root"]
    matrix = args["matrix_path"]
    dest = args["dest"]
    args = dict(args, name=args.get("name") or auto_name())
    if args.get("postgres_databases") == "all":
        args["postgres_databases"] = owned_databases(args["postgres_container"], args["postgres_superuser"])
    skip = {os.path.normpath(p) for p in args.get("exclude", []) + [dest] + [args.get("copy_dir") or dest]}
    os.makedirs(dest, mode=0o700, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=dest)
    try:
        manifest = dict(format=FORMAT, created=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                        server_name=args.get("server_name", ""), matrix=relative(root, matrix),
                        postgres=[], sqlite=[])
        container = args.get("postgres_container", "")
        for database in args.get("postgres_databases", []):
            dump = os.path.join(staging, "dumps", "postgres", database["name"] + ".dump")
            os.makedirs(os.path.dirname(dump), exist_ok=True)
            with open(dump, "wb") as handle:
                run(["docker", "exec", container, "pg_dump", "-U", args["postgres_superuser"],
                     "--format=custom", "--no-owner", "--no-privileges", database["name"]], stdout=handle)
            manifest["postgres"].append(dict(name=database["name"], owner=database["owner"],
                                             file="dumps/postgres/%s.dump" % database["name"]))
        live_sqlite = find_sqlite(matrix, skip)
        for path in live_sqlite:
            name = relative(root, path)
            snapshot_sqlite(path, os.path.join(staging, "dumps", "sqlite", name))
            info = os.lstat(path)
            # A restore refuses setuid, setgid and sticky bits: never record them.
            manifest["sqlite"].append(dict(path=name, uid=info.st_uid, gid=info.st_gid,
                                           mode="%04o" % (info.st_mode & 0o777)))
        with open(os.path.join(staging, "MANIFEST.json"), "w") as handle:
            json.dump(manifest, handle, indent=2)

        live = {os.path.normpath(p) for p in live_sqlite}
        live |= {p + side for p in live for side in SQLITE_SIDE_FILES}
        skipped = []

        def keep(member):
            path = os.path.normpath(os.path.join(root, member.name))
            if path in live or any(path == s or path.startswith(s + "/") for s in skip):
                return None
            # A restore takes only regular files and directories without setuid, setgid or
            # sticky bits, so the archive holds nothing else: a second name of a file is
            # stored as a file again, links and special files are left out (and reported).
            if member.islnk():
                member.type, member.linkname, member.size = tarfile.REGTYPE, "", os.lstat(path).st_size
            if not (member.isreg() or member.isdir()):
                skipped.append(member.name)
                return None
            member.mode &= 0o777
            return member

        archive = os.path.join(dest, args["name"] + ".tar.gz")
        partial = archive + ".partial"
        # Written under another name and renamed when complete: an archive with the final
        # name is always whole.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=3) as tar:
            tar.add(os.path.join(staging, "MANIFEST.json"), arcname="MANIFEST.json")
            if os.path.isdir(os.path.join(staging, "dumps")):
                tar.add(os.path.join(staging, "dumps"), arcname="dumps")
            tar.add(matrix, arcname=relative(root, matrix), filter=keep)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, archive)
        removed = rotate(dest, int(args.get("keep", 0)), archive)
        result = dict(changed=True, archive=archive, size=os.path.getsize(archive), removed=removed,
                      postgres=[d["name"] for d in manifest["postgres"]],
                      sqlite=[d["path"] for d in manifest["sqlite"]], skipped=skipped)
        if args.get("copy_dir"):
            result["copied_to"], result["copies_removed"] = copy_archive(archive, args["copy_dir"], int(args.get("keep", 0)))
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# Checks of the archive: all of them run before anything is written.

def name_problem(name):
    """Why a relative path from an archive or its manifest cannot be used, or None."""
    if not isinstance(name, str) or name in ("", "."):
        return "is not a relative path"
    if "\0" in name:
        return "holds a NUL byte"
    if name.startswith("/"):
        return "is an absolute path"
    if ".." in name.split("/"):
        return "climbs out with .."
    if posixpath.normpath(name) != name:
        return "is not in normal form (%s)" % posixpath.normpath(name)
    return None


def mode_problem(mode):
    bits = [label for bit, label in HIGH_BITS if mode & bit]
    return "has mode %04o: %s refused" % (mode & 0o7777, " and ".join(bits)) if bits else None


def member_problem(member):
    """tarfile.data_filter's checks, written out: Python 3.10 may lack it, and it would drop
    the numeric owners the data needs (uid 991, 1337, 999...). Setuid, setgid and sticky bits
    refuse the archive rather than being stripped: create never stores them, so an archive
    that has them was made or altered elsewhere."""
    problem = name_problem(member.name)
    if problem:
        return problem
    if member.issym():
        return "is a symbolic link (to %s)" % member.linkname
    if member.islnk():
        return "is a hard link (to %s)" % member.linkname
    if member.ischr():
        return "is a character device"
    if member.isblk():
        return "is a block device"
    if member.isfifo():
        return "is a FIFO"
    if not (member.isreg() or member.isdir()):
        return "has unsupported type %r" % member.type
    if not (0 <= member.uid < 2 ** 32 - 1 and 0 <= member.gid < 2 ** 32 - 1):
        return "has owner %d:%d" % (member.uid, member.gid)
    return mode_problem(member.mode)


def parents(name):
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def in_tree(name, tree):
    return name == tree or name.startswith(tree + "/")


def is_id(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535  # not bool, not "0"


def postgres_problem(entry):
    if not isinstance(entry, dict):
        return "is not an object"
    for key in ("name", "owner"):
        if not isinstance(entry.get(key), str) or not PG_NAME.fullmatch(entry[key]):
            return "has %s %r: it must match %s" % (key, entry.get(key), PG_NAME.pattern)
    if entry.get("file") != "dumps/postgres/%s.dump" % entry["name"]:
        return "has file %r: it must be dumps/postgres/%s.dump" % (entry.get("file"), entry["name"])
    return None


def sqlite_problem(entry, tree):
    if not isinstance(entry, dict):
        return "is not an object"
    path = entry.get("path")
    problem = name_problem(path)
    if problem:
        return "has path %r, which %s" % (path, problem)
    if not path.startswith(tree + "/"):
        return "has path %s, outside %s/" % (path, tree)
    for key in ("uid", "gid"):
        if not is_id(entry.get(key)):
            return "has %s %r: it must be an integer from 0 to 65535" % (key, entry.get(key))
    mode = entry.get("mode")
    if not isinstance(mode, str) or not OCTAL_MODE.fullmatch(mode):
        return "has mode %r: it must be an octal string such as \"0640\"" % (mode,)
    return mode_problem(int(mode, 8))


def read_manifest(tar):
    try:
        member = tar.getmember("MANIFEST.json")
        if not member.isreg():
            raise ValueError("it is not a regular file")
        manifest = json.load(tar.extractfile(member))
    except (KeyError, ValueError) as err:
        raise Failure("%s is not a Switchboard backup (no readable MANIFEST.json: %s)" % (tar.name, err))
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise Failure("%s has backup format %r; this version reads format %d" % (tar.name, found, FORMAT))
    return manifest


def check_manifest(manifest, tree):
    """Raises Failure unless every field a restore uses is as create writes it."""
    problem = name_problem(tree)
    if problem:
        raise Failure("the tree to restore, %r, %s (matrix: backup_matrix_path relative to the root)"
                      % (tree, problem))
    if manifest.get("matrix") != tree:
        raise Failure("it is a backup of the tree %r, but this restore puts back %r (backup_matrix_path)"
                      % (manifest.get("matrix"), tree))
    if not isinstance(manifest.get("server_name", ""), str):
        raise Failure("its server_name is not a string")
    for key in ("postgres", "sqlite"):
        if not isinstance(manifest.get(key), list):
            raise Failure("its %s is not a list" % key)
    for entry in manifest["postgres"]:
        problem = postgres_problem(entry)
        if problem:
            raise Failure("its PostgreSQL entry %s %s" % (json.dumps(entry), problem))
    for entry in manifest["sqlite"]:
        problem = sqlite_problem(entry, tree)
        if problem:
            raise Failure("its SQLite entry %s %s" % (json.dumps(entry), problem))
    names = [d["name"] for d in manifest["postgres"]]
    paths = [d["path"] for d in manifest["sqlite"]]
    if len(set(names)) != len(names) or len(set(paths)) != len(paths):
        raise Failure("it names a database twice")


def check_archive(tar, tree):
    """The manifest and the members, once every member and manifest field is known safe:
    only MANIFEST.json, the tree, and the manifest's dumps (and their directories)."""
    members = tar.getmembers()
    seen = set()
    for member in members:
        problem = member_problem(member) or ("appears twice" if member.name in seen else None)
        if problem:
            raise Failure("%s: member %s %s; nothing was restored" % (tar.name, member.name, problem))
        seen.add(member.name)
    manifest = read_manifest(tar)
    try:
        check_manifest(manifest, tree)
    except Failure as err:
        raise Failure("%s: MANIFEST.json refused: %s; nothing was restored" % (tar.name, err))
    dumps = {d["file"] for d in manifest["postgres"]} | {"dumps/sqlite/" + d["path"] for d in manifest["sqlite"]}
    dump_dirs = {parent for dump in dumps for parent in parents(dump)}
    for member in members:
        name = member.name
        if name == "MANIFEST.json" or name in dumps:
            allowed = member.isreg()
        elif name in dump_dirs:
            allowed = member.isdir()
        else:
            allowed = in_tree(name, tree)
        if not allowed:
            raise Failure("%s: member %s is not part of a backup of %s/ (only MANIFEST.json, that tree and "
                          "the manifest's dumps are); nothing was restored" % (tar.name, name, tree))
    missing = sorted(dumps - seen)
    if missing:
        raise Failure("%s: it lacks the dump %s that MANIFEST.json names; nothing was restored"
                      % (tar.name, missing[0]))
    # Nothing on the host may have to be both a file and a directory, or be written twice.
    db_paths = {d["path"] for d in manifest["sqlite"]}
    on_host = {m.name for m in members if in_tree(m.name, tree)} | db_paths
    file_names = {m.name for m in members if m.isreg() and in_tree(m.name, tree)} | db_paths
    clashes = sorted(file_names & {parent for name in on_host for parent in parents(name)})
    if clashes:
        raise Failure("%s: %s is a file with other paths under it; nothing was restored" % (tar.name, clashes[0]))
    clashes = sorted(db_paths & seen)
    if clashes:
        raise Failure("%s: the SQLite database %s is also a member; nothing was restored" % (tar.name, clashes[0]))
    return manifest, members


# Checks of the host, before anything is written, and writes that never follow a link.

def kind_problem(mode, want_dir):
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if want_dir:
        return None if stat.S_ISDIR(mode) else "is not a directory"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))
    return "is a %s, not a regular file" % next((label for test, label in kinds if test(mode)), "special file")


def check_host(root, targets):
    """Refuses when an existing path on the way to a target (relative path, is a directory)
    is a link, or not a directory where one is needed, or not a regular file where one is written."""
    known = {}
    for rel, is_dir in targets:
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in known:
                try:
                    known[sub] = os.lstat(os.path.join(root, sub)).st_mode
                except FileNotFoundError:
                    known[sub] = None
            if known[sub] is None:
                break
            problem = kind_problem(known[sub], is_dir or i < len(parts))
            if problem:
                raise Failure("%s %s; refusing to write through it, nothing was restored"
                              % (os.path.join(root, sub), problem))


def open_dir(base_fd, rel, shown, create=True):
    """A descriptor of directory rel under base_fd, made (0700) where missing; a link on
    the way (planted after check_host) stops the restore."""
    fd = os.dup(base_fd)
    try:
        for part in rel.split("/") if rel else []:
            if create:
                try:
                    os.mkdir(part, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
            next_fd = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
    except OSError as err:
        os.close(fd)
        raise Failure("cannot open %s without following a link: %s" % (os.path.join(shown, rel), err))
    return fd


def set_attributes(fd, owner, mode, mtime):
    if owner is not None:
        try:
            os.fchown(fd, *owner)
        except PermissionError:
            # Only an unprivileged run (the unit tests) cannot give files away.
            if os.geteuid() == 0:
                raise
    os.fchmod(fd, mode)
    os.utime(fd, (mtime, mtime))


def write_file(dir_fd, name, source, owner, mode, mtime):
    """A new file beside name, renamed over it: whatever is at name (even a link planted
    after check_host) is replaced, never written through."""
    temp = ".restoring-" + secrets.token_hex(8)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out)
            out.flush()
            set_attributes(out.fileno(), owner, mode, mtime)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        os.unlink(temp, dir_fd=dir_fd)
        raise


def write_under(base_fd, shown, rel, source, owner, mode, mtime):
    parent, name = posixpath.split(rel)
    dir_fd = open_dir(base_fd, parent, shown)
    try:
        write_file(dir_fd, name, source, owner, mode, mtime)
    finally:
        os.close(dir_fd)


def inspect(args):
    with tarfile.open(args["archive"], "r:gz") as tar:
        manifest, _members = check_archive(tar, args.get("matrix"))
    return dict(changed=False, manifest=manifest)


def files(args):
    root = args["root"]
    tree = args.get("matrix")
    with tarfile.open(args["archive"], "r:gz") as tar:
        manifest, members = check_archive(tar, tree)
        expected = args.get("server_name", "")
        if expected and manifest.get("server_name") and manifest["server_name"] != expected:
            raise Failure("%s is a backup of %s, but this host is configured for %s (synapse_server_name)"
                          % (args["archive"], manifest["server_name"], expected))
        staging_parent = relative(root, args["staging_parent"])
        if name_problem(staging_parent):
            raise Failure("the staging directory's parent %s is not under %s" % (args["staging_parent"], root))
        sqlite = {"dumps/sqlite/" + d["path"]: d for d in manifest["sqlite"]}
        dumps = {d["file"] for d in manifest["postgres"]}
        targets = [(m.name, m.isdir()) for m in members if in_tree(m.name, tree)]
        targets += [(d["path"] + side, False) for d in manifest["sqlite"] for side in ("",) + SQLITE_SIDE_FILES]
        targets.append((staging_parent, True))
        check_host(root, targets)

        # Nothing has been written up to here.
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        staging = staging_fd = None
        try:
            if dumps:
                parent_fd = open_dir(root_fd, staging_parent, root)
                try:
                    name = ".restore-" + secrets.token_hex(8)
                    os.mkdir(name, 0o700, dir_fd=parent_fd)
                    staging_fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
                finally:
                    os.close(parent_fd)
                staging = os.path.join(args["staging_parent"], name)
            directories = []
            for member in members:
                if member.name in dumps:
                    write_under(staging_fd, staging, member.name, tar.extractfile(member), None, 0o600, member.mtime)
                elif member.name in sqlite:
                    restore_sqlite(root_fd, root, sqlite[member.name], tar.extractfile(member), member.mtime)
                elif in_tree(member.name, tree) and member.isdir():
                    os.close(open_dir(root_fd, member.name, root))
                    directories.append(member)
                elif in_tree(member.name, tree):
                    write_under(root_fd, root, member.name, tar.extractfile(member), (member.uid, member.gid),
                                member.mode & 0o777, member.mtime)
            # Directories last, deepest first, as tarfile does: a read-only one is filled first.
            for member in sorted(directories, key=lambda m: m.name, reverse=True):
                fd = open_dir(root_fd, member.name, root)
                try:
                    set_attributes(fd, (member.uid, member.gid), member.mode & 0o777, member.mtime)
                finally:
                    os.close(fd)
        finally:
            os.close(root_fd)
            if staging_fd is not None:
                os.close(staging_fd)
    return dict(changed=True, staging=staging, postgres=manifest["postgres"],
                sqlite=[d["path"] for d in manifest["sqlite"]], server_name=manifest.get("server_name", ""))


def restore_sqlite(root_fd, root, entry, source, mtime):
    parent, name = posixpath.split(entry["path"])
    dir_fd = open_dir(root_fd, parent, root)
    try:
        for side in SQLITE_SIDE_FILES:
            try:
                os.unlink(name + side, dir_fd=dir_fd)  # removes a link itself, never its target
            except FileNotFoundError:
                pass
        write_file(dir_fd, name, source, (entry["uid"], entry["gid"]), int(entry["mode"], 8), mtime)
    finally:
        os.close(dir_fd)


def databases(args):
    container = args["postgres_container"]
    for entry in args["postgres"]:
        problem = postgres_problem(entry)
        if problem:
            raise Failure("the PostgreSQL entry %s %s" % (json.dumps(entry), problem))
    staging_fd = os.open(args["staging"], DIR_FLAGS)
    try:
        dumps_fd = open_dir(staging_fd, "dumps/postgres", args["staging"], create=False)
    finally:
        os.close(staging_fd)
    try:
        for entry in args["postgres"]:
            # Only a regular file in the staging directory; O_NONBLOCK so that a FIFO cannot hang us.
            try:
                fd = os.open(entry["name"] + ".dump", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dumps_fd)
            except OSError as err:
                raise Failure("cannot open %s/%s without following a link: %s" % (args["staging"], entry["file"], err))
            with os.fdopen(fd, "rb") as dump:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise Failure("%s/%s is not a regular file" % (args["staging"], entry["file"]))
                run(["docker", "exec", "-i", container, "pg_restore", "-U", args["postgres_superuser"],
                     "--dbname", entry["name"], "--no-owner", "--role", entry["owner"],
                     "--exit-on-error", "--single-transaction"], stdin=dump)
    finally:
        os.close(dumps_fd)
    shutil.rmtree(args["staging"], ignore_errors=True)
    return dict(changed=True, postgres=[d["name"] for d in args["postgres"]])


COMMANDS = dict(create=create, inspect=inspect, files=files, databases=databases)


def main(argv):
    if len(argv) != 3 or argv[1] not in COMMANDS:
        print(json.dumps(dict(failed=True, msg="usage: %s {%s} ARGS_JSON" % (argv[0], "|".join(COMMANDS)))))
        return 2
    try:
        result = COMMANDS[argv[1]](json.loads(argv[2]))
    except (Failure, OSError, sqlite3.Error, tarfile.TarError) as err:
        print(json.dumps(dict(failed=True, msg=str(err))))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
