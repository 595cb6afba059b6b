"""The stats object and the 4096-byte termination message limit."""

from __future__ import annotations

import json

from mon.cgroup_read import PodFigures
from mon.stats import build_stats
from mon.wire import TERMINATION_MESSAGE_MAX_BYTES, Stats, encode_stats, fit_termination_message


def _stats(*, missing: dict[str, str] | None = None, path: str = "/rsys/fs/cgroup/pod") -> Stats:
    figures = PodFigures(
        cpu_time=1.5,
        cpu_user=1.0,
        cpu_system=0.5,
        max_memory=1 << 30,
        max_memory_source="memory.peak",
        memory={"anon": 1, "file": 2, "kernel_stack": 3, "pagetables": 4},
        missing=missing or {},
    )
    return build_stats(
        figures=figures,
        cgroup="v2",
        cgroup_path=path,
        monitor_rss=20_000_000,
        monitor_max_rss=25_000_000,
        cue="SIGTERM",
    )


def test_small_stats_are_kept_whole() -> None:
    stats = _stats(missing={"memory.kernel_stack": "x"})
    data = fit_termination_message(stats)
    assert json.loads(data) == stats
    assert data == encode_stats(stats)


def test_build_stats_has_every_contract_key() -> None:
    assert set(_stats()) == {
        "v", "cgroup", "cgroup_path", "cpu_time", "cpu_user", "cpu_system", "max_memory",
        "max_memory_source", "memory", "monitor_rss", "monitor_max_rss", "missing", "cue",
    }  # fmt: skip


def test_build_stats_records_a_missing_footprint() -> None:
    figures = PodFigures(None, None, None, None, None, {}, {"cpu_time": "gone"})
    stats = build_stats(
        figures=figures, cgroup="v1", cgroup_path="", monitor_rss=None, monitor_max_rss=1,
        cue="once",
    )  # fmt: skip
    assert stats["missing"] == {
        "cpu_time": "gone",
        "monitor_rss": "psutil could not read this process",
    }


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
    assert out["cpu_time"] == 1.5 and out["max_memory"] == 1 << 30


def test_too_large_then_drops_missing_reasons() -> None:
    stats = _stats(missing={f"figure{i}": "reason " * 20 for i in range(60)})
    data = fit_termination_message(stats)
    out = json.loads(data)
    assert len(data) <= TERMINATION_MESSAGE_MAX_BYTES
    assert "memory" not in out and "missing" not in out
    assert out["cpu_time"] == 1.5 and out["cue"] == "SIGTERM"


def test_absurd_path_is_shortened_keeping_its_tail() -> None:
    path = "/rsys/fs/cgroup/" + "x/" * 3000 + "pod-tail"
    data = fit_termination_message(_stats(path=path))
    out = json.loads(data)
    assert len(data) <= TERMINATION_MESSAGE_MAX_BYTES
    assert out["cgroup_path"].startswith("...") and out["cgroup_path"].endswith("pod-tail")
    assert out["max_memory"] == 1 << 30


def test_limit_is_a_parameter() -> None:
    data = fit_termination_message(_stats(), limit_bytes=300)
    assert len(data) <= 300
    assert json.loads(data)["v"] == 1
