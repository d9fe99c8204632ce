# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os

from ansible_collections.switchboard.matrix.plugins.module_utils._fingerprint import (
    compare,
    docker_fingerprint,
    file_fingerprint,
    package_fingerprint,
)


class FakeDocker:
    """Answers the docker and dpkg-query commands of a fingerprint, from dicts of containers and packages."""

    def __init__(self, containers=None, network="net-1", images=None, packages=None):
        self.containers = dict(containers or {})
        self.network = network
        self.images = dict(images or {})
        self.packages = dict(packages or {})
        self.down = False

    def __call__(self, argv):
        if argv[0] == "dpkg-query":
            found = [name for name in argv[3:] if name in self.packages]
            return (0 if len(found) == len(argv[3:]) else 1,
                    "".join("%s\t%s\n" % (name, self.packages[name]) for name in found), "")
        if self.down:
            return 1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n"
        if argv[1:3] == ["network", "inspect"]:
            return (0, self.network + "\n", "") if self.network else (1, "", "Error: No such network: matrix\n")
        if argv[1] == "ps":
            return 0, "".join(c["id"] + "\n" for c in self.containers.values()), ""
        if argv[1:3] == ["container", "inspect"]:
            # As Docker prints --format "...{{json .State}}": Health only with a health check.
            rows = []
            for name, c in self.containers.items():
                state = {"Status": c.get("status", "running" if c["running"] else "exited"), "Running": c["running"]}
                if "health" in c:
                    state["Health"] = {"Status": c["health"], "FailingStreak": 0, "Log": []}
                rows.append("/%s\t%s\t%s\t%s\t%d\t%s" % (name, c["id"], c["ref"], c["image"], c.get("restarts", 0),
                                                         json.dumps(state)))
            return 0, "\n".join(rows) + "\n", ""
        if argv[1:3] == ["image", "inspect"]:
            refs = argv[5:]
            if any(ref not in self.images for ref in refs):
                return 1, "", "Error: No such image\n"
            return 0, "".join(self.images[ref] + "\n" for ref in refs), ""
        raise AssertionError(argv)


def _docker():
    return FakeDocker(
        containers={"synapse": {"id": "c1", "running": True, "ref": "synapse:1", "image": "sha256:a"},
                    "matrix-bot": {"id": "c2", "running": True, "ref": "bot:1", "image": "sha256:b"}},
        images={"synapse:1": "sha256:a", "bot:1": "sha256:b"})


def _tree(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "synapse" / "media_store").mkdir(parents=True, exist_ok=True)
    (tmp_path / "synapse" / "homeserver.yaml").write_text("enable_registration: false\n")
    (tmp_path / "synapse" / "homeserver.db").write_text("sqlite")
    (tmp_path / "synapse" / "media_store" / "upload").write_text("media")
    (tmp_path / "secrets").mkdir(mode=0o700, exist_ok=True)
    (tmp_path / "secrets" / "token").write_text("s3cret")
    os.chmod(tmp_path / "secrets" / "token", 0o600)
    return [str(tmp_path / "synapse" / "media_store"), str(tmp_path / "synapse" / "homeserver.db*")]


def _files_after(tmp_path, change):
    excluded = _tree(tmp_path)
    before = {"files": file_fingerprint([str(tmp_path)], excluded), "docker": {}}
    change()
    after = {"files": file_fingerprint([str(tmp_path)], excluded), "docker": {}}
    return compare(before, after)


def test_an_unchanged_tree_has_no_differences(tmp_path):
    assert _files_after(tmp_path, lambda: None) == []


def test_a_hand_edit_is_seen(tmp_path):
    path = tmp_path / "synapse" / "homeserver.yaml"
    assert _files_after(tmp_path, lambda: path.write_text("enable_registration: true\n")) == [
        "%s: content changed" % path]


def test_a_mode_change_is_seen(tmp_path):
    path = tmp_path / "secrets" / "token"
    assert _files_after(tmp_path, lambda: os.chmod(path, 0o644)) == ["%s: mode 0644, was 0600" % path]


def test_added_removed_and_retyped_files_are_seen(tmp_path):
    def change():
        (tmp_path / "secrets" / "token").unlink()
        (tmp_path / "secrets" / "extra").write_text("x")
        (tmp_path / "synapse" / "homeserver.yaml").unlink()
        (tmp_path / "synapse" / "homeserver.yaml").symlink_to("/etc/hostname")

    assert _files_after(tmp_path, change) == [
        "%s: added" % (tmp_path / "secrets" / "extra"),
        "%s: removed" % (tmp_path / "secrets" / "token"),
        "%s: now a link, was a file" % (tmp_path / "synapse" / "homeserver.yaml"),
    ]


def test_service_data_counts_by_its_directory_only(tmp_path):
    def change():
        (tmp_path / "synapse" / "media_store" / "upload").write_text("other media")
        (tmp_path / "synapse" / "media_store" / "new").write_text("more")
        (tmp_path / "synapse" / "homeserver.db").write_text("more rows")
        (tmp_path / "synapse" / "homeserver.db-wal").write_text("wal")

    assert _files_after(tmp_path, change) == []
    media = tmp_path / "synapse" / "media_store"
    assert _files_after(tmp_path, lambda: os.chmod(media, 0o777)) == ["%s: mode 0777, was 0755" % media]


