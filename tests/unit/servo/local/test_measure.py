"""`servo measure`'s pure parts (tables) and its cgroup handling against fixture trees."""

from __future__ import annotations

import argparse
import json
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from servo.core.measure_figures import (
    RunFigures,
    build_param,
    children_peak_bytes,
    command_from_args,
    command_text,
    default_app_id,
    event_id_for,
    exit_code_for,
    format_bytes,
    format_duration,
    format_progress,
    format_summary,
    progress_due,
    reason_for,
    should_forward,
)
from servo.local.cgroup import (
    UNIFIED,
    CgroupUnavailableError,
    LocalCgroup,
    create_local_cgroup,
    parse_proc_cgroup,
    v1_dir_names,
)
from servo.local.measure import add_measure_parser, build_parser

MIB = 1 << 20


@pytest.mark.parametrize(
    ("returncode", "exit_code", "reason"),
    [
        (0, 0, "Completed"),
        (1, 1, "Error"),
        (3, 3, "Error"),
        (255, 255, "Error"),
        (-9, 137, "Signal 9"),
        (-15, 143, "Signal 15"),
        (-2, 130, "Signal 2"),
    ],
)
def test_exit_code_and_reason_follow_the_shell(
    returncode: int, exit_code: int, reason: str
) -> None:
    assert exit_code_for(returncode) == exit_code
    assert reason_for(returncode) == reason


@pytest.mark.parametrize(
    ("cmd", "text"),
    [
        (["true"], "true"),
        (["echo", "a b", "c'd"], "echo 'a b' 'c'\"'\"'d'"),
        (["sh", "-c", "exit 3"], "sh -c 'exit 3'"),
        (["x"] * 150, ("x " * 98) + "x..."),
    ],
)
def test_command_text_is_shell_quoted_and_cut_to_200(cmd: list[str], text: str) -> None:
    out = command_text(cmd)
    assert out == text
    assert len(out) <= 200


@pytest.mark.parametrize(
    ("cmd", "app_id"),
    [
        (["python3", "x.py"], "python3"),
        (["/usr/bin/python3", "x.py"], "python3"),
        (["./run.sh"], "run.sh"),
        (["/opt/tool/"], "tool"),
    ],
)
def test_default_app_id_is_the_command_basename(cmd: list[str], app_id: str) -> None:
    assert default_app_id(cmd) == app_id


def test_event_id_is_the_uuid_and_kind() -> None:
    assert event_id_for("1b4e28ba-2fa1-11d2-883f-0016d3cca427") == (
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427:MEASUREMENT"
    )


def test_build_param_has_every_metric_and_annotation() -> None:
    figures = RunFigures(
        duration_s=2.0,
        returncode=0,
        measured_by="cgroup-v1",
        cpu_time_s=1.5,
        cpu_user_s=1.25,
        cpu_system_s=0.25,
        max_memory_bytes=100 * MIB,
    )
    param = build_param(figures, cmd=["python3", "-c", "pass"], host="h1")
    assert param == {
        "metrics": {
            "duration": {"value": 2.0, "unit": "s"},
            "perf": {"value": 0.5, "unit": "1/s"},
            "cpu_time": {"value": 1.5, "unit": "s"},
            "cpu_user": {"value": 1.25, "unit": "s"},
            "cpu_system": {"value": 0.25, "unit": "s"},
            "max_memory": {"value": 100 * MIB, "unit": "bytes"},
        },
        "annotations": {
            "exitcode": "0",
            "command": "python3 -c pass",
            "host": "h1",
            "measured_by": "cgroup-v1",
            "reason": "Completed",
        },
    }


def test_build_param_leaves_out_perf_at_zero_duration_and_missing_figures() -> None:
    figures = RunFigures(
        duration_s=0.0,
        returncode=-9,
        measured_by="cgroup-v2",
        cpu_time_s=0.0,
        missing={"max_memory": "memory.peak: empty", "cpu_user": "cpu.stat: no user_usec field"},
    )
    param = build_param(figures, cmd=["x"], host="h")
    assert set(param["metrics"]) == {"duration", "cpu_time"}
    assert param["annotations"]["exitcode"] == "137"
    assert param["annotations"]["reason"] == "Signal 9"
    assert param["annotations"]["missing"] == (
        "cpu_user: cpu.stat: no user_usec field; max_memory: memory.peak: empty"
    )


@pytest.mark.parametrize(
    ("before", "after", "own", "peak_bytes"),
    [
        (0, 120_000, 40_000, 120_000 * 1024),  # the command's own peak
        (0, 40_000, 40_000, 0),  # could be the fork of the servo itself
        (0, 30_000, 40_000, 0),
        (150_000, 150_000, 40_000, 0),  # unchanged: an earlier child's
        (150_000, 160_000, 40_000, 160_000 * 1024),
    ],
)
def test_children_peak_is_used_only_when_it_can_be_the_commands(
    before: int, after: int, own: int, peak_bytes: int
) -> None:
    assert children_peak_bytes(before_kib=before, after_kib=after, own_peak_kib=own) == peak_bytes


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0.00 s"),
        (0.25, "0.25 s"),
        (9.994, "9.99 s"),
        (42.04, "42.0 s"),
        (185, "3m05s"),
        (7380, "2h03m"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [(None, "?"), (0, "0.0 MiB"), (100 * MIB, "100.0 MiB"), (20 * 1024 * MIB, "20.00 GiB")],
)
def test_format_bytes(n: int | None, text: str) -> None:
    assert format_bytes(n) == text


