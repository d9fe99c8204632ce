# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Consistent backups of a Switchboard host, and their restore. Run by the backup role.

  create   ARGS_JSON  one .tar.gz: the /matrix tree (without PostgreSQL's data directory,
                      live SQLite files, self-build contexts and earlier backups), a
                      pg_dump of each database, a consistent copy of each SQLite database,
                      and MANIFEST.json
  files    ARGS_JSON  put an archive's files and SQLite databases back in place and unpack
                      its PostgreSQL dumps into a staging directory
  databases ARGS_JSON load the unpacked dumps into (empty) databases with pg_restore

Prints one JSON object. Standard library only: it runs with the host's python3.
Passwords never pass through here: pg_dump and pg_restore run inside the PostgreSQL
container as its superuser over the local socket.
"""
import datetime
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile

FORMAT = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
# Files SQLite keeps beside a live database; a restored database must not meet old ones.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class Failure(Exception):
    pass


def is_sqlite(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(16) == SQLITE_MAGIC
    except OSError:
        return False


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


def create(args):
    root = args["root"]
    matrix = args["matrix_path"]
    dest = args["dest"]
    skip = {os.path.normpath(p) for p in args.get("exclude", [])} | {os.path.normpath(dest)}
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
            info = os.stat(path)
            manifest["sqlite"].append(dict(path=name, uid=info.st_uid, gid=info.st_gid,
                                           mode="%04o" % (info.st_mode & 0o7777)))
        with open(os.path.join(staging, "MANIFEST.json"), "w") as handle:
            json.dump(manifest, handle, indent=2)

        live = {os.path.normpath(p) for p in live_sqlite}
        live |= {p + side for p in live for side in SQLITE_SIDE_FILES}

        def keep(member):
            path = os.path.normpath(os.path.join(root, member.name))
            if path in live or any(path == s or path.startswith(s + "/") for s in skip):
                return None
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
        return dict(changed=True, archive=archive, size=os.path.getsize(archive),
                    postgres=[d["name"] for d in manifest["postgres"]],
                    sqlite=[d["path"] for d in manifest["sqlite"]])
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_manifest(tar):
    try:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    except (KeyError, ValueError) as err:
        raise Failure("%s is not a Switchboard backup (no readable MANIFEST.json: %s)" % (tar.name, err))
    if manifest.get("format") != FORMAT:
        raise Failure("%s has backup format %r; this version reads format %d"
                      % (tar.name, manifest.get("format"), FORMAT))
    return manifest


def extract(tar, path, members):
    # Our own archive, paths checked by safe_members: keep owners and modes exactly.
    options = dict(filter="fully_trusted") if hasattr(tarfile, "fully_trusted_filter") else {}
    tar.extractall(path, members=members, numeric_owner=True, **options)


def safe_members(tar, prefix):
    for member in tar.getmembers():
        name = os.path.normpath(member.name)
        if name.startswith("..") or os.path.isabs(name):
            raise Failure("%s holds an unsafe path: %s" % (tar.name, member.name))
        if name == prefix or name.startswith(prefix + "/"):
            yield member


def inspect(args):
    with tarfile.open(args["archive"], "r:gz") as tar:
        manifest = read_manifest(tar)
    return dict(changed=False, manifest=manifest)


def files(args):
    root = args["root"]
    with tarfile.open(args["archive"], "r:gz") as tar:
        manifest = read_manifest(tar)
        expected = args.get("server_name", "")
        if expected and manifest.get("server_name") and manifest["server_name"] != expected:
            raise Failure("%s is a backup of %s, but this host is configured for %s (synapse_server_name)"
                          % (args["archive"], manifest["server_name"], expected))
        extract(tar, root, list(safe_members(tar, manifest["matrix"])))
        staging = tempfile.mkdtemp(prefix=".restore-", dir=args["staging_parent"])
        extract(tar, staging, list(safe_members(tar, "dumps")))
    for database in manifest["sqlite"]:
        target = os.path.join(root, database["path"])
        for side in SQLITE_SIDE_FILES:
            if os.path.exists(target + side):
                os.unlink(target + side)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        partial = target + ".restoring"
        shutil.copyfile(os.path.join(staging, "dumps", "sqlite", database["path"]), partial)
        os.chown(partial, database["uid"], database["gid"])
        os.chmod(partial, int(database["mode"], 8))
        os.replace(partial, target)
    if not manifest["postgres"]:
        shutil.rmtree(staging, ignore_errors=True)
    return dict(changed=True, staging=staging, postgres=manifest["postgres"],
                sqlite=[d["path"] for d in manifest["sqlite"]], server_name=manifest.get("server_name", ""))


def databases(args):
    container = args["postgres_container"]
    for database in args["postgres"]:
        with open(os.path.join(args["staging"], database["file"]), "rb") as dump:
            run(["docker", "exec", "-i", container, "pg_restore", "-U", args["postgres_superuser"],
                 "--dbname", database["name"], "--no-owner", "--role", database["owner"],
                 "--exit-on-error", "--single-transaction"], stdin=dump)
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
