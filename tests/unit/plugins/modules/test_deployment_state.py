# -*- coding: utf-8 -*-
# Copyright: Switchboard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.switchboard.matrix.plugins.action.deployment_state import code_digest
from ansible_collections.switchboard.matrix.plugins.modules import deployment_state
from .utils import run_module
from ..module_utils.test__fingerprint import FakeDocker


@pytest.fixture(name="docker")
def fixture_docker(monkeypatch):
    docker = FakeDocker(containers={"synapse": {"id": "c1", "running": True, "ref": "s:1", "image": "sha256:a"}},
                        images={"s:1": "sha256:a"}, packages={"docker.io": "ii "})
    monkeypatch.setattr(deployment_state, "command_runner", lambda module: docker)
    return docker


def run(args, check_mode=False):
    return run_module(deployment_state.main, args, check_mode)


def _record(tmp_path, digest="inputs-1", check_mode=False):
    (tmp_path / "matrix").mkdir(exist_ok=True)
    (tmp_path / "matrix" / "homeserver.yaml").write_text("a: 1\n")
    return run(dict(state="record", path=str(tmp_path / "state.json"), inputs_digest=digest,
                    paths=[str(tmp_path / "matrix")], excluded_paths=[], docker_network="matrix",
                    packages=["docker.io"]), check_mode)


def _probe(tmp_path, digest="inputs-1", check_mode=False):
    return run(dict(path=str(tmp_path / "state.json"), inputs_digest=digest), check_mode)


def test_a_probe_right_after_the_record_is_up_to_date(tmp_path, docker):
    recorded = _record(tmp_path)
    assert recorded["changed"] is False
    assert stat.S_IMODE(os.stat(tmp_path / "state.json").st_mode) == 0o600
    result = _probe(tmp_path)
    assert result["up_to_date"] is True and result["differences"] == [] and result["changed"] is False
    assert result["inputs_digest"] == "inputs-1"
    assert docker.containers  # the fake answered


def test_without_a_record_nothing_is_up_to_date(tmp_path, docker):
    result = _probe(tmp_path)
    assert result["up_to_date"] is False and "no record" in result["differences"][0]


def test_other_inputs_are_a_difference(tmp_path, docker):
    _record(tmp_path)
    result = _probe(tmp_path, digest="inputs-2")
    assert result["up_to_date"] is False and "settings" in result["differences"][0]


def test_host_drift_is_listed(tmp_path, docker):
    _record(tmp_path)
    (tmp_path / "matrix" / "homeserver.yaml").write_text("a: 2\n")
    docker.containers["synapse"]["running"] = False
    del docker.packages["docker.io"]
    result = _probe(tmp_path)
    assert result["differences"] == ["%s: content changed" % (tmp_path / "matrix" / "homeserver.yaml"),
                                     "package docker.io: not installed, was ii",
                                     "container synapse: stopped"]


def test_differences_are_capped(tmp_path, docker):
    _record(tmp_path)
    for number in range(25):
        (tmp_path / "matrix" / ("new-%02d" % number)).write_text("x")
    differences = _probe(tmp_path)["differences"]
    assert len(differences) == 21 and differences[-1] == "... and 5 more"


def test_check_mode_records_nothing(tmp_path, docker):
    _record(tmp_path, check_mode=True)
    assert not (tmp_path / "state.json").exists()


def test_absent_removes_the_record_except_in_check_mode(tmp_path, docker):
    _record(tmp_path)
    run(dict(state="absent", path=str(tmp_path / "state.json")), check_mode=True)
    assert (tmp_path / "state.json").exists()
    result = run(dict(state="absent", path=str(tmp_path / "state.json")))
    assert result["changed"] is False and not (tmp_path / "state.json").exists()


def test_a_damaged_record_counts_as_none(tmp_path, docker):
    (tmp_path / "state.json").write_text("{not json")
    assert "no record" in _probe(tmp_path)["differences"][0]
    (tmp_path / "state.json").write_text(json.dumps({"version": 0}))
    assert "no record" in _probe(tmp_path)["differences"][0]
    (tmp_path / "state.json").write_text(json.dumps({"version": 1, "inputs": "inputs-1"}))
    assert "no record" in _probe(tmp_path)["differences"][0]


def test_a_record_with_a_damaged_fingerprint_counts_as_different(tmp_path, docker):
    _record(tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    state["host"] = "edited by hand"
    (tmp_path / "state.json").write_text(json.dumps(state))
    assert _probe(tmp_path)["differences"] == ["the record of the last complete run is damaged"]


def test_record_needs_the_digest_and_the_network(tmp_path, docker):
    result = run(dict(state="record", path=str(tmp_path / "state.json"), docker_network="matrix"))
    assert result["failed"] and "inputs_digest" in result["msg"]
    result = run(dict(state="record", path=str(tmp_path / "state.json"), inputs_digest="x"))
    assert result["failed"] and "docker_network" in result["msg"]
    assert not (tmp_path / "state.json").exists()


def test_a_host_without_docker_is_a_difference(tmp_path, monkeypatch):
    def missing(module):  # the real runner, with no docker command on the host
        monkeypatch.setattr(module, "get_bin_path", lambda name: None)
        return original(module)
    original = deployment_state.command_runner
    monkeypatch.setattr(deployment_state, "command_runner", missing)
    _record(tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["host"]["docker"] == {"error": "Docker network matrix: the docker command is not installed"}
    assert state["host"]["packages"] == {"docker.io": "not installed"}


def test_the_code_digest_follows_the_collection_code(tmp_path):
    (tmp_path / "roles" / "synapse" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "synapse" / "tasks" / "main.yml").write_text("- name: one\n")
    (tmp_path / "site.yml").write_text("---\n")
    first = code_digest(str(tmp_path))
    (tmp_path / "roles" / "__pycache__").mkdir()
    (tmp_path / "roles" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.md").write_text("not code")
    assert code_digest(str(tmp_path)) == first
    (tmp_path / "roles" / "synapse" / "tasks" / "main.yml").write_text("- name: two\n")
    assert code_digest(str(tmp_path)) != first


@pytest.mark.parametrize("paths", [["/"], ["matrix"], ["//"]])
def test_the_root_or_a_relative_path_is_refused(tmp_path, docker, paths):
    result = run(dict(state="record", path=str(tmp_path / "state.json"), inputs_digest="x", paths=paths,
                      docker_network="matrix"))
    assert result["failed"] and "paths must be absolute directories below /" in result["msg"]
    assert not (tmp_path / "state.json").exists()