def test_a_missing_root_and_nested_roots(tmp_path):
    _tree(tmp_path / "matrix")
    roots = [str(tmp_path / "gone"), str(tmp_path / "matrix"), str(tmp_path / "matrix" / "synapse")]
    files = file_fingerprint(roots, [])
    assert files[str(tmp_path / "gone")] == "missing"
    assert str(tmp_path) not in files
    assert files[str(tmp_path / "matrix" / "synapse" / "homeserver.yaml")].startswith("file 0644 ")
    assert files[str(tmp_path / "matrix" / "secrets")].startswith("dir 0700 ")


def _containers_after(change):
    docker = _docker()
    before = {"files": {}, "docker": docker_fingerprint("matrix", docker)}
    change(docker)
    return compare(before, {"files": {}, "docker": docker_fingerprint("matrix", docker)})


def test_docker_unchanged():
    assert _containers_after(lambda docker: None) == []


def test_a_stopped_container_is_seen():
    def stop(docker):
        docker.containers["matrix-bot"]["running"] = False
    assert _containers_after(stop) == ["container matrix-bot: stopped"]


def test_a_container_recreated_by_hand_is_seen():
    def recreate(docker):
        docker.containers["matrix-bot"] = dict(docker.containers["matrix-bot"], id="c9")
    assert _containers_after(recreate) == ["container matrix-bot: recreated (another container ID)"]


def test_removed_and_added_containers_are_seen():
    def change(docker):
        del docker.containers["synapse"]
        docker.containers["stranger"] = {"id": "c5", "running": True, "ref": "bot:1", "image": "sha256:b"}
    assert _containers_after(change) == ["container stranger: added", "container synapse: removed"]


def test_an_image_reference_that_now_names_another_image_is_seen():
    def move(docker):
        docker.images["synapse:1"] = "sha256:new"
    assert _containers_after(move) == ["container synapse: synapse:1 now names another image, or none"]


def test_a_recreated_network_and_a_stopped_docker_are_seen():
    def recreate(docker):
        docker.network = "net-2"
    assert _containers_after(recreate) == ["Docker network: recreated or new"]

    def stop(docker):
        docker.down = True
    assert _containers_after(stop) == [
        "Docker network matrix: Cannot connect to the Docker daemon at unix:///var/run/docker.sock."]


def test_a_missing_network():
    docker = FakeDocker(network=None)
    assert docker_fingerprint("matrix", docker) == {"error": "Docker network matrix: Error: No such network: matrix"}


def test_a_removed_package_is_seen():
    system = FakeDocker(packages={"docker.io": "ii ", "containerd": "ii "})
    before = {"packages": package_fingerprint(["docker.io", "containerd"], system)}
    assert compare(before, {"packages": package_fingerprint(["docker.io", "containerd"], system)}) == []
    system.packages["docker.io"] = "rc "
    del system.packages["containerd"]
    assert compare(before, {"packages": package_fingerprint(["docker.io", "containerd"], system)}) == [
        "package containerd: not installed, was ii", "package docker.io: rc, was ii"]


def test_an_owner_change_is_described():
    before = {"files": {"/matrix/secrets/token": "file 0600 0 0 abc"}}
    after = {"files": {"/matrix/secrets/token": "file 0640 1000 0 abc"}}
    assert compare(before, after) == ["/matrix/secrets/token: mode 0640, was 0600, owner 1000:0, was 0:0"]


def _after_docker_change(change):
    docker = _docker()
    before = {"docker": docker_fingerprint("matrix", docker)}
    change(docker.containers)
    return compare(before, {"docker": docker_fingerprint("matrix", docker)})


def test_a_crash_looping_container_is_a_difference():
    assert _after_docker_change(lambda c: c["synapse"].update(status="restarting", restarts=3)) == [
        "container synapse: restarting (Docker restarts it after it exits: a crash loop?)"]


def test_a_container_docker_restarted_since_the_record_is_a_difference():
    assert _after_docker_change(lambda c: c["matrix-bot"].update(restarts=2)) == [
        "container matrix-bot: restarted 2 times by Docker since the last complete run (it exited)"]


def test_an_unhealthy_container_is_a_difference():
    assert _after_docker_change(lambda c: c["synapse"].update(health="unhealthy")) == [
        "container synapse: unhealthy (its health check fails)"]


def test_a_health_check_that_changes_on_its_own_is_not():
    docker = _docker()
    docker.containers["synapse"]["health"] = "starting"
    before = {"docker": docker_fingerprint("matrix", docker)}
    docker.containers["synapse"]["health"] = "healthy"
    assert compare(before, {"docker": docker_fingerprint("matrix", docker)}) == []


def test_a_record_without_restart_counts_still_compares():
    """Records written before the counts were kept: one full run, then the new record."""
    docker = _docker()
    before = {"docker": docker_fingerprint("matrix", docker)}
    for container in before["docker"]["containers"].values():
        for key in ("restarts", "status", "health"):
            del container[key]
    assert compare(before, {"docker": docker_fingerprint("matrix", docker)}) == [
        "container matrix-bot: changed", "container synapse: changed"]


def test_a_recreated_or_stopped_container_says_so_before_its_health():
    def recreate_unhealthy(containers):
        containers["matrix-bot"].update(id="c9", health="unhealthy")
    assert _after_docker_change(recreate_unhealthy) == ["container matrix-bot: recreated (another container ID)"]

    def stop_unhealthy(containers):
        containers["synapse"].update(running=False, status="exited", health="unhealthy")
    assert _after_docker_change(stop_unhealthy) == ["container synapse: stopped"]