def test_format_progress_and_summary() -> None:
    assert format_progress(elapsed_s=12.34, cpu_s=None, memory_bytes=5 * MIB) == (
        "servo measure: running 12.3 s, cpu ?, memory 5.0 MiB"
    )
    figures = RunFigures(
        duration_s=1.5, returncode=-15, measured_by="rusage", cpu_time_s=1.0, max_memory_bytes=None
    )
    assert format_summary(figures, delivered="stored in /x.db") == (
        "servo measure: exit 143 (Signal 15) after 1.50 s, cpu 1.00 s, peak memory ?"
        " [rusage]; stored in /x.db"
    )


@pytest.mark.parametrize(
    ("elapsed", "last", "due"),
    [
        (0.2, None, False),
        (2.9, None, False),
        (3.0, None, True),
        (7.9, 3.0, False),
        (8.0, 3.0, True),
        (20.0, 8.0, True),
    ],
)
def test_progress_is_due_first_after_3s_then_every_5s(
    elapsed: float, last: float | None, due: bool
) -> None:
    assert progress_due(elapsed_s=elapsed, last_shown_s=last, first_s=3.0, every_s=5.0) is due


@pytest.mark.parametrize(
    ("signum", "tty_fg", "forward"),
    [
        (signal.SIGTERM, False, True),
        (signal.SIGTERM, True, True),
        (signal.SIGHUP, True, True),
        (signal.SIGINT, False, True),  # kill -INT <servo>: only the servo got it
        (signal.SIGINT, True, False),  # Ctrl-C: the child got it from the terminal too
        (signal.SIGQUIT, True, False),
    ],
)
def test_signals_forwarded_unless_the_terminal_already_sent_them(
    signum: int, tty_fg: bool, forward: bool
) -> None:
    assert should_forward(signum, child_gets_tty_signals=tty_fg) is forward


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n",
            {"memory": "/process_api/abc", "cpuacct": "/", "cpu": "/", UNIFIED: "/"},
        ),
        (
            "5:cpu,cpuacct:/user.slice\n3:memory:/user.slice\n",
            {
                "cpu,cpuacct": "/user.slice",
                "cpu": "/user.slice",
                "cpuacct": "/user.slice",
                "memory": "/user.slice",
            },
        ),
        ("0::/user.slice/session-1.scope\n", {UNIFIED: "/user.slice/session-1.scope"}),
        ("garbage\n\n", {}),
    ],
)
def test_parse_proc_cgroup(text: str, expected: dict[str, str]) -> None:
    assert parse_proc_cgroup(text) == expected


@pytest.mark.parametrize(
    ("text", "dirs"),
    [
        ("4:memory:/a\n2:cpuacct:/\n1:cpu:/\n", ("memory", "cpuacct")),
        ("5:cpu,cpuacct:/a\n3:memory:/a\n", ("memory", "cpu,cpuacct")),
        ("5:cpuacct,cpu:/a\n3:memory:/a\n", ("memory", "cpuacct,cpu")),
        ("0::/a\n", None),
        ("3:memory:/a\n", None),
    ],
)
def test_v1_dir_names(text: str, dirs: tuple[str, str] | None) -> None:
    assert v1_dir_names(parse_proc_cgroup(text)) == dirs


V1_SELF = "4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n"


def v1_mount(tmp_path: Path) -> Path:
    (tmp_path / "memory" / "process_api" / "abc").mkdir(parents=True)
    (tmp_path / "cpuacct").mkdir()
    return tmp_path


def test_v1_cgroup_is_made_under_the_own_cgroup_of_each_controller(tmp_path: Path) -> None:
    mount = v1_mount(tmp_path)
    cg = create_local_cgroup(mount=mount, proc_self_cgroup=V1_SELF, name="servo-measure-t")
    assert cg.version == "v1"
    assert cg.memory == mount / "memory" / "process_api" / "abc" / "servo-measure-t"
    assert cg.cpu == mount / "cpuacct" / "servo-measure-t"
    assert cg.memory.is_dir() and cg.cpu.is_dir()
    # What the kernel would have filled in:
    (cg.cpu / "cpuacct.usage").write_text("1500000000\n")
    (cg.cpu / "cpuacct.stat").write_text("user 120\nsystem 30\n")
    (cg.memory / "memory.max_usage_in_bytes").write_text(f"{100 * MIB}\n")
    (cg.memory / "memory.usage_in_bytes").write_text(f"{5 * MIB}\n")
    f = cg.read_figures(clk_tck=100)
    assert (f.cpu_time_s, f.cpu_user_s, f.cpu_system_s) == (1.5, 1.2, 0.3)
    assert f.max_memory_bytes == 100 * MIB
    assert f.missing == {}
    assert cg.read_usage() == (1.5, 5 * MIB)
    for d in cg.dirs:  # a real cgroup dir holds only kernel files, which rmdir ignores
        for p in d.iterdir():
            p.unlink()
    cg.remove()
    assert not cg.memory.exists() and not cg.cpu.exists()


