"""The stats object and the 4096-byte termination message limit."""

from __future__ import annotations

import json

from mon.cgroup_read import PodFigures
from mon.jobfig import JobFigures
from mon.stats import build_stats
from mon.wire import (
    TERMINATION_MESSAGE_MAX_BYTES,
    WIRE_VERSION,
    ContainerFigures,
    encode_stats,
    fit_termination_message,
)
from tests.support.monstats import make_stats

_stats = make_stats


def test_small_stats_are_kept_whole() -> None:
    stats = _stats(missing={"memory.kernel_stack": "x"})
    data = fit_termination_message(stats)
    assert json.loads(data) == stats
    assert data == encode_stats(stats)


def test_build_stats_has_every_contract_key_of_wire_v2() -> None:
    stats = _stats(missing={"memory.kernel_stack": "x"})
    assert WIRE_VERSION == 2 and stats["v"] == 2
    assert set(stats) == {
        "v",
        "cgroup",
        "cgroup_path",
        "cpus",
        "cpu_time",
        "cpu_user",
        "cpu_system",
        "max_memory",
        "max_memory_source",
        "pod_cpu_time",
        "pod_cpu_user",
        "pod_cpu_system",
        "pod_max_memory",
        "pod_max_memory_source",
        "memory",
        "monitor_cpu_time",
        "monitor_max_memory",
        "monitor_rss",
        "monitor_max_rss",
        "oom_kills",
        "containers",
        "missing",
        "cue",
    }
    assert stats["cpu_time"] == 1.25 and stats["pod_cpu_time"] == 1.5


def test_build_stats_names_pod_reasons_by_their_pod_field() -> None:
    figures = PodFigures(None, None, None, None, None, {}, {"cpu_time": "gone"})
    stats = build_stats(
        pod=figures,
        job=JobFigures(missing={"cpu_time": "gone"}),
        containers={},
        cgroup="v1",
        cgroup_path="",
        cpus=1,
        monitor_rss=None,
        monitor_max_rss=1,
        cue="once",
    )
    assert stats["missing"] == {
        "pod_cpu_time": "gone",
        "cpu_time": "gone",
        "monitor_rss": "/proc/self/status has no VmRSS",
    }
    assert "containers" not in stats


def test_too_large_drops_breakdown_first() -> None:
    # Missing reasons alone just under the limit: dropping the breakdown is enough.
    stats = _stats(missing={})
    base = len(encode_stats(stats))
    pad = TERMINATION_MESSAGE_MAX_BYTES - base + 20
    stats["missing"] = {"memory.anon": "r" * pad}
    assert len(encode_stats(stats)) > TERMINATION_MESSAGE_MAX_BYTES
    data = fit_termination_message(stats)
    out = json.loads(data)
    assert len(data) <= TERMINATION_MESSAGE_MAX_BYTES
    assert "memory" not in out
    assert out["missing"] == stats["missing"]
    assert out["pod_cpu_time"] == 1.5 and out["pod_max_memory"] == 1 << 30


def test_too_large_drops_containers_second() -> None:
    many: dict[str, ContainerFigures] = {
        f"{i:064x}": {"cpu_time": 1.0, "max_memory": 1, "oom_kills": 0} for i in range(60)
    }
    stats = _stats(containers=many, missing={"memory.kernel_stack": "x"})
    data = fit_termination_message(stats)
    out = json.loads(data)
    assert len(data) <= TERMINATION_MESSAGE_MAX_BYTES
    assert "memory" not in out and "containers" not in out
    assert out["missing"] == {"memory.kernel_stack": "x"}


def test_too_large_then_drops_missing_reasons() -> None:
    stats = _stats(missing={f"figure{i}": "reason " * 20 for i in range(60)})
    data = fit_termination_message(stats)
    out = json.loads(data)
    assert len(data) <= TERMINATION_MESSAGE_MAX_BYTES
    assert "memory" not in out and "missing" not in out and "containers" not in out
    assert out["cpu_time"] == 1.25 and out["pod_cpu_time"] == 1.5 and out["cue"] == "SIGTERM"


def test_absurd_path_is_shortened_keeping_its_tail() -> None:
    path = "/rsys/fs/cgroup/" + "x/" * 3000 + "pod-tail"
    data = fit_termination_message(_stats(path=path))
    out = json.loads(data)
    assert len(data) <= TERMINATION_MESSAGE_MAX_BYTES
    assert out["cgroup_path"].startswith("...") and out["cgroup_path"].endswith("pod-tail")
    assert out["pod_max_memory"] == 1 << 30


def test_limit_is_a_parameter() -> None:
    data = fit_termination_message(_stats(), limit_bytes=500)
    assert len(data) <= 500
    assert json.loads(data)["v"] == 2
