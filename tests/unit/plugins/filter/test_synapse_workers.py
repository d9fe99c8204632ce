"""The worker presets and what they make of homeserver.yaml, each worker's file and the proxy."""
from __future__ import annotations

import pytest

from ansible_collections.switchboard.matrix.plugins.filter.synapse_workers import (
    FilterModule, synapse_worker_container, synapse_worker_file, synapse_worker_problems, synapse_worker_settings,
    synapse_worker_upstreams, synapse_workers_preset)

MAIN_LISTENERS = [{"port": 8008, "type": "http", "resources": [{"names": ["client", "federation"]}]}]


def names(workers, handles=None, serves=None):
    return [worker["name"] for worker in workers
            if (handles is None or handles in worker["handles"]) and (serves is None or serves in worker["serves"])]


def test_every_filter_is_exported():
    assert set(FilterModule().filters()) == {
        "synapse_workers_preset", "synapse_worker_problems", "synapse_worker_container", "synapse_worker_settings",
        "synapse_worker_file", "synapse_worker_upstreams"}


@pytest.mark.parametrize("preset", ["none", "small", "large"])
def test_presets_are_valid_and_fresh_copies(preset):
    workers = synapse_workers_preset(preset)
    assert synapse_worker_problems(workers) == []
    if workers:
        workers[0]["serves"].append("changed")
        assert "changed" not in synapse_workers_preset(preset)[0]["serves"]


def test_small_is_what_its_documentation_says():
    small = synapse_workers_preset("small")
    assert len(small) == 4
    assert names(small, serves="client") == names(small, serves="federation") == ["generic-1"]
    assert names(small, handles="federation_sender") == ["federation-sender-1"]
    assert names(small, serves="media") == ["media-1"]
    assert names(small, handles="appservices") == names(small, handles="pusher") == ["appservice-pusher-1"]
    assert not names(small, handles="events")


def test_large_adds_readers_an_event_persister_and_a_background_worker():
    large = synapse_workers_preset("large")
    assert len(names(large, serves="client")) == 3
    assert names(large, handles="events") == ["event-persister-1"]
    assert len(names(large, handles="federation_sender")) == 2
    assert names(large, handles="background_tasks") == names(large, handles="user_directory") == ["background-1"]


@pytest.mark.parametrize("preset", ["huge", "", None, 3])
def test_an_unknown_preset_expands_to_nothing(preset):
    assert synapse_workers_preset(preset) == []


@pytest.mark.parametrize("workers, words", [
    ("small", ["synapse_workers must be a list"]),
    ([{"name": "main", "serves": ["client"]}], ["synapse_workers[0].name is 'main'"]),
    ([{"name": "Generic", "serves": ["client"]}], ["synapse_workers[0].name is 'Generic'"]),
    ([{"name": "a", "serves": ["client"]}, {"name": "a", "handles": ["pusher"]}], ["'a' is used twice"]),
    ([{"name": "a", "serves": ["sync"]}], ["synapse_workers[0].serves is ['sync']"]),
    ([{"name": "a", "serves": ["media", "client"]}], ["a media worker serves media only"]),
    ([{"name": "a", "handles": ["everything"]}], ["synapse_workers[0].handles is ['everything']"]),
    ([{"name": "a"}], ["neither serves nor handles anything"]),
    ([{"name": "a", "serves": ["client"], "port": 1}], ["unknown keys port"]),
    (["a"], ["synapse_workers[0] must be a mapping"]),
    ([{"name": "a", "handles": ["appservices"]}, {"name": "b", "handles": ["appservices"]}],
     ["only one worker may handle appservices", "a, b"]),
])
def test_problems_name_the_variable_and_the_fault(workers, words):
    problems = " ".join(synapse_worker_problems(workers))
    assert problems.startswith("synapse_workers")
    for word in words:
        assert word in problems


def test_no_workers_no_settings():
    assert synapse_worker_settings([], "synapse", MAIN_LISTENERS) == {}


def test_small_settings_move_the_work_off_the_main_process():
    settings = synapse_worker_settings(synapse_workers_preset("small"), "synapse", MAIN_LISTENERS, "redis", "6379")
    assert settings["listeners"][0] == MAIN_LISTENERS[0]
    assert settings["listeners"][1]["port"] == 9093
    assert settings["listeners"][1]["resources"][0]["names"] == ["replication"]
    assert settings["instance_map"] == {"main": {"host": "synapse", "port": 9093}}
    assert settings["redis"] == {"enabled": True, "host": "redis", "port": 6379}
    assert settings["federation_sender_instances"] == ["federation-sender-1"]
    assert settings["pusher_instances"] == ["appservice-pusher-1"]
    assert settings["notify_appservices_from_worker"] == "appservice-pusher-1"
    assert settings["enable_media_repo"] is False
    assert settings["media_instance_running_background_jobs"] == "media-1"
    assert not {"stream_writers", "run_background_tasks_on", "update_user_directory_from_worker"} & set(settings)
    # The main process's own listener list is not changed in place.
    assert len(MAIN_LISTENERS) == 1


def test_an_event_persister_is_a_stream_writer_in_the_instance_map():
    settings = synapse_worker_settings(synapse_workers_preset("large"), "hs", MAIN_LISTENERS)
    assert settings["stream_writers"] == {"events": ["event-persister-1"]}
    assert settings["instance_map"]["event-persister-1"] == {"host": "hs-event-persister-1", "port": 9093}
    assert settings["instance_map"]["main"] == {"host": "hs", "port": 9093}
    assert settings["run_background_tasks_on"] == "background-1"
    assert settings["update_user_directory_from_worker"] == "background-1"


def test_worker_files():
    generic = synapse_worker_file({"name": "generic-1", "serves": ["client", "federation"], "handles": []})
    assert generic["worker_app"] == "synapse.app.generic_worker"
    assert generic["worker_name"] == "generic-1"
    assert generic["worker_listeners"] == [{"type": "http", "port": 8008, "bind_addresses": ["0.0.0.0"],
                                            "x_forwarded": True,
                                            "resources": [{"names": ["client", "federation"], "compress": False}]}]
    # Synapse loads the media repository in a worker only under this worker_app.
    assert synapse_worker_file({"name": "m", "serves": ["media"]})["worker_app"] == "synapse.app.media_repository"
    # One that serves nothing still answers /health for Docker's check.
    sender = synapse_worker_file({"name": "s", "handles": ["federation_sender"]})
    assert sender["worker_listeners"][0]["resources"][0]["names"] == ["health"]
    persister = synapse_worker_file({"name": "p", "handles": ["events"]})
    assert persister["worker_listeners"][1]["port"] == 9093
    assert persister["worker_listeners"][1]["resources"][0]["names"] == ["replication"]
    # Federation off: a generic worker serves the client API only.
    assert synapse_worker_file({"name": "g", "serves": ["client", "federation"]}, federation=False)[
        "worker_listeners"][0]["resources"][0]["names"] == ["client"]


def test_upstreams_for_the_proxy():
    assert synapse_worker_upstreams(synapse_workers_preset("small"), "synapse") == [
        {"upstream": "synapse-generic-1:8008", "serves": ["client", "federation"]},
        {"upstream": "synapse-media-1:8008", "serves": ["media"]}]
    assert synapse_worker_upstreams(synapse_workers_preset("small"), "hs", federation=False)[0] == \
        {"upstream": "hs-generic-1:8008", "serves": ["client"]}
    assert synapse_worker_upstreams([], "synapse") == []
    assert synapse_worker_container("generic-1") == "synapse-generic-1"
    assert synapse_worker_container({"name": "x"}, "hs") == "hs-x"
