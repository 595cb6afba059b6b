"""The servo's reading of the monitor's stats, and the tracker's wait for them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from msgspec.structs import replace

from servo.appid import parse_app_id_query
from servo.models import ContainerState, PodFacts
from servo.pods import facts_from_pod
from servo.stats import (
    CHANNEL_MESSAGE,
    CHANNEL_POST,
    StatsError,
    parse_post_body,
    parse_stats,
    parse_termination_message,
    stats_metrics,
)
from servo.tracker import StatsVerdict, Tracker
from tests.helpers import job_pod, set_running, set_terminated

STATS: dict[str, Any] = {
    "v": 1,
    "cgroup": "v2",
    "cgroup_path": "/sys/fs/cgroup/kubepods.slice/x",
    "cpu_time": 12.5,
    "cpu_user": 10.0,
    "cpu_system": 2.5,
    "max_memory": 1_073_741_824,
    "max_memory_source": "memory.peak",
    "memory": {"anon": 900, "file": 100, "kernel_stack": 16, "pagetables": 8},
    "monitor_rss": 20_000_000,
    "monitor_max_rss": 21_000_000,
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
        "memory_anon": (900, "bytes"),
        "memory_file": (100, "bytes"),
        "memory_kernel_stack": (16, "bytes"),
        "memory_pagetables": (8, "bytes"),
        "monitor_rss": (20_000_000, "bytes"),
        "monitor_max_rss": (21_000_000, "bytes"),
    }


def test_missing_figures_are_absent_and_their_reasons_kept() -> None:
    doc = {**STATS, "cpu_time": None, "memory": {}, "missing": {"cpu_time": "vanished"}}
    stats = parse_stats(doc, CHANNEL_MESSAGE)
    assert "cpu_time" not in stats_metrics(stats)
    assert stats.missing == {"cpu_time": "vanished"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"v": 2}, "v"),
        ({"cpu_time": "12"}, "cpu_time"),
        ({"cpu_time": -1}, "cpu_time"),
        ({"cpu_time": float("nan")}, "cpu_time"),
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


# --- the monitor as the servo sees it in a pod ------------------------------------------


def monitored_pod(*, native: bool = False, token: str = "tok") -> dict[str, Any]:
    pod = job_pod("mon-1")
    monitor = {
        "name": "servo-monitor",
        "image": "mon:1",
        "env": [{"name": "OPTUNE_STATS_TOKEN", "value": token}],
    }
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
def test_facts_find_the_monitor_token_and_message(native: bool) -> None:
    pod = monitored_pod(native=native)
    set_terminated(pod)
    pod["status"]["podIP"] = "10.1.2.3"
    terminate_monitor(pod, json.dumps(STATS), native=native)
    facts = facts_from_pod(pod, QUERY).facts
    assert facts is not None
    assert facts.monitor == "servo-monitor" and facts.stats_token == "tok"
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


def test_monitored_job_waits_for_posted_stats() -> None:
    t = Tracker(stats_wait_s=30)
    assert t.observe("MODIFIED", RUNNING, now_s=100) is None
    assert t.observe("MODIFIED", DONE, now_s=101) is None
    assert t.expire(now_s=130) == []  # deadline is 131
    verdict, m = t.stats_arrived("u1", STATS_OBJ)
    assert verdict is StatsVerdict.MEASURED and m is not None
    assert m.metrics["cpu_time"].value == 12.5 and m.metrics["duration"].value == 5
    assert m.annotations["stats_channel"] == CHANNEL_POST
    assert t.stats_arrived("u1", STATS_OBJ)[0] is StatsVerdict.ALREADY_REPORTED
    assert t.observe("MODIFIED", DONE, now_s=102) is None and t.expire(now_s=1e9) == []


def test_termination_message_completes_the_wait() -> None:
    t = Tracker()
    assert t.observe("MODIFIED", DONE, now_s=0) is None
    m = t.observe("MODIFIED", replace(DONE, monitor_message=json.dumps(STATS)), now_s=1)
    assert m is not None and m.annotations["stats_channel"] == CHANNEL_MESSAGE
    assert m.metrics["max_memory"].value == 1_073_741_824


def test_stats_before_the_job_ends_are_kept() -> None:
    t = Tracker()
    t.observe("MODIFIED", RUNNING, now_s=0)
    assert t.stats_arrived("u1", STATS_OBJ)[0] is StatsVerdict.KEPT
    m = t.observe("MODIFIED", DONE, now_s=1)
    assert m is not None and m.metrics["cpu_time"].value == 12.5


def test_no_stats_in_time_measures_without_them_saying_why() -> None:
    t = Tracker(stats_wait_s=5)
    t.observe("MODIFIED", replace(DONE, monitor_message="Error: OOMKilled"), now_s=0)
    assert t.expire(now_s=4.9) == []
    [m] = t.expire(now_s=5)
    assert "cpu_time" not in m.metrics and m.metrics["duration"].value == 5
    assert m.annotations["stats"].startswith("none: no stats from the monitor within 5 s")
    assert "termination message was unusable" in m.annotations["stats"]
    assert len(t) == 1  # reported, remembered until the pod goes


def test_deletion_does_not_end_the_wait() -> None:
    t = Tracker()
    t.observe("MODIFIED", DONE, now_s=0)
    assert t.observe("DELETED", DONE, now_s=1) is None
    assert t.stats_arrived("u1", STATS_OBJ)[1] is not None


def test_unknown_uid_and_jobs_without_monitor() -> None:
    t = Tracker()
    assert t.stats_arrived("nope", STATS_OBJ) == (StatsVerdict.UNKNOWN, None)
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
    assert t.stats_arrived("u1", STATS_OBJ)[0] is StatsVerdict.MEASURED


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
