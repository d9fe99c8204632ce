"""The backup role's script: create an archive of a live tree, wipe the tree, restore it."""
from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import tarfile

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "backup", "files", "switchboard_backup.py")
spec = importlib.util.spec_from_file_location("switchboard_backup", SCRIPT)
backup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(backup)


@pytest.fixture
def tree(tmp_path):
    matrix = tmp_path / "matrix"
    (matrix / "synapse" / "data" / "media_store").mkdir(parents=True)
    (matrix / "synapse" / "data" / "homeserver.yaml").write_text("server_name: example.test\n")
    (matrix / "synapse" / "data" / "example.test.signing.key").write_text("ed25519 a_key secret\n")
    os.chmod(matrix / "synapse" / "data" / "example.test.signing.key", 0o600)
    (matrix / "synapse" / "data" / "media_store" / "blob").write_bytes(os.urandom(5000))
    (matrix / "postgres" / "data").mkdir(parents=True)
    (matrix / "postgres" / "data" / "PG_VERSION").write_text("15\n")
    (matrix / "synapse" / "build").mkdir()
    (matrix / "synapse" / "build" / "Dockerfile").write_text("FROM x\n")
    # A live SQLite database in WAL mode, still open while the backup runs.
    db = sqlite3.connect(matrix / "synapse" / "data" / "homeserver.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE events (body TEXT)")
    db.execute("INSERT INTO events VALUES ('before the backup')")
    db.commit()
    yield tmp_path, matrix, db
    db.close()


def args(tmp_path, matrix, **extra):
    return dict(dict(root=str(tmp_path), matrix_path=str(matrix), dest=str(tmp_path / "backups"), name="b1",
                     exclude=[str(matrix / "postgres" / "data"), str(matrix / "synapse" / "build")],
                     server_name="example.test", postgres_databases=[]), **extra)


def test_archive_holds_the_files_and_a_consistent_sqlite_copy(tree):
    tmp_path, matrix, _db = tree
    result = backup.create(args(tmp_path, matrix))
    assert result["sqlite"] == ["matrix/synapse/data/homeserver.db"]
    assert oct(os.stat(result["archive"]).st_mode & 0o777) == "0o600"
    with tarfile.open(result["archive"]) as tar:
        names = set(tar.getnames())
    assert "matrix/synapse/data/example.test.signing.key" in names
    assert "matrix/synapse/data/media_store/blob" in names
    assert "dumps/sqlite/matrix/synapse/data/homeserver.db" in names
    # Left out: PostgreSQL's live data, build contexts, the live SQLite files.
    assert not any(n.startswith(("matrix/postgres/data", "matrix/synapse/build")) for n in names)
    assert "matrix/synapse/data/homeserver.db" not in names
    assert not any(n.startswith("backups") or ".staging-" in n for n in names)
    assert os.listdir(tmp_path / "backups") == ["b1.tar.gz"]


def test_restore_brings_back_files_modes_and_database(tree):
    tmp_path, matrix, db = tree
    archive = backup.create(args(tmp_path, matrix))["archive"]
    db.execute("INSERT INTO events VALUES ('after the backup')")
    db.commit()
    db.close()
    key = (matrix / "synapse" / "data" / "example.test.signing.key").read_text()
    for path in ["synapse/data/example.test.signing.key", "synapse/data/media_store/blob"]:
        os.unlink(matrix / path)
    result = backup.files(dict(root=str(tmp_path), archive=archive, server_name="example.test", matrix="matrix",
                               staging_parent=str(tmp_path / "backups")))
    assert result["sqlite"] == ["matrix/synapse/data/homeserver.db"]
    assert (matrix / "synapse" / "data" / "example.test.signing.key").read_text() == key
    assert oct(os.stat(matrix / "synapse" / "data" / "example.test.signing.key").st_mode & 0o777) == "0o600"
    assert (matrix / "synapse" / "data" / "media_store" / "blob").stat().st_size == 5000
    assert not os.path.exists(str(matrix / "synapse" / "data" / "homeserver.db") + "-wal")
    rows = sqlite3.connect(matrix / "synapse" / "data" / "homeserver.db").execute("SELECT body FROM events").fetchall()
    assert rows == [("before the backup",)]
    assert os.listdir(tmp_path / "backups") == ["b1.tar.gz"]  # no staging left behind


def test_restore_refuses_another_servers_archive(tree):
    tmp_path, matrix, _db = tree
    archive = backup.create(args(tmp_path, matrix))["archive"]
    before = (matrix / "synapse" / "data" / "homeserver.yaml").read_text()
    with pytest.raises(backup.Failure, match="is a backup of example.test, but this host is configured for other.test"):
        backup.files(dict(root=str(tmp_path), archive=archive, server_name="other.test", matrix="matrix",
                          staging_parent=str(tmp_path / "backups")))
    assert (matrix / "synapse" / "data" / "homeserver.yaml").read_text() == before


def test_a_foreign_archive_is_refused(tmp_path, capsys):
    foreign = tmp_path / "foreign.tar.gz"
    with tarfile.open(foreign, "w:gz") as tar:
        tar.add(__file__, arcname="etc/passwd")
    assert backup.main(["switchboard_backup.py", "inspect", json.dumps({"archive": str(foreign)})]) == 1
    assert "is not a Switchboard backup" in json.loads(capsys.readouterr().out)["msg"]


