"""Reading fixture pod cgroups: the figures, and a reason for each one that cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from mon.cgroup_paths import find_pod_cgroup
from mon.cgroup_read import PodFigures, figures_unavailable, read_pod_figures
from tests.support.cgtree import (
    POD_PATHS,
    POD_UID,
    V1_MEMORY_FILES,
    V2_POD_FILES,
    build_v1,
    build_v2,
)

REL = POD_PATHS[("systemd", "burstable")]


def _read(tmp_path: Path, *, sampled: int | None = None, clk_tck: int = 100) -> PodFigures:
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID)
    return read_pod_figures(pod, sampled_max_memory=sampled, clk_tck=clk_tck)


def test_v2_figures_in_seconds_and_bytes(tmp_path: Path) -> None:
    build_v2(tmp_path, REL)
    f = _read(tmp_path)
    assert (f.cpu_time, f.cpu_user, f.cpu_system) == pytest.approx((12.5, 10.0, 2.5))
    assert f.max_memory == 524288000
    assert f.max_memory_source == "memory.peak"
    assert f.memory == {
        "anon": 73400320,
        "file": 20971520,
        "kernel_stack": 327680,
        "pagetables": 1048576,
    }
    assert f.missing == {}


def test_v1_figures_in_seconds_and_bytes(tmp_path: Path) -> None:
    build_v1(tmp_path, REL)
    f = _read(tmp_path, clk_tck=100)
    assert f.cpu_time == pytest.approx(12.5)
    assert (f.cpu_user, f.cpu_system) == pytest.approx((10.0, 2.5))
    assert f.max_memory == 524288000
    assert f.max_memory_source == "memory.max_usage_in_bytes"
    assert f.memory == {"anon": 73400320, "file": 20971520}
    assert set(f.missing) == {"memory.kernel_stack", "memory.pagetables"}


def test_v2_without_memory_peak_uses_the_largest_sample(tmp_path: Path) -> None:
    files = {k: v for k, v in V2_POD_FILES.items() if k != "memory.peak"}
    build_v2(tmp_path, REL, files=files)
    f = _read(tmp_path, sampled=300_000_000)
    assert f.max_memory == 300_000_000
    assert f.max_memory_source == "sampled"
    assert "max_memory" not in f.missing


def test_v2_sampling_includes_memory_current_at_the_end(tmp_path: Path) -> None:
    files = {k: v for k, v in V2_POD_FILES.items() if k != "memory.peak"}
    build_v2(tmp_path, REL, files=files)
    f = _read(tmp_path, sampled=1000)
    assert f.max_memory == 104857600  # memory.current in the fixture, larger than the sample


def test_v2_neither_peak_nor_samples_is_missing_with_reason(tmp_path: Path) -> None:
    files = {k: v for k, v in V2_POD_FILES.items() if k not in ("memory.peak", "memory.current")}
    build_v2(tmp_path, REL, files=files)
    f = _read(tmp_path)
    assert f.max_memory is None and f.max_memory_source is None
    assert f.missing["max_memory"] == "memory.peak: file not found (cgroup removed?)"


@pytest.mark.parametrize(
    ("file", "content", "figures", "reason"),
    [
        ("cpu.stat", None, ("cpu_time", "cpu_user", "cpu_system"), "cpu.stat: file not found"),
        ("cpu.stat", "usage_usec 5\nuser_u", ("cpu_user", "cpu_system"), "cpu.stat: no "),
        ("memory.stat", None, ("memory.anon", "memory.file"), "memory.stat: file not found"),
        ("memory.stat", "", ("memory.anon", "memory.pagetables"), "memory.stat: no "),
    ],
)
def test_v2_vanished_or_half_written_file_makes_figures_missing(
    tmp_path: Path, file: str, content: str | None, figures: tuple[str, ...], reason: str
) -> None:
    pod_dir = build_v2(tmp_path, REL)
    if content is None:
        (pod_dir / file).unlink()
    else:
        (pod_dir / file).write_text(content)
    f = _read(tmp_path)
    for name in figures:
        assert f.missing[name].startswith(reason)
        if name.startswith("memory."):
            assert name.removeprefix("memory.") not in f.memory
        else:
            assert getattr(f, name) is None
    assert f.max_memory == 524288000  # the rest is still read


@pytest.mark.parametrize(
    ("file", "content", "figure", "reason"),
    [
        ("cpuacct.usage", None, "cpu_time", "cpuacct.usage: file not found"),
        ("cpuacct.usage", "", "cpu_time", "cpuacct.usage: empty"),
        ("cpuacct.stat", "user 12\nsyst", "cpu_system", "cpuacct.stat: no system field"),
        ("memory.max_usage_in_bytes", "52428", "max_memory", None),
        ("memory.max_usage_in_bytes", "5242x", "max_memory", "memory.max_usage_in_bytes: not a"),
        ("memory.max_usage_in_bytes", None, "max_memory", "memory.max_usage_in_bytes: file not"),
    ],
)
def test_v1_vanished_or_half_written_file_makes_figures_missing(
    tmp_path: Path, file: str, content: str | None, figure: str, reason: str | None
) -> None:
    dirs = build_v1(tmp_path, REL)
    path = (dirs["cpu"] if file.startswith("cpuacct") else dirs["memory"]) / file
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    f = _read(tmp_path)
    if reason is None:
        assert figure not in f.missing  # a short but well-formed number is a number
        assert getattr(f, figure) == int(content or 0)
    else:
        assert f.missing[figure].startswith(reason)
        assert getattr(f, figure) is None


def test_v1_whole_pod_dir_gone_reads_nothing_and_says_why(tmp_path: Path) -> None:
    dirs = build_v1(tmp_path, REL, memory_files=V1_MEMORY_FILES)
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID)
    for d in dirs.values():
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    figures = read_pod_figures(pod, sampled_max_memory=None, clk_tck=100)
    assert figures.cpu_time is None and figures.max_memory is None
    assert len(figures.missing) == 9  # every figure, the OOM counter included
    assert all("file not found" in r for r in figures.missing.values())


def test_figures_unavailable_names_every_figure() -> None:
    f = figures_unavailable("pod cgroup not found")
    assert set(f.missing) == {
        "cpu_time",
        "cpu_user",
        "cpu_system",
        "max_memory",
        "oom_kills",
        "memory.anon",
        "memory.file",
        "memory.kernel_stack",
        "memory.pagetables",
    }
    assert set(f.missing.values()) == {"pod cgroup not found"}
