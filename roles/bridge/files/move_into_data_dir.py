"""Moves a bridge's files into <base>/data, from the layout where the bridge owned <base>
and its config and registration sat beside its own files (the collection before the
config became root-owned). Runs as root in a directory the bridge could write, with the
bridge stopped: it never follows a link, and a config or registration that is not a
regular file is removed (the role writes both again right after).

Usage: move_into_data_dir.py BASE CONFIG_FILENAME. Prints what it did as JSON.
"""
import json
import os
import stat
import sys

NO_FOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def open_directory(path, **kwargs):
    try:
        return os.open(path, NO_FOLLOW_DIR, **kwargs)
    except OSError as err:
        raise SystemExit("%s: not a directory (a link?): %s" % (path, err.strerror))


def main(base, config_filename):
    base_fd = open_directory(base)
    owner = os.fstat(base_fd)
    if owner.st_uid == 0:
        return dict(changed=False)
    kept = {config_filename, "registration.yaml", "data"}
    try:
        data = os.lstat("data", dir_fd=base_fd)
    except FileNotFoundError:
        os.mkdir("data", 0o700, dir_fd=base_fd)
    else:
        if not stat.S_ISDIR(data.st_mode):
            raise SystemExit("%s/data exists and is not a directory: move it away and run again" % base)
    data_fd = open_directory("data", dir_fd=base_fd)
    os.fchown(data_fd, owner.st_uid, owner.st_gid)
    os.fchmod(data_fd, 0o700)
    moved, removed = [], []
    for name in sorted(os.listdir(base_fd)):
        if name not in kept:
            os.rename(name, name, src_dir_fd=base_fd, dst_dir_fd=data_fd)
            moved.append(name)
        elif name != "data" and not stat.S_ISREG(os.lstat(name, dir_fd=base_fd).st_mode):
            os.unlink(name, dir_fd=base_fd)
            removed.append(name)
    os.fchown(base_fd, 0, 0)
    os.fchmod(base_fd, 0o755)
    return dict(changed=True, moved=moved, removed=removed)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