def test_v1_missing_files_become_missing_figures(tmp_path: Path) -> None:
    cg = create_local_cgroup(mount=v1_mount(tmp_path), proc_self_cgroup=V1_SELF, name="m")
    f = cg.read_figures(clk_tck=100)
    assert (f.cpu_time_s, f.max_memory_bytes) == (None, None)
    assert set(f.missing) == {"cpu_time", "cpu_user", "cpu_system", "max_memory"}
    assert cg.read_usage() == (None, None)


def test_v1_own_cgroup_not_under_the_mount_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    (tmp_path / "cpuacct").mkdir()
    with pytest.raises(CgroupUnavailableError, match="not found"):
        create_local_cgroup(mount=tmp_path, proc_self_cgroup=V1_SELF)


def test_v1_mkdir_failure_removes_what_was_made(tmp_path: Path) -> None:
    mount = v1_mount(tmp_path)
    (mount / "cpuacct" / "taken").write_text("")  # a file where the cgroup dir should go
    with pytest.raises(CgroupUnavailableError, match="cannot create"):
        create_local_cgroup(mount=mount, proc_self_cgroup=V1_SELF, name="taken")
    assert not (mount / "memory" / "process_api" / "abc" / "taken").exists()


def test_no_cgroup_hierarchy_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(CgroupUnavailableError, match="no cgroup v1"):
        create_local_cgroup(mount=tmp_path, proc_self_cgroup="0::/\n")


def test_v2_without_memory_peak_is_unavailable_and_cleaned_up(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    own = tmp_path / "user.slice"
    own.mkdir()
    (own / "cgroup.subtree_control").write_text("\n")
    with pytest.raises(CgroupUnavailableError, match="memory.peak"):
        create_local_cgroup(mount=tmp_path, proc_self_cgroup="0::/user.slice\n", name="m")
    assert (own / "cgroup.subtree_control").read_text() == "+memory"
    assert not (own / "m").exists()


def test_v2_figures_from_cpu_stat_and_memory_peak(tmp_path: Path) -> None:
    d = tmp_path / "servo-measure-x"
    d.mkdir()
    (d / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    (d / "memory.peak").write_text(f"{64 * MIB}\n")
    (d / "memory.current").write_text(f"{8 * MIB}\n")
    cg = LocalCgroup(version="v2", memory=d, cpu=d, parents={d: tmp_path})
    assert cg.dirs == (d,)
    f = cg.read_figures(clk_tck=100)
    assert (f.cpu_time_s, f.cpu_user_s, f.cpu_system_s) == (2.5, 2.0, 0.5)
    assert f.max_memory_bytes == 64 * MIB
    assert cg.read_usage() == (2.5, 8 * MIB)


@pytest.mark.parametrize(
    ("argv", "app_id", "no_cgroup", "cmd"),
    [
        (["--", "sleep", "1"], None, False, ["sleep", "1"]),
        (["--app-id", "x", "--no-cgroup", "--", "ls", "--app-id"], "x", True, ["ls", "--app-id"]),
        (["--", "sh", "--", "x"], None, False, ["sh", "--", "x"]),
        (["ls", "-l", "--no-cgroup"], None, False, ["ls", "-l", "--no-cgroup"]),
        (["--"], None, False, []),
    ],
)
def test_parser_keeps_everything_after_the_command(
    argv: list[str], app_id: str | None, no_cgroup: bool, cmd: list[str]
) -> None:
    top = argparse.ArgumentParser(prog="servo")
    add_measure_parser(top.add_subparsers(dest="command"))
    for parser, args in ((build_parser(), argv), (top, ["measure", *argv])):
        ns = parser.parse_args(args)
        assert (ns.app_id, ns.no_cgroup) == (app_id, no_cgroup)
        assert command_from_args(ns.cmd) == cmd


@pytest.mark.parametrize(
    ("change", "figure"),
    [
        ({"cpu_time_s": float("inf")}, "cpu_time"),
        ({"cpu_user_s": float("nan")}, "cpu_user"),
        ({"cpu_system_s": -0.5}, "cpu_system"),
        ({"max_memory_bytes": 2**1030}, "max_memory"),
        ({"max_memory_bytes": -1}, "max_memory"),
    ],
)
def test_build_param_drops_figures_that_cannot_be_readings(
    change: dict[str, Any], figure: str
) -> None:
    figures = RunFigures(
        duration_s=2.0,
        returncode=0,
        measured_by="cgroup-v2",
        cpu_time_s=1.0,
        cpu_user_s=0.5,
        cpu_system_s=0.5,
        max_memory_bytes=1 << 20,
    )
    param = build_param(replace(figures, **change), cmd=["x"], host="h")
    assert figure not in param["metrics"] and "duration" in param["metrics"]
    assert f"{figure}: dropped" in param["annotations"]["missing"]
    json.dumps(param, allow_nan=False)  # what goes out is valid JSON