def test_a_scheduled_run_names_its_archive_and_keeps_the_newest(tree, monkeypatch):
    """No name: the time names the archive; keep=2 deletes the older automatic ones, never another file."""
    tmp_path, matrix, _db = tree
    dest = tmp_path / "backups"
    dest.mkdir()
    for old in ("switchboard-20260101T030000Z.tar.gz", "switchboard-20260102T030000Z.tar.gz",
                "switchboard-20260103T030000Z.tar.gz"):
        (dest / old).write_bytes(b"old")
    (dest / "before-the-upgrade.tar.gz").write_bytes(b"mine")   # named by hand: never rotated
    (dest / "switchboard-20250101T030000Z.tar.gz.partial").write_bytes(b"")
    monkeypatch.setattr(backup, "auto_name", lambda: "switchboard-20260104T030000Z")
    result = backup.create(args(tmp_path, matrix, name="", keep=2))
    assert result["archive"] == str(dest / "switchboard-20260104T030000Z.tar.gz")
    assert result["removed"] == ["switchboard-20260101T030000Z.tar.gz", "switchboard-20260102T030000Z.tar.gz"]
    assert sorted(os.listdir(dest)) == ["before-the-upgrade.tar.gz", "switchboard-20250101T030000Z.tar.gz.partial",
                                        "switchboard-20260103T030000Z.tar.gz", "switchboard-20260104T030000Z.tar.gz"]


def test_keep_zero_keeps_every_archive(tree):
    tmp_path, matrix, _db = tree
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "switchboard-20260101T030000Z.tar.gz").write_bytes(b"old")
    result = backup.create(args(tmp_path, matrix, name="", keep=0))
    assert result["removed"] == [] and len(os.listdir(tmp_path / "backups")) == 2
    assert backup.AUTO_NAME.match(os.path.basename(result["archive"]))


def test_all_databases_are_listed_from_the_server(tree, monkeypatch):
    tmp_path, matrix, _db = tree
    calls = []

    def fake_run(argv, stdout=None, stdin=None):  # pylint: disable=unused-argument
        calls.append(argv)
        if "psql" in argv:
            return type("Result", (), {"stdout": b"synapse\tsynapse\nwhatsapp\twhatsapp\n"})()
        stdout.write(b"dump of " + argv[-1].encode())
        return None
    monkeypatch.setattr(backup, "run", fake_run)
    result = backup.create(args(tmp_path, matrix, postgres_databases="all", postgres_container="postgres",
                                postgres_superuser="postgres"))
    assert result["postgres"] == ["synapse", "whatsapp"]
    assert [argv[-1] for argv in calls if "pg_dump" in argv] == ["synapse", "whatsapp"]


def test_each_new_archive_is_copied_whole_and_rotated_there_too(tree):
    """backup_copy_path: a second place (a mounted remote); backup_keep applies there as well."""
    tmp_path, matrix, _db = tree
    offsite = tmp_path / "offsite"
    offsite.mkdir()
    (offsite / "switchboard-20260101T030000Z.tar.gz").write_bytes(b"old")
    (offsite / "switchboard-20260102T030000Z.tar.gz").write_bytes(b"old")
    (offsite / "kept-by-hand.tar.gz").write_bytes(b"mine")
    result = backup.create(args(tmp_path, matrix, name="", keep=2, copy_dir=str(offsite)))
    name = os.path.basename(result["archive"])
    assert result["copied_to"] == str(offsite / name)
    assert result["copies_removed"] == ["switchboard-20260101T030000Z.tar.gz"]
    assert sorted(os.listdir(offsite)) == sorted(["kept-by-hand.tar.gz", "switchboard-20260102T030000Z.tar.gz", name])
    assert (offsite / name).read_bytes() == open(result["archive"], "rb").read()
    assert oct(os.stat(offsite / name).st_mode & 0o777) == "0o600"


def test_a_missing_copy_directory_fails_and_keeps_the_archive(tree, capsys):
    """An unmounted remote: never create its mount point (the copy would land on the local disk)."""
    tmp_path, matrix, _db = tree
    missing = tmp_path / "mnt" / "offsite"
    rc = backup.main(["switchboard_backup.py", "create", json.dumps(args(tmp_path, matrix, copy_dir=str(missing)))])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["failed"]
    assert "backup_copy_path" in out["msg"] and str(missing) in out["msg"] and "mounted" in out["msg"]
    assert not missing.exists()
    assert os.listdir(tmp_path / "backups") == ["b1.tar.gz"]


def test_a_copy_directory_inside_the_tree_is_not_backed_up(tree):
    tmp_path, matrix, _db = tree
    inside = matrix / "offsite"
    inside.mkdir()
    (inside / "switchboard-20260101T030000Z.tar.gz").write_bytes(b"an earlier copy")
    result = backup.create(args(tmp_path, matrix, copy_dir=str(inside)))
    with tarfile.open(result["archive"]) as tar:
        assert not any(n.startswith("matrix/offsite") for n in tar.getnames())
