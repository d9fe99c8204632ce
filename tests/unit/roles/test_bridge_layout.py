"""roles/bridge/files/move_into_data_dir.py: a bridge directory of the layout before
2026-11 (the bridge's own, config and registration beside its files) becomes root's, its
files moved into data/, without following anything the bridge could have planted."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "bridge" / "files" / "move_into_data_dir.py"
BRIDGE_UID = 1337


def move(base):
    result = subprocess.run([sys.executable, str(SCRIPT), str(base), "config.yaml"],
                            capture_output=True, text=True, check=False)
    return result.returncode, (json.loads(result.stdout) if result.returncode == 0 else result.stderr)


@pytest.fixture
def old_layout(tmp_path):
    base = tmp_path / "whatsapp"
    base.mkdir(mode=0o750)
    for name in ("config.yaml", "registration.yaml", "whatsapp.db", "whatsapp.db-wal", "bridge.log"):
        (base / name).write_text(name)
    for path in [base, *base.iterdir()]:
        os.chown(path, BRIDGE_UID, BRIDGE_UID)
    return base


def test_files_move_into_data_and_the_directory_becomes_roots(old_layout):
    inode = (old_layout / "whatsapp.db").stat().st_ino
    assert move(old_layout) == (0, dict(changed=True, moved=["bridge.log", "whatsapp.db", "whatsapp.db-wal"],
                                        removed=[]))
    assert sorted(os.listdir(old_layout)) == ["config.yaml", "data", "registration.yaml"]
    assert (old_layout / "data" / "whatsapp.db").stat().st_ino == inode
    base, data = old_layout.stat(), (old_layout / "data").stat()
    assert (base.st_uid, base.st_gid, stat.S_IMODE(base.st_mode)) == (0, 0, 0o755)
    assert (data.st_uid, data.st_gid, stat.S_IMODE(data.st_mode)) == (BRIDGE_UID, BRIDGE_UID, 0o700)
    # Done once: the directory is root's now.
    assert move(old_layout) == (0, dict(changed=False))


def test_links_are_moved_or_removed_never_followed(old_layout, tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("root's")
    (old_layout / "registration.yaml").unlink()
    (old_layout / "registration.yaml").symlink_to(outside)
    (old_layout / "config.yaml").unlink()
    os.mkfifo(old_layout / "config.yaml")
    (old_layout / "logs").symlink_to("/etc")
    code, result = move(old_layout)
    assert code == 0 and result["removed"] == ["config.yaml", "registration.yaml"]
    assert os.readlink(old_layout / "data" / "logs") == "/etc"
    assert outside.read_text() == "root's" and outside.stat().st_uid == 0
    assert os.listdir("/etc")  # untouched: the link itself moved


@pytest.mark.parametrize("planted", ["link", "file"])
def test_a_data_entry_that_is_not_a_directory_is_refused(old_layout, tmp_path, planted):
    if planted == "link":
        target = tmp_path / "elsewhere"
        target.mkdir()
        (old_layout / "data").symlink_to(target)
    else:
        (old_layout / "data").write_text("")
    code, message = move(old_layout)
    assert code != 0 and "data exists and is not a directory" in message
    assert old_layout.stat().st_uid == BRIDGE_UID  # nothing done
    assert (old_layout / "whatsapp.db").exists()


def test_a_base_that_is_a_link_is_refused(old_layout, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(old_layout)
    code, message = move(link)
    assert code != 0 and f"{link}: not a directory (a link?)" in message
    assert old_layout.stat().st_uid == BRIDGE_UID
