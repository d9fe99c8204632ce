"""The backup role's script against hostile archives and a tampered host: each is refused
with a message naming the problem, and the scratch root is left byte-identical."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import stat
import tarfile

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "backup", "files", "switchboard_backup.py")
spec = importlib.util.spec_from_file_location("switchboard_backup", SCRIPT)
backup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(backup)

TYPES = dict(file=tarfile.REGTYPE, dir=tarfile.DIRTYPE, symlink=tarfile.SYMTYPE, hardlink=tarfile.LNKTYPE,
             chr=tarfile.CHRTYPE, blk=tarfile.BLKTYPE, fifo=tarfile.FIFOTYPE)
MANIFEST = dict(format=1, created="2026-01-01T00:00:00+00:00", server_name="example.test", matrix="matrix",
                postgres=[], sqlite=[])
DB = dict(path="matrix/synapse/homeserver.db", uid=991, gid=991, mode="0600")
PG = dict(name="synapse", owner="synapse", file="dumps/postgres/synapse.dump")


def entry(name, kind="file", data=b"restored\n", mode=None, link="", uid=991):
    info = tarfile.TarInfo(name)
    info.type = TYPES[kind]
    info.mode = mode if mode is not None else 0o755 if kind == "dir" else 0o644
    info.linkname = link
    info.uid = info.gid = uid
    info.mtime = 1700000000
    info.devmajor, info.devminor = 1, 3
    info.size = len(data) if kind == "file" else 0
    return info, io.BytesIO(data) if kind == "file" else None


def good_members():
    return [entry("matrix", "dir"), entry("matrix/synapse", "dir"), entry("matrix/synapse/homeserver.yaml")]


def make_archive(path, members=(), **manifest):
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(*entry("MANIFEST.json", data=json.dumps(dict(MANIFEST, **manifest)).encode(), uid=0))
        for info, data in good_members() + list(members):
            tar.addfile(info, data)
    return str(path)


def make_good_archive(path):
    """With a SQLite database and a PostgreSQL dump, as create writes them."""
    return make_archive(path, [entry("dumps/sqlite/" + DB["path"], data=b"SQLite format 3\x00rows"),
                               entry(PG["file"], data=b"PGDMP dump")], sqlite=[DB], postgres=[PG])


@pytest.fixture
def host(tmp_path):
    """A scratch root with a deployed tree, and an outside file a restore must never touch."""
    root = tmp_path / "root"
    (root / "matrix" / "synapse").mkdir(parents=True)
    (root / "matrix" / "synapse" / "homeserver.yaml").write_text("old\n")
    (root / "matrix" / "backups").mkdir(mode=0o700)
    (tmp_path / "outside" / "dir").mkdir(parents=True)
    (tmp_path / "outside" / "victim").write_text("precious\n")
    return tmp_path, root


def snapshot(top):
    """Every path's type, mode, owner, mtime and content (a link's target), links not followed."""
    found = {}
    for directory, dirs, names in os.walk(top):
        for name in dirs + names:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            content = None
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    content = handle.read()
            elif stat.S_ISLNK(info.st_mode):
                content = os.readlink(path)
            found[os.path.relpath(path, top)] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode),
                                                 info.st_uid, info.st_gid, info.st_mtime_ns, content)
    return found


def restore_args(tmp_path, root, archive):
    return dict(root=str(root), archive=archive, matrix="matrix", server_name="example.test",
                staging_parent=str(root / "matrix" / "backups"))


HOSTILE = [
    pytest.param([entry("matrix/synapse/link", "symlink", link="/etc/passwd")], {},
                 "member matrix/synapse/link is a symbolic link", id="symlink"),
    pytest.param([entry("matrix/evil", "symlink", link="../../outside"), entry("matrix/evil/victim", data=b"owned")],
                 {}, "member matrix/evil is a symbolic link", id="symlink-then-file-under-it"),
    pytest.param([entry("matrix/synapse/copy", "hardlink", link="matrix/synapse/homeserver.yaml")], {},
                 "member matrix/synapse/copy is a hard link", id="hardlink"),
    pytest.param([entry("matrix/victim", "hardlink", link="../outside/victim"), entry("matrix/victim", data=b"owned")],
                 {}, r"member matrix/victim is a hard link \(to \.\./outside/victim\)", id="hardlink-outside"),
    pytest.param([entry("matrix/mem", "chr")], {}, "member matrix/mem is a character device", id="char-device"),
    pytest.param([entry("matrix/disk", "blk")], {}, "member matrix/disk is a block device", id="block-device"),
    pytest.param([entry("matrix/pipe", "fifo")], {}, "member matrix/pipe is a FIFO", id="fifo"),
    pytest.param([entry("matrix/sh", mode=0o4755)], {}, "member matrix/sh has mode 4755: setuid refused",
                 id="setuid-file"),
    pytest.param([entry("matrix/shared", "dir", mode=0o2775)], {}, "member matrix/shared has mode 2775: setgid refused",
                 id="setgid-dir"),
    pytest.param([entry("/etc/cron.d/x")], {}, "member /etc/cron.d/x is an absolute path", id="absolute-name"),
    pytest.param([entry("matrix/../../outside/victim")], {},
                 r"member matrix/\.\./\.\./outside/victim climbs out with \.\.", id="dotdot-name"),
    pytest.param([entry("matrix/./synapse/x")], {}, "member matrix/./synapse/x is not in normal form",
                 id="unnormalised-name"),
    pytest.param([entry("etc/cron.d/x")], {}, "member etc/cron.d/x is not part of a backup of matrix/",
                 id="outside-member"),
    pytest.param([entry("matrix/synapse/homeserver.yaml")], {}, "member matrix/synapse/homeserver.yaml appears twice",
                 id="duplicate-member"),
    pytest.param([entry("matrix/synapse/homeserver.yaml/x")], {},
                 "matrix/synapse/homeserver.yaml is a file with other paths under it", id="file-under-a-file"),
    pytest.param([entry("etc", "dir"), entry("etc/cron.d", "dir"), entry("etc/cron.d/x")], dict(matrix="etc"),
                 "backup of the tree 'etc', but this restore puts back 'matrix'", id="manifest-matrix-etc"),
    pytest.param([], dict(matrix="../x"), r"backup of the tree '\.\./x', but this restore puts back 'matrix'",
                 id="manifest-matrix-dotdot"),
    pytest.param([], dict(postgres=[dict(PG, file="dumps/postgres/../../../outside/victim")]),
                 "has file 'dumps/postgres/../../../outside/victim': it must be dumps/postgres/synapse.dump",
                 id="postgres-file-dotdot"),
    pytest.param([entry('dumps/postgres/syn"apse.dump')],
                 dict(postgres=[dict(name='syn"apse', owner="synapse", file='dumps/postgres/syn"apse.dump')]),
                 "has name 'syn\"apse': it must match", id="postgres-name-quote"),
    pytest.param([entry("dumps/postgres/a/b.dump")],
                 dict(postgres=[dict(name="a/b", owner="synapse", file="dumps/postgres/a/b.dump")]),
                 "has name 'a/b': it must match", id="postgres-name-slash"),
    pytest.param([entry(PG["file"])], dict(postgres=[dict(PG, owner="synapse\n")]),
                 "has owner 'synapse\\\\n': it must match", id="postgres-owner-newline"),
    pytest.param([], dict(postgres=[PG]), "it lacks the dump dumps/postgres/synapse.dump", id="postgres-dump-missing"),
    pytest.param([entry("dumps/sqlite/etc/x.db")], dict(sqlite=[dict(DB, path="etc/x.db")]),
                 "has path etc/x.db, outside matrix/", id="sqlite-path-outside"),
    pytest.param([entry("dumps/sqlite/etc/x.db")], dict(sqlite=[dict(DB, path="matrix/../etc/x.db")]),
                 r"has path 'matrix/\.\./etc/x.db', which climbs out", id="sqlite-path-dotdot"),
    pytest.param([entry("dumps/sqlite/" + DB["path"])], dict(sqlite=[dict(DB, mode="4755")]),
                 "has mode 4755: setuid refused", id="sqlite-mode-setuid"),
    pytest.param([entry("dumps/sqlite/" + DB["path"])], dict(sqlite=[dict(DB, uid="0")]),
                 "has uid '0': it must be an integer from 0 to 65535", id="sqlite-uid-not-int"),
    pytest.param([entry("dumps/sqlite/" + DB["path"])], dict(sqlite=[dict(DB, gid=70000)]),
                 "has gid 70000: it must be an integer from 0 to 65535", id="sqlite-gid-out-of-range"),
]


@pytest.mark.parametrize("members, manifest, message", HOSTILE)
def test_a_hostile_archive_is_refused_before_anything_is_written(host, members, manifest, message):
    tmp_path, root = host
    archive = make_archive(tmp_path / "hostile.tar.gz", members, **manifest)
    before = snapshot(tmp_path)
    # The role's inspect step refuses it already, and so does the restore itself.
    with pytest.raises(backup.Failure, match=message):
        backup.inspect(dict(archive=archive, matrix="matrix"))
    with pytest.raises(backup.Failure, match=message):
        backup.files(restore_args(tmp_path, root, archive))
    assert snapshot(tmp_path) == before


def plant_link_at_file(tmp_path, root):
    os.unlink(root / "matrix" / "synapse" / "homeserver.yaml")
    os.symlink(tmp_path / "outside" / "victim", root / "matrix" / "synapse" / "homeserver.yaml")


def plant_linked_directory(tmp_path, root):
    os.unlink(root / "matrix" / "synapse" / "homeserver.yaml")
    os.rmdir(root / "matrix" / "synapse")
    os.symlink(tmp_path / "outside" / "dir", root / "matrix" / "synapse")


def plant_fifo(_tmp_path, root):
    os.unlink(root / "matrix" / "synapse" / "homeserver.yaml")
    os.mkfifo(root / "matrix" / "synapse" / "homeserver.yaml")


def plant_link_at_sqlite_side_file(tmp_path, root):
    os.symlink(tmp_path / "outside" / "victim", root / "matrix" / "synapse" / "homeserver.db-wal")


def plant_linked_staging_parent(tmp_path, root):
    os.rmdir(root / "matrix" / "backups")
    os.symlink(tmp_path / "outside" / "dir", root / "matrix" / "backups")


PLANTED = [
    pytest.param(plant_link_at_file, "matrix/synapse/homeserver.yaml is a symbolic link; refusing to write through it",
                 id="symlink-at-a-target-file"),
    pytest.param(plant_linked_directory, "matrix/synapse is a symbolic link", id="symlinked-directory"),
    pytest.param(plant_fifo, "matrix/synapse/homeserver.yaml is a FIFO, not a regular file", id="fifo-at-a-target"),
    pytest.param(plant_link_at_sqlite_side_file, "matrix/synapse/homeserver.db-wal is a symbolic link",
                 id="symlink-at-a-sqlite-side-file"),
    pytest.param(plant_linked_staging_parent, "matrix/backups is a symbolic link", id="symlinked-staging-parent"),
]


@pytest.mark.parametrize("plant, message", PLANTED)
def test_a_link_planted_in_the_tree_is_refused_before_anything_is_written(host, plant, message):
    tmp_path, root = host
    archive = make_good_archive(tmp_path / "good.tar.gz")
    plant(tmp_path, root)
    before = snapshot(tmp_path)
    with pytest.raises(backup.Failure, match=message):
        backup.files(restore_args(tmp_path, root, archive))
    assert snapshot(tmp_path) == before


def test_a_link_planted_after_the_check_is_not_followed(host, monkeypatch):
    # As if a container planted them between check_host and the writes.
    tmp_path, root = host
    archive = make_good_archive(tmp_path / "good.tar.gz")
    monkeypatch.setattr(backup, "check_host", lambda root, targets: None)
    plant_link_at_file(tmp_path, root)
    backup.files(restore_args(tmp_path, root, archive))
    assert (root / "matrix" / "synapse" / "homeserver.yaml").read_text() == "restored\n"
    assert not os.path.islink(root / "matrix" / "synapse" / "homeserver.yaml")  # the link was replaced
    shutil.rmtree(root / "matrix" / "synapse")
    os.symlink(tmp_path / "outside" / "dir", root / "matrix" / "synapse")
    before = snapshot(tmp_path / "outside")
    with pytest.raises(backup.Failure, match="cannot open .*matrix/synapse without following a link"):
        backup.files(restore_args(tmp_path, root, archive))
    assert snapshot(tmp_path / "outside") == before


def test_a_hard_link_on_the_host_is_replaced_not_written_through(host):
    tmp_path, root = host
    os.unlink(root / "matrix" / "synapse" / "homeserver.yaml")
    os.link(tmp_path / "outside" / "victim", root / "matrix" / "synapse" / "homeserver.yaml")
    backup.files(restore_args(tmp_path, root, make_good_archive(tmp_path / "good.tar.gz")))
    assert (root / "matrix" / "synapse" / "homeserver.yaml").read_text() == "restored\n"
    assert (tmp_path / "outside" / "victim").read_text() == "precious\n"


def test_a_good_archive_restores_and_its_dumps_load(host, monkeypatch):
    tmp_path, root = host
    (root / "matrix" / "synapse" / "homeserver.db-wal").write_text("stale")
    result = backup.files(restore_args(tmp_path, root, make_good_archive(tmp_path / "good.tar.gz")))
    assert (root / "matrix" / "synapse" / "homeserver.yaml").read_text() == "restored\n"
    database = os.lstat(root / "matrix" / "synapse" / "homeserver.db")
    assert stat.S_IMODE(database.st_mode) == 0o600
    if os.geteuid() == 0:  # only root can give files away; the script tolerates that elsewhere
        assert (database.st_uid, database.st_gid) == (991, 991)
    assert not (root / "matrix" / "synapse" / "homeserver.db-wal").exists()
    assert result["staging"].startswith(str(root / "matrix" / "backups" / ".restore-"))
    loaded = []  # (database, dump) that pg_restore would get
    monkeypatch.setattr(backup, "run",
                        lambda argv, stdin=None: loaded.append((argv[argv.index("--dbname") + 1], stdin.read())))
    backup.databases(dict(staging=result["staging"], postgres=result["postgres"], postgres_container="postgres",
                          postgres_superuser="postgres"))
    assert loaded == [("synapse", b"PGDMP dump")]
    assert not os.path.exists(result["staging"])


def test_databases_opens_dumps_only_inside_staging_without_links(host, monkeypatch):
    tmp_path, root = host
    staging = backup.files(restore_args(tmp_path, root, make_good_archive(tmp_path / "good.tar.gz")))["staging"]
    monkeypatch.setattr(backup, "run", lambda argv, stdin=None: pytest.fail("pg_restore ran"))
    loads = dict(staging=staging, postgres_container="postgres", postgres_superuser="postgres")
    with pytest.raises(backup.Failure, match="has file '../../outside/victim': it must be dumps/postgres/synapse.dump"):
        backup.databases(dict(loads, postgres=[dict(PG, file="../../outside/victim")]))
    dump = os.path.join(staging, PG["file"])
    os.unlink(dump)
    os.symlink(tmp_path / "outside" / "victim", dump)
    with pytest.raises(backup.Failure, match="synapse.dump without following a link"):
        backup.databases(dict(loads, postgres=[PG]))


def test_an_archive_of_create_leaves_out_what_a_restore_refuses_and_restores(host):
    tmp_path, root = host
    synapse = root / "matrix" / "synapse"
    os.symlink(tmp_path / "outside" / "victim", synapse / "link")
    os.mkfifo(synapse / "pipe")
    os.link(synapse / "homeserver.yaml", synapse / "second-name")
    (synapse / "shared").mkdir()
    os.chmod(synapse / "shared", 0o2755)
    result = backup.create(dict(root=str(root), matrix_path=str(root / "matrix"), dest=str(root / "matrix" / "backups"),
                                name="b1", exclude=[], server_name="example.test", postgres_databases=[]))
    assert sorted(result["skipped"]) == ["matrix/synapse/link", "matrix/synapse/pipe"]
    for path in ("link", "pipe", "second-name", "homeserver.yaml"):
        os.unlink(synapse / path)
    backup.files(restore_args(tmp_path, root, result["archive"]))
    assert (synapse / "homeserver.yaml").read_text() == "old\n"
    assert (synapse / "second-name").read_text() == "old\n"
    assert stat.S_IMODE(os.lstat(synapse / "shared").st_mode) == 0o755
    assert sorted(os.listdir(synapse)) == ["homeserver.yaml", "second-name", "shared"]


def test_the_command_line_reports_a_refusal_as_json(host, capsys):
    tmp_path, root = host
    archive = make_archive(tmp_path / "hostile.tar.gz", [entry("matrix/l", "symlink", link="/etc/passwd")])
    assert backup.main(["switchboard_backup.py", "files", json.dumps(restore_args(tmp_path, root, archive))]) == 1
    assert "member matrix/l is a symbolic link (to /etc/passwd)" in json.loads(capsys.readouterr().out)["msg"]
