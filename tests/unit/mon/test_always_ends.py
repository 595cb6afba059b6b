"""A plain-style monitor ends by itself in every failure mode, reporting what it could.

Nobody sends a plain sidecar container SIGTERM before Kubernetes 1.29, so a monitor that waits
forever keeps the Job from completing. Each test runs the real `python -m mon` against a fixture
tree; the `timeout=` of each wait only guards against a hang, it is not what is tested.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

from tests.support.cgtree import POD_PATHS, build_v2, container_dir_name
from tests.support.monproc import APP, PAUSE, SELF, Start, fake_proc, mon_env
from tests.support.monreceiver import closed_port_url, stats_receiver

REL = POD_PATHS[("systemd", "burstable")]
NAMES = {k: container_dir_name("containerd", v) for k, v in (("a", APP), ("p", PAUSE), ("s", SELF))}
HANG_GUARD_S = 30


def _stats(tmp_path: Path) -> dict[str, object]:
    doc = json.loads((tmp_path / "termination-log").read_text())
    assert isinstance(doc, dict)
    return doc


def test_pod_cgroup_not_found_reports_the_reason_and_exits(tmp_path: Path, start: Start) -> None:
    build_v2(tmp_path, "kubepods")  # a hierarchy without this pod
    with stats_receiver() as rec:
        mon = start(mon_env(tmp_path, OPTUNE_SIDECAR_STYLE="plain", OPTUNE_STATS_URL=rec.url))
        assert mon.proc.wait(timeout=HANG_GUARD_S) == 0, mon.lines
    stats = _stats(tmp_path)
    assert stats["cue"] == "deadline"
    assert stats["cpu_time"] is None and stats["pod_cpu_time"] is None
    missing = stats["missing"]
    assert isinstance(missing, dict) and "pod cgroup not found" in missing["cpu_time"]
    assert [b["stats"] for b in rec.bodies] == [stats]


def test_no_host_sys_mount_reports_and_exits(tmp_path: Path, start: Start) -> None:
    mon = start(mon_env(tmp_path, OPTUNE_SYS_ROOT=str(tmp_path / "no-rsys")))
    assert mon.proc.wait(timeout=HANG_GUARD_S) == 0, mon.lines
    stats = _stats(tmp_path)
    assert stats["cue"] == "deadline" and stats["max_memory"] is None
    assert "pod cgroup not found" in str(stats["missing"])


def test_no_job_container_ever_seen_gives_up_at_the_bound(tmp_path: Path, start: Start) -> None:
    # Only the sandbox and the monitor: the job's containers exited (and their cgroups were
    # removed) before the monitor first looked.
    build_v2(tmp_path, REL, containers={NAMES["p"]: True, NAMES["s"]: True})
    env = mon_env(
        tmp_path, OPTUNE_UNSEEN_WAIT="1", OPTUNE_PROC_ROOT=str(fake_proc(tmp_path, NAMES["s"]))
    )
    mon = start(env)
    assert mon.proc.wait(timeout=HANG_GUARD_S) == 0, mon.lines
    stats = _stats(tmp_path)
    assert stats["cue"] == "deadline"
    assert stats["pod_cpu_time"] == 12.5  # what it could read, it reports
    assert any(e["msg"] == "no job container seen running; giving up waiting" for e in mon.log())


def test_unidentified_sandbox_does_not_keep_it_waiting(tmp_path: Path, start: Start) -> None:
    # The runtime's mounts name no sandbox: the pause container is one sibling that never exits.
    pod_dir = build_v2(
        tmp_path, REL, containers={NAMES["a"]: True, NAMES["p"]: True, NAMES["s"]: True}
    )
    proc = fake_proc(tmp_path, NAMES["s"], sandbox=None)
    mon = start(mon_env(tmp_path, OPTUNE_PROC_ROOT=str(proc), OPTUNE_UNSEEN_WAIT="3600"))
    assert mon.waiting.wait(HANG_GUARD_S), mon.lines
    time.sleep(0.3)  # several polls see the app running
    assert mon.proc.poll() is None, "left while the app container still ran"
    (pod_dir / NAMES["a"] / "cgroup.events").write_text("populated 0\n")
    assert mon.proc.wait(timeout=HANG_GUARD_S) == 0, mon.lines
    assert _stats(tmp_path)["cue"] == "siblings-exited"


def test_servo_unreachable_still_ends_with_the_termination_message(
    tmp_path: Path, start: Start
) -> None:
    pod_dir = build_v2(
        tmp_path, REL, containers={NAMES["a"]: True, NAMES["p"]: True, NAMES["s"]: True}
    )
    proc = fake_proc(tmp_path, NAMES["s"])
    mon = start(mon_env(tmp_path, OPTUNE_PROC_ROOT=str(proc), OPTUNE_STATS_URL=closed_port_url()))
    assert mon.waiting.wait(HANG_GUARD_S), mon.lines
    time.sleep(0.3)  # several polls see the app running
    (pod_dir / NAMES["a"] / "cgroup.events").write_text("populated 0\n")
    assert mon.proc.wait(timeout=HANG_GUARD_S) == 0, mon.lines
    assert _stats(tmp_path)["cue"] == "siblings-exited"
    assert any(e["msg"] == "stats POST gave up" for e in mon.log())


def test_servo_that_never_answers_cannot_keep_it_alive(tmp_path: Path, start: Start) -> None:
    build_v2(tmp_path, "kubepods")
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        env = mon_env(tmp_path, OPTUNE_STATS_URL=url, OPTUNE_POST_TIMEOUT="0.2")
        mon = start(env)
        assert mon.proc.wait(timeout=HANG_GUARD_S) == 0, mon.lines
    assert _stats(tmp_path)["cue"] == "deadline"
    assert any("stats POST" in str(e["msg"]) for e in mon.log())


def test_native_style_waits_for_sigterm_even_without_its_cgroup(
    tmp_path: Path, start: Start
) -> None:
    build_v2(tmp_path, "kubepods")
    mon = start(mon_env(tmp_path, OPTUNE_SIDECAR_STYLE="native"))
    assert mon.waiting.wait(HANG_GUARD_S), mon.lines
    time.sleep(0.3)
    assert mon.proc.poll() is None, "a native sidecar leaving early would be restarted"
    mon.proc.send_signal(signal.SIGTERM)
    assert mon.proc.wait(timeout=HANG_GUARD_S) == 0, mon.lines
    stats = _stats(tmp_path)
    assert stats["cue"] == "SIGTERM" and "pod cgroup not found" in str(stats["missing"])


def test_cri_o_conmon_scopes_do_not_keep_it_waiting(tmp_path: Path, start: Start) -> None:
    # CRI-O runs one conmon per container in `crio-conmon-<id>.scope` beside the containers:
    # the monitor's own lives as long as the monitor does.
    crio = {k: container_dir_name("crio", v) for k, v in (("a", APP), ("p", PAUSE), ("s", SELF))}
    conmon = {k: f"crio-conmon-{v}.scope" for k, v in (("a", APP), ("s", SELF))}
    pod_dir = build_v2(
        tmp_path,
        REL,
        containers={**dict.fromkeys(crio.values(), True), **dict.fromkeys(conmon.values(), True)},
    )
    mon = start(
        mon_env(
            tmp_path,
            OPTUNE_PROC_ROOT=str(fake_proc(tmp_path, crio["s"])),
            OPTUNE_UNSEEN_WAIT="3600",
        )
    )
    assert mon.waiting.wait(HANG_GUARD_S), mon.lines
    time.sleep(0.3)
    assert mon.proc.poll() is None, "left while the app container still ran"
    for name in (crio["a"], conmon["a"]):
        (pod_dir / name / "cgroup.events").write_text("populated 0\n")
    assert mon.proc.wait(timeout=HANG_GUARD_S) == 0, mon.lines
    assert _stats(tmp_path)["cue"] == "siblings-exited"
