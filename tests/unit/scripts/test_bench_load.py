"""scripts/bench_load's pure parts: percentile, rates, the delivery check, the figures of one load."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "scripts", "bench_load")
loader = importlib.machinery.SourceFileLoader("bench_load", SCRIPT)
spec = importlib.util.spec_from_loader("bench_load", loader)
bench = importlib.util.module_from_spec(spec)
loader.exec_module(bench)

EXPECTED = {(sender, index) for sender in range(3) for index in range(4)}
SENT = {key: "$event-%d-%d" % key for key in EXPECTED}


def everything():
    return [(key, SENT[key]) for key in sorted(EXPECTED)]


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert bench.percentile(values, 50) == 50
    assert bench.percentile(values, 95) == 95
    assert bench.percentile(values, 100) == 100
    assert bench.percentile([3.0, 1.0, 2.0], 50) == 2.0  # order does not matter
    assert bench.percentile([7], 95) == 7
    # 20 values: p95 is the 19th smallest, not the largest.
    assert bench.percentile(list(range(20)), 95) == 18
    assert bench.percentile([1, 2], 1) == 1
    # Rounds up: 91 % of 10 values is 9.1, so the 10th.
    assert bench.percentile(list(range(1, 11)), 91) == 10
    assert bench.percentile([4, 1, 3, 2], 50) == 2


@pytest.mark.parametrize("values, percent", [([], 50), ([1], 0), ([1], 101)])
def test_percentile_refuses(values, percent):
    with pytest.raises(ValueError):
        bench.percentile(values, percent)


def test_rate():
    assert bench.rate(500, 8.0) == 62.5
    with pytest.raises(ValueError):
        bench.rate(10, 0)
    with pytest.raises(ValueError):
        bench.rate(10, -1.0)


def test_median():
    assert bench.median([3.0, 1.0, 2.0]) == 2.0
    assert bench.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert bench.median([5]) == 5


def test_ratio():
    assert bench.ratio(30.0, 60.0) == 0.5
    assert bench.ratio(1.0, 0) is None


def test_message_body_round_trip():
    body = bench.message_body("b18c", 7, 24)
    assert bench.message_key(body, "b18c") == (7, 24)
    assert bench.message_key(body, "b18d") is None  # another run's
    assert bench.message_key("hello", "b18c") is None
    assert bench.message_key(None, "b18c") is None
    assert bench.message_key("switchboard-bench b18c x 1", "b18c") is None


def test_delivery_all_there():
    assert not bench.check_delivery(EXPECTED, SENT, [everything(), list(reversed(everything()))])


def test_delivery_a_lost_message_fails():
    received = [pair for pair in everything() if pair[0] != (1, 2)]
    problems = bench.check_delivery(EXPECTED, SENT, [everything(), received])
    assert len(problems) == 1
    assert "reader 1: 1 of 12 messages never arrived" in problems[0]
    assert "(1, 2)" in problems[0]


def test_delivery_a_message_stored_twice_fails():
    received = everything() + [((0, 0), "$another")]
    problems = bench.check_delivery(EXPECTED, SENT, [received])
    assert any("stored more than once" in problem for problem in problems)


def test_delivery_a_send_without_event_id_fails():
    sent = dict(SENT)
    del sent[(2, 3)]
    problems = bench.check_delivery(EXPECTED, sent, [everything()])
    assert any("1 of 12 sends got no event ID" in problem for problem in problems)


def test_delivery_mismatched_and_unknown_fail():
    received = [((0, 0), "$wrong") if key == (0, 0) else (key, event) for key, event in everything()]
    received.append(((9, 9), "$stray"))
    problems = bench.check_delivery(EXPECTED, SENT, [received])
    assert any("under another event ID" in problem for problem in problems)
    assert any("did not send" in problem for problem in problems)


def test_delivery_shared_event_ids_and_no_reader_fail():
    sent = dict(SENT)
    sent[(0, 1)] = sent[(0, 0)]
    assert any("share an event ID" in problem for problem in bench.check_delivery(EXPECTED, sent, [everything()]))
    assert bench.check_delivery(EXPECTED, SENT, []) == ["no reader"]


def test_delivery_nothing_read_fails():
    problems = bench.check_delivery(EXPECTED, SENT, [[]])
    assert problems == ["reader 0: 12 of 12 messages never arrived, e.g. [(0, 0), (0, 1), (0, 2)]"]


def test_summarize():
    # Two senders released at t=10: sends of 0.1 s to 0.4 s, read back 0.05 s after each ended.
    sends = [((0, 0), 10.0, 10.1), ((0, 1), 10.1, 10.3), ((1, 0), 10.0, 10.2), ((1, 1), 10.2, 10.6)]
    arrivals = {key: end + 0.05 for key, _start, end in sends}
    figures = bench.summarize(sends, arrivals, 10.0, 4)
    assert figures["send wall"] == pytest.approx(0.6)
    assert figures["msg/s"] == pytest.approx(4 / 0.6)
    assert figures["p50"] == pytest.approx(0.2)
    assert figures["p95"] == pytest.approx(0.4)
    assert figures["max"] == pytest.approx(0.4)
    assert figures["read back"] == pytest.approx(0.65)
    assert figures["delivery p95"] == pytest.approx(0.45)


def test_cpu_busy():
    # user nice system idle iowait irq softirq steal: 300 busy of 400 jiffies.
    assert bench.cpu_busy([0] * 10, [200, 0, 100, 80, 20, 0, 0, 0, 0, 0]) == pytest.approx(0.75)
    assert bench.cpu_busy([5] * 10, [5] * 10) == 0.0


def test_loopback_only():
    assert bench.Target("http://127.0.0.1:37008").port == 37008
    target = bench.Target("https://127.0.0.1:48443", host_name="matrix.switchboard.test")
    assert target.tls and target.host_name == "matrix.switchboard.test"
    with pytest.raises(SystemExit):
        bench.Target("http://192.0.2.1:8008")
    with pytest.raises(SystemExit):
        bench.Target("ftp://127.0.0.1:21")


def scenario(published, env=None, group_vars=None):
    return {"platforms": [{"name": "switchboard-vps-x", "published_ports": published}],
            "verifier": {"name": "testinfra", **({"env": env} if env else {})},
            "provisioner": {"inventory": {"group_vars": group_vars or {}}}}


def test_scenario_endpoint_through_the_proxy():
    config = scenario(["127.0.0.1:48008:8008", "127.0.0.1:48443:443"],
                      env={"SWITCHBOARD_HOMESERVER_URL": "https://matrix.switchboard.test:48443",
                           "SWITCHBOARD_CA_IN_VPS": "/ca.crt"})
    assert bench.scenario_endpoint(config) == ("switchboard-vps-x", "https://127.0.0.1:48443",
                                               "matrix.switchboard.test", "/ca.crt")


def test_scenario_endpoint_host_name_from_the_inventory():
    # The verifier talks to Synapse's own port; the load goes through the proxy all the same.
    config = scenario(["127.0.0.1:38008:8008", "127.0.0.1:38443:443"],
                      env={"SWITCHBOARD_HOMESERVER_URL": "http://127.0.0.1:38008"},
                      group_vars={"all": {"synapse_server_name": "switchboard.test"},
                                  "matrix_servers": {"proxy_matrix_domain": "matrix.switchboard.test"}})
    assert bench.scenario_endpoint(config) == ("switchboard-vps-x", "https://127.0.0.1:38443",
                                               "matrix.switchboard.test", bench.CADDY_CA_IN_VPS)


@pytest.mark.parametrize("published", [["127.0.0.1:18008:8008"], ["0.0.0.0:18443:443"]])
def test_scenario_endpoint_refuses(published):
    config = scenario(published, group_vars={"all": {"proxy_matrix_domain": "matrix.switchboard.test"}})
    with pytest.raises(bench.LoadFailed):
        bench.scenario_endpoint(config)


def test_scenario_endpoint_needs_a_host_name():
    with pytest.raises(bench.LoadFailed):
        bench.scenario_endpoint(scenario(["127.0.0.1:48443:443"]))


def one_load(rate, p95, cpu=None):
    result = {"msg/s": "%.1f" % rate, "_msg/s": rate, "_p95": p95}
    if cpu is not None:
        result["_cpu/msg"] = cpu
    return result


def test_of_rounds_shows_the_median_round_and_medians():
    figures = bench.of_rounds([one_load(60.0, 0.40, 0.018), one_load(24.0, 1.5, 0.040), one_load(40.0, 0.70, 0.033)])
    assert figures["msg/s"] == "40.0"  # the median round's own figures
    assert figures["msg/s of each round"] == "60.0 24.0 40.0"
    assert figures["send latency p95 of each round"] == "400 ms 1500 ms 700 ms"
    assert figures["containers' CPU per message of each round"] == "18.0 ms 40.0 ms 33.0 ms"
    assert (figures["_msg/s"], figures["_p95"], figures["_cpu/msg"]) == (40.0, 0.70, 0.033)


def test_of_rounds_one_round_is_that_round():
    assert bench.of_rounds([one_load(50.0, 0.3)]) == one_load(50.0, 0.3)


def test_ratios_to_the_first_preset():
    results = {"none": one_load(60.0, 0.40, 0.018), "small": one_load(36.0, 0.80, 0.036)}
    assert bench.ratios(results, ["none", "small"]) == {
        "small/none msg/s": "0.60", "small/none send latency p95": "2.00", "small/none containers' CPU per message": "2.00"}
    # No CPU figures (cgroup files not found): that ratio is left out, not made up.
    results = {"none": one_load(60.0, 0.40), "small": one_load(30.0, 0.80)}
    assert bench.ratios(results, ["none", "small"]) == {"small/none msg/s": "0.50", "small/none send latency p95": "2.00"}
