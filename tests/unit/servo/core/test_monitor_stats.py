"""The servo's reading of the monitor's stats, and the tracker's wait for them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from msgspec.structs import replace

from servo.core.appid import parse_app_id_query
from servo.core.models import ContainerState, Metric, PodFacts
from servo.core.monitor_stats import (
    CHANNEL_MESSAGE,
    CHANNEL_POST,
    MAX_CPUS,
    V1_REASON,
    StatsError,
    parse_post_body,
    parse_stats,
    parse_termination_message,
)
from servo.core.pod_measurement import measurement_from_facts
from servo.core.pods import facts_from_pod
from servo.core.stats_measurement import bounded, stats_annotations, stats_metrics, with_stats
from servo.core.tracker import StatsVerdict, Tracker
from tests.support.helpers import job_pod, set_running, set_terminated

CID = "a" * 64
STATS: dict[str, Any] = {
    "v": 2,
    "cgroup": "v2",
    "cgroup_path": "/sys/fs/cgroup/kubepods.slice/x",
    "cpus": 8,
    "cpu_time": 12.5,
    "cpu_user": 10.0,
    "cpu_system": 2.5,
    "max_memory": 1_073_741_824,
    "max_memory_source": "pod-peak-minus-monitor",
    "pod_cpu_time": 12.7,
    "pod_cpu_user": 10.1,
    "pod_cpu_system": 2.6,
    "pod_max_memory": 1_091_000_000,
    "pod_max_memory_source": "memory.peak",
    "memory": {"anon": 900, "file": 100, "kernel_stack": 16, "pagetables": 8},
    "monitor_cpu_time": 0.2,
    "monitor_max_memory": 17_000_000,
    "monitor_rss": 20_000_000,
    "monitor_max_rss": 21_000_000,
    "oom_kills": 0,
    "containers": {CID: {"cpu_time": 12.5, "max_memory": 1_073_741_824, "oom_kills": 0}},
    "cue": "SIGTERM",
}
V1: dict[str, Any] = {
    "v": 1,
    "cgroup": "v1",
    "cpu_time": 3.0,
    "cpu_user": 2.0,
    "cpu_system": 1.0,
    "max_memory": 5000,
    "max_memory_source": "memory.max_usage_in_bytes",
    "cue": "SIGTERM",
}


def test_full_stats_become_metrics_with_units() -> None:
    metrics = stats_metrics(parse_stats(STATS, CHANNEL_POST))
    got = {k: (m.value, m.unit) for k, m in metrics.items()}
    assert got == {
        "cpu_time": (12.5, "s"),
        "max_memory": (1_073_741_824, "bytes"),
        "cpu_user": (10.0, "s"),
        "cpu_system": (2.5, "s"),
        "pod_cpu_time": (12.7, "s"),
        "pod_cpu_user": (10.1, "s"),
        "pod_cpu_system": (2.6, "s"),
        "monitor_cpu_time": (0.2, "s"),
        "pod_max_memory": (1_091_000_000, "bytes"),
        "monitor_max_memory": (17_000_000, "bytes"),
        "memory_anon": (900, "bytes"),
        "memory_file": (100, "bytes"),
        "memory_kernel_stack": (16, "bytes"),
        "memory_pagetables": (8, "bytes"),
        "monitor_rss": (20_000_000, "bytes"),
        "monitor_max_rss": (21_000_000, "bytes"),
    }


def test_v1_figures_are_pod_totals_only_and_the_job_figures_named_missing() -> None:
    stats = parse_stats(V1, CHANNEL_MESSAGE)
    got = {k: m.value for k, m in stats_metrics(stats).items()}
    assert got == {
        "pod_cpu_time": 3.0,
        "pod_cpu_user": 2.0,
        "pod_cpu_system": 1.0,
        "pod_max_memory": 5000,
    }
    ann = stats_annotations(stats)
    missing = json.loads(ann["stats_missing"])
    assert missing["cpu_time"] == missing["max_memory"] == V1_REASON
    assert ann["pod_max_memory_source"] == "memory.max_usage_in_bytes"
    assert "max_memory_source" not in ann


@pytest.mark.parametrize(
    ("change", "figure", "why"),
    [
        ({"max_memory": 2**1030}, "max_memory", "not below 2^63"),
        ({"max_memory": 2**63}, "max_memory", "not below 2^63"),
        ({"pod_max_memory": -1}, "pod_max_memory", "negative"),
        ({"cpu_time": -1}, "cpu_time", "negative"),
        ({"cpu_time": float("nan")}, "cpu_time", "finite"),
        ({"cpu_user": float("inf")}, "cpu_user", "finite"),
        ({"cpu_time": 10**400}, "cpu_time", "range"),
        ({"memory": {"anon": 2**64}}, "memory.anon", "2^63"),
        ({"oom_kills": -3}, "oom_kills", "negative"),
        ({"containers": {CID: {"cpu_time": "x"}}}, f"containers.{CID}", "expected seconds"),
        ({"containers": {CID: {"max_memory": 2**70}}}, f"containers.{CID}.max_memory", "2^63"),
    ],
)
def test_out_of_bounds_figures_are_dropped_and_named(
    change: dict[str, Any], figure: str, why: str
) -> None:
    stats = parse_stats({**STATS, **change}, CHANNEL_POST)
    assert why in stats.dropped[figure]
    assert json.loads(stats_annotations(stats)["stats_missing"])[figure] == stats.dropped[figure]
    # The rest is still used.
    metrics = stats_metrics(stats)
    assert metrics["monitor_rss"].value == 20_000_000 and figure not in metrics


def test_cpu_seconds_above_cores_times_the_pods_run_are_dropped() -> None:
    # The pod ran from 10 to 15 s (API times): 8 cores x (5 + 2 s slack) = 56 s at most.
    stats = parse_stats({**STATS, "cpu_time": 56.5, "pod_cpu_time": 55.0}, CHANNEL_POST)
    checked = bounded(stats, DONE)
    assert "cpu_time" not in checked.seconds and checked.seconds["pod_cpu_time"] == 55.0
    assert checked.dropped["cpu_time"] == "dropped: above 8 cores x 7 s of the pod's run"
    # Without cpus (v1), the cap on cores applies; without timestamps nothing can be said.
    v1 = parse_stats({**V1, "cpu_time": MAX_CPUS * 7.5}, CHANNEL_POST)
    assert "pod_cpu_time" in bounded(v1, DONE).dropped
    assert bounded(stats, BASE) is stats


def test_containers_are_named_through_the_pods_container_ids() -> None:
    facts = replace(DONE, container_ids=((CID, "job"), ("b" * 64, "servo-monitor")))
    other = "c" * 64
    containers = {CID: {"cpu_time": 12.5, "max_memory": 9}, other: {"cpu_time": 0.1}}
    stats = parse_stats({**STATS, "containers": containers}, CHANNEL_POST)
    got = json.loads(stats_annotations(stats, facts)["containers"])
    assert got == {
        "job": {"cpu_time": 12.5, "max_memory": 9},
        f"id:{other[:12]}": {"cpu_time": 0.1, "max_memory": None},
    }


def test_container_ids_come_from_the_pod_status() -> None:
    pod = monitored_pod()
    set_terminated(pod)
    pod["status"]["containerStatuses"][1]["containerID"] = f"containerd://{CID}"
    pod["status"]["containerStatuses"][0]["containerID"] = "no-runtime-prefix"
    facts = facts_from_pod(pod, QUERY).facts
    assert facts is not None and facts.container_ids == ((CID, "job"),)


def test_missing_figures_are_absent_and_their_reasons_kept() -> None:
    doc = {**STATS, "cpu_time": None, "memory": {}, "missing": {"cpu_time": "vanished"}}
    stats = parse_stats(doc, CHANNEL_MESSAGE)
    assert "cpu_time" not in stats_metrics(stats)
    assert stats.missing == {"cpu_time": "vanished"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"v": 3}, "v"),
        ({"v": True}, "v"),
        ({"cpu_time": "12"}, "cpu_time"),
        ({"cpus": "8"}, "cpus"),
        ({"max_memory": 1.5}, "max_memory"),
        ({"max_memory": True}, "max_memory"),
        ({"memory": []}, "memory"),
        ({"memory": {"anon": "x"}}, "anon"),
        ({"missing": "no"}, "missing"),
        ({"cue": 3}, "cue"),
    ],
)
def test_bad_fields_are_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(StatsError, match=field):
        parse_stats({**STATS, **change}, CHANNEL_POST)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"stats": {}}',
        b'{"id": 5, "stats": {}}',
        b'{"id": "u"}',
        b"\xff\xfe",
    ],
)
def test_bad_post_bodies_raise(body: bytes) -> None:
    with pytest.raises(StatsError):
        parse_post_body(body)


def test_post_body_and_termination_message() -> None:
    uid, stats = parse_post_body(json.dumps({"id": "u1", "stats": STATS}).encode())
    assert uid == "u1" and stats.channel == CHANNEL_POST and stats.cpu_time_s == 12.5
    assert parse_termination_message(json.dumps(STATS)).channel == CHANNEL_MESSAGE
    with pytest.raises(StatsError, match="not JSON"):
        parse_termination_message("Error: killed")


@pytest.mark.parametrize("deep", ["[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1"])
def test_deep_json_is_a_stats_error_not_a_recursion_error(deep: str) -> None:
    with pytest.raises(StatsError, match="nested too deeply|not JSON"):
        parse_termination_message(deep)
    with pytest.raises(StatsError, match="nested too deeply|not JSON"):
        parse_post_body(deep.encode())


# --- the monitor as the servo sees it in a pod ------------------------------------------


def monitored_pod(*, native: bool = False) -> dict[str, Any]:
    pod = job_pod("mon-1")
    monitor = {"name": "servo-monitor", "image": "mon:1"}
    if native:
        pod["spec"]["initContainers"] = [{**monitor, "restartPolicy": "Always"}]
    else:
        pod["spec"]["containers"].append(monitor)
    return pod


def terminate_monitor(pod: dict[str, Any], message: str, *, native: bool = False) -> None:
    key = "initContainerStatuses" if native else "containerStatuses"
    pod["status"].setdefault(key, []).append(
        {"name": "servo-monitor", "state": {"terminated": {"exitCode": 0, "message": message}}}
    )


QUERY = parse_app_id_query("spec/containers/0/env/[JOBID]")


@pytest.mark.parametrize("native", [False, True])
def test_facts_find_the_monitor_and_its_message(native: bool) -> None:
    pod = monitored_pod(native=native)
    set_running(pod)
    running = facts_from_pod(pod, QUERY).facts
    assert running is not None and not running.monitor_terminated
    set_terminated(pod)
    pod["status"]["podIP"] = "10.1.2.3"
    terminate_monitor(pod, json.dumps(STATS), native=native)
    facts = facts_from_pod(pod, QUERY).facts
    assert facts is not None
    assert facts.monitor == "servo-monitor" and facts.monitor_terminated
    assert json.loads(facts.monitor_message) == STATS and facts.pod_ip == "10.1.2.3"


def test_a_pod_without_our_monitor_has_none() -> None:
    pod = job_pod("plain")  # the fixture's "monitor" container is someone else's exporter
    facts = facts_from_pod(pod, QUERY).facts
    assert facts is not None and facts.monitor == ""
    other = facts_from_pod(monitored_pod(), QUERY, monitor_name="other").facts
    assert other is not None and other.monitor == ""


# --- the tracker's wait -----------------------------------------------------------------

BASE = PodFacts(
    uid="u1",
    namespace="ns",
    name="p1",
    app_id="A",
    restart_policy="Never",
    monitor="servo-monitor",
    pod_ip="10.0.0.9",
)
RUNNING = replace(BASE, state=ContainerState.RUNNING, phase="Running", started_s=10.0)
DONE = replace(RUNNING, state=ContainerState.TERMINATED, finished_s=15.0, exit_code=0)
STATS_OBJ = parse_stats(STATS, CHANNEL_POST)


def test_a_post_is_held_until_the_monitor_ends_without_a_message() -> None:
    t = Tracker(stats_wait_s=30)
    assert t.observe("MODIFIED", RUNNING, now_s=100) is None
    assert t.observe("MODIFIED", DONE, now_s=101) is None
    assert t.expire(now_s=130) == []  # deadline is 131
    assert t.post_arrived("u1", STATS_OBJ, received_s=16) == (StatsVerdict.HELD, None)
    m = t.observe("MODIFIED", replace(DONE, monitor_terminated=True), now_s=102)
    assert m is not None and m.metrics["cpu_time"].value == 12.5
    assert m.metrics["duration"].value == 5 and m.annotations["stats_channel"] == CHANNEL_POST
    verdict = t.post_arrived("u1", STATS_OBJ, received_s=17)[0]
    assert verdict is StatsVerdict.ALREADY_REPORTED
    assert t.observe("MODIFIED", DONE, now_s=103) is None and t.expire(now_s=1e9) == []


def test_a_post_after_the_monitor_ended_without_a_message_decides_at_once() -> None:
    t = Tracker()
    t.observe("MODIFIED", replace(DONE, monitor_terminated=True), now_s=0)
    verdict, m = t.post_arrived("u1", STATS_OBJ, received_s=15)
    assert verdict is StatsVerdict.MEASURED and m is not None


def test_termination_message_completes_the_wait_and_wins_over_a_post() -> None:
    t = Tracker()
    assert t.observe("MODIFIED", DONE, now_s=0) is None
    forged = parse_stats({**STATS, "cpu_time": 0.001}, CHANNEL_POST)
    assert t.post_arrived("u1", forged, received_s=20)[0] is StatsVerdict.HELD
    m = t.observe("MODIFIED", replace(DONE, monitor_message=json.dumps(STATS)), now_s=1)
    assert m is not None and m.annotations["stats_channel"] == CHANNEL_MESSAGE
    assert m.metrics["cpu_time"].value == 12.5


def test_posts_from_before_the_jobs_end_are_never_used() -> None:
    t = Tracker(stats_wait_s=5)
    t.observe("MODIFIED", RUNNING, now_s=0)
    # Received at 14 s, the job's finishedAt is 15 s: it cannot be the monitor's final word.
    assert t.post_arrived("u1", STATS_OBJ, received_s=14)[0] is StatsVerdict.HELD
    assert t.observe("MODIFIED", DONE, now_s=1) is None
    [m] = t.expire(now_s=6)
    assert "cpu_time" not in m.metrics and m.annotations["stats"].startswith("none:")
    t2 = Tracker()
    t2.observe("MODIFIED", DONE, now_s=0)
    assert t2.post_arrived("u1", STATS_OBJ, received_s=14.9)[0] is StatsVerdict.EARLY


def test_a_held_post_decides_when_the_wait_runs_out() -> None:
    t = Tracker(stats_wait_s=5)
    t.observe("MODIFIED", RUNNING, now_s=0)
    t.post_arrived("u1", STATS_OBJ, received_s=15)
    t.observe("MODIFIED", replace(DONE, monitor_message="garbage"), now_s=1)
    [m] = t.expire(now_s=6)
    assert m.metrics["cpu_time"].value == 12.5
    assert m.annotations["termination_message"].startswith("unusable: termination message")


def test_no_stats_in_time_measures_without_them_saying_why() -> None:
    t = Tracker(stats_wait_s=5)
    t.observe("MODIFIED", replace(DONE, monitor_message="Error: OOMKilled"), now_s=0)
    assert t.expire(now_s=4.9) == []
    [m] = t.expire(now_s=5)
    assert "cpu_time" not in m.metrics and m.metrics["duration"].value == 5
    assert m.annotations["stats"].startswith("none: no stats from the monitor within 5 s")
    assert "termination message was unusable" in m.annotations["stats"]
    assert len(t) == 1  # reported, remembered until the pod goes


def test_a_message_from_before_the_jobs_last_run_is_not_its_figures() -> None:
    # restartPolicy OnFailure: a plain monitor took the first crash for the end and reported.
    t = Tracker(stats_wait_s=5)
    stale = replace(
        DONE,
        finished_s=500.0,
        monitor_message=json.dumps(STATS),
        monitor_terminated=True,
        monitor_finished_s=17.0,
    )
    assert t.observe("MODIFIED", stale, now_s=0) is None
    [m] = t.expire(now_s=5)
    assert "cpu_time" not in m.metrics and "max_memory" not in m.metrics
    assert "the monitor ended before the job's last run ended" in m.annotations["stats"]
    # The same message a second after the job's end is this run's.
    fresh = replace(stale, monitor_finished_s=501.0)
    assert Tracker().observe("MODIFIED", fresh, now_s=0) is not None


def test_the_first_held_post_is_not_replaced_by_a_later_one() -> None:
    t = Tracker(stats_wait_s=5)
    t.observe("MODIFIED", DONE, now_s=0)
    forged = parse_stats({**STATS, "cpu_time": 0.001}, CHANNEL_POST)
    assert t.post_arrived("u1", STATS_OBJ, received_s=16)[0] is StatsVerdict.HELD
    assert t.post_arrived("u1", forged, received_s=17)[0] is StatsVerdict.HELD
    [m] = t.expire(now_s=5)
    assert m.metrics["cpu_time"].value == 12.5


def test_a_forged_early_post_does_not_push_out_the_monitors() -> None:
    # The watch still shows the job running when both arrive; only the later one is after
    # the job's end.
    t = Tracker(stats_wait_s=5)
    t.observe("MODIFIED", RUNNING, now_s=0)
    forged = parse_stats({**STATS, "cpu_time": 0.001}, CHANNEL_POST)
    assert t.post_arrived("u1", forged, received_s=12)[0] is StatsVerdict.HELD
    assert t.post_arrived("u1", STATS_OBJ, received_s=16)[0] is StatsVerdict.HELD
    t.observe("MODIFIED", DONE, now_s=1)
    [m] = t.expire(now_s=6)
    assert m.metrics["cpu_time"].value == 12.5


def test_deletion_does_not_end_the_wait() -> None:
    t = Tracker()
    t.observe("MODIFIED", DONE, now_s=0)
    assert t.observe("DELETED", DONE, now_s=1) is None
    assert t.post_arrived("u1", STATS_OBJ, received_s=16)[0] is StatsVerdict.HELD
    m = t.observe("DELETED", replace(DONE, monitor_message=json.dumps(STATS)), now_s=2)
    assert m is not None and m.annotations["stats_channel"] == CHANNEL_MESSAGE


def test_unknown_uid_and_jobs_without_monitor() -> None:
    t = Tracker()
    assert t.post_arrived("nope", STATS_OBJ, received_s=0) == (StatsVerdict.UNKNOWN, None)
    m = t.observe("MODIFIED", replace(DONE, monitor=""), now_s=0)
    assert m is not None and "stats" not in m.annotations  # measured at once


def test_failures_do_not_wait() -> None:
    t = Tracker()
    t.observe("ADDED", BASE, now_s=0)
    m = t.observe("DELETED", BASE, now_s=1)
    assert m is not None and m.failure is not None


def test_relist_keeps_awaiting_jobs() -> None:
    t = Tracker()
    t.observe("MODIFIED", DONE, now_s=0)
    assert t.relisted([]) == []
    assert "u1" in t.awaiting


def test_running_pod_fixture_helpers_still_build() -> None:
    pod = monitored_pod()
    set_running(pod)
    facts = facts_from_pod(pod, QUERY).facts
    assert facts is not None and facts.monitor_message == ""


def test_expire_gives_each_job_its_own_reason() -> None:
    t = Tracker(stats_wait_s=5)
    t.observe("MODIFIED", replace(DONE, monitor_message="garbage"), now_s=0)
    t.observe("MODIFIED", replace(DONE, uid="u2"), now_s=0)
    got = {m.job.uid: m.annotations["stats"] for m in t.expire(now_s=10, why="servo stopped")}
    assert got["u2"] == "none: servo stopped"
    assert got["u1"].startswith("none: servo stopped; its termination message was unusable")


# --- OOMKilled, said plainly ---------------------------------------------------------------

LIMITED = replace(
    DONE,
    resources_json='{"limits":{"memory":"256Mi"}}',
    container="job",
    container_ids=((CID, "job"),),
)


def test_oom_killed_by_the_container_status() -> None:
    facts = replace(LIMITED, exit_code=137, term_reason="OOMKilled")
    m = with_stats(measurement_from_facts(facts), STATS_OBJ)
    assert m.annotations["reason"] == "OOMKilled" and m.annotations["oom_killed"] == "true"
    assert m.metrics["memory_limit"] == Metric(256 << 20, "bytes")
    assert m.metrics["max_memory"].value == STATS["max_memory"]
    # Without the monitor's stats the container status alone still says it.
    plain = measurement_from_facts(facts)
    assert plain.annotations["oom_killed"] == "true" and "memory_limit" in plain.metrics


def test_oom_killed_by_the_cgroup_counter_of_the_job_container() -> None:
    facts = replace(LIMITED, exit_code=137, term_reason="Error")
    job = {"cpu_time": 1.0, "max_memory": 268_000_000, "oom_kills": 1}
    killed = {**STATS, "oom_kills": 1, "containers": {CID: job}}
    m = with_stats(measurement_from_facts(facts), parse_stats(killed, CHANNEL_MESSAGE))
    assert m.annotations["reason"] == "OOMKilled" and m.annotations["oom_killed"] == "true"
    assert m.annotations["oom_kills"] == "1"
    # A child killed for memory in a job that went on to exit 0 is no OOMKilled job.
    ok = with_stats(
        measurement_from_facts(replace(LIMITED, exit_code=0, term_reason="Completed")),
        parse_stats(killed, CHANNEL_MESSAGE),
    )
    assert ok.annotations["reason"] == "Completed" and "oom_killed" not in ok.annotations
    assert ok.annotations["oom_kills"] == "1"


def test_no_memory_limit_no_metric() -> None:
    assert (
        "memory_limit" not in measurement_from_facts(replace(LIMITED, resources_json="{}")).metrics
    )
