"""Noticing that the other containers exited: the pure decision and fixture cgroup trees."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from mon.cgroup_paths import find_pod_cgroup
from mon.cue import CONFIRM_POLLS, CgroupSiblings, SiblingState, wait_for_cue
from tests.support.cgtree import POD_PATHS, POD_UID, build_v1, build_v2, cid, container_dir_name

APP, PAUSE, SELF = cid("app"), cid("pause"), cid("monitor")


@pytest.mark.parametrize(
    ("polls", "done_at"),
    [
        ([{}, {}, {}], None),  # nothing ever ran (native sidecar before the main containers)
        ([{"a": True}, {"a": False}, {"a": False}], 2),
        ([{"a": True}, {}, {}], 2),  # vanished counts as exited
        ([{"a": True}, {"a": False}, {"a": True}, {"a": False}, {"a": False}], 4),
        ([{"a": True, "b": False}, {"a": False, "b": False}, {"a": False, "b": True}], None),
    ],
)
def test_sibling_state_needs_running_then_confirmed_quiet(
    polls: list[dict[str, bool]], done_at: int | None
) -> None:
    assert CONFIRM_POLLS == 2
    state = SiblingState()
    results = [state.update(p) for p in polls]
    first_done = results.index(True) if True in results else None
    assert first_done == done_at


@pytest.mark.parametrize("runtime", ["containerd", "crio", "docker"])
def test_v2_siblings_exclude_self_and_sandbox(tmp_path: Path, runtime: str) -> None:
    names = {k: container_dir_name(runtime, v) for k, v in (("app", APP), ("pause", PAUSE))}
    names["self"] = container_dir_name(runtime, SELF)
    build_v2(
        tmp_path,
        POD_PATHS[("systemd", "burstable")],
        containers={names["app"]: True, names["pause"]: True, names["self"]: True},
    )
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID)
    siblings = CgroupSiblings(pod, own_names={names["self"]}, sandbox_ids={PAUSE}, own_pid=1)
    assert siblings.running() == {names["app"]: True}
    (pod.path / names["app"] / "cgroup.events").write_text("populated 0\nfrozen 0\n")
    assert siblings.running() == {names["app"]: False}


def test_v2_own_container_found_by_own_pid_in_cgroup_procs(tmp_path: Path) -> None:
    # With a private cgroup namespace /proc/self/cgroup says "0::/"; cgroup.procs still works.
    pod_dir = build_v2(
        tmp_path, POD_PATHS[("cgroupfs", "guaranteed")], containers={APP: True, SELF: True}
    )
    (pod_dir / SELF / "cgroup.procs").write_text(f"{os.getpid()}\n")
    (pod_dir / APP / "cgroup.procs").write_text("0\n0\n")
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID)
    siblings = CgroupSiblings(pod, own_names=set(), sandbox_ids=set(), own_pid=os.getpid())
    assert siblings.running() == {APP: True}


def test_v2_half_written_events_count_as_running(tmp_path: Path) -> None:
    pod_dir = build_v2(tmp_path, POD_PATHS[("cgroupfs", "burstable")], containers={APP: True})
    (pod_dir / APP / "cgroup.events").write_text("popul")
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID)
    assert CgroupSiblings(pod, own_names=set(), sandbox_ids=set(), own_pid=1).running() == {
        APP: True
    }


def test_v1_uses_pids_current_and_vanished_dirs(tmp_path: Path) -> None:
    dirs = build_v1(
        tmp_path, POD_PATHS[("cgroupfs", "besteffort")], containers={APP: 2, PAUSE: 1, SELF: 1}
    )
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID)
    siblings = CgroupSiblings(pod, own_names={SELF}, sandbox_ids={PAUSE}, own_pid=1)
    assert siblings.running() == {APP: True}
    (dirs["pids"] / APP / "pids.current").write_text("0\n")
    assert siblings.running() == {APP: False}
    for d in dirs.values():
        for f in (d / APP).iterdir():
            f.unlink()
        (d / APP).rmdir()
    assert siblings.running() == {}


def test_v1_without_pids_controller_only_a_removed_dir_is_an_exit(tmp_path: Path) -> None:
    dirs = build_v1(tmp_path, POD_PATHS[("cgroupfs", "burstable")], containers={APP: 0}, pids=False)
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID)
    siblings = CgroupSiblings(pod, own_names=set(), sandbox_ids=set(), own_pid=1)
    # Empty cgroup.procs proves nothing on v1: pids of other pid namespaces are hidden.
    assert siblings.running() == {APP: True}
    (dirs["memory"] / APP / "cgroup.procs").unlink()
    (dirs["memory"] / APP).rmdir()
    assert siblings.running() == {}


class Scripted:
    """A sibling watch that answers from a script (a callable per poll)."""

    def __init__(self, poll: Callable[[], Mapping[str, bool]], tolerated: int = 0) -> None:
        self.poll = poll
        self._tolerated = tolerated

    def running(self) -> Mapping[str, bool]:
        return self.poll()

    def tolerated(self) -> int:
        return self._tolerated


def test_wait_for_cue_returns_on_stop_at_once() -> None:
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    cue = wait_for_cue(stop=stop, poll_interval_s=30.0, siblings=Scripted(lambda: {"a": True}))
    assert cue == "SIGTERM"
    assert time.monotonic() - started < 1.0


def test_wait_for_cue_finishes_when_siblings_exit_and_samples_meanwhile() -> None:
    polls = iter([{"a": True}, {"a": True}, {"a": False}, {}, {}])
    samples: list[int] = []
    cue = wait_for_cue(
        stop=threading.Event(),
        poll_interval_s=0.001,
        siblings=Scripted(lambda: next(polls)),
        sample=lambda: samples.append(1),
    )
    assert cue == "siblings-exited"
    assert len(samples) == 4  # one per poll, the confirming one included


def test_wait_for_cue_survives_a_failing_poll() -> None:
    calls = {"n": 0}

    def flaky() -> dict[str, bool]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("boom")
        return {"a": True} if calls["n"] == 2 else {}

    cue = wait_for_cue(stop=threading.Event(), poll_interval_s=0.001, siblings=Scripted(flaky))
    assert cue == "siblings-exited"
    assert calls["n"] == 4


def test_an_unidentified_sandbox_is_tolerated_as_one_running_sibling() -> None:
    # pause + app running, then pause alone: done, though pause never exits.
    polls = iter([{"p": True, "a": True}, {"p": True, "a": False}, {"p": True}, {"p": True}])
    cue = wait_for_cue(
        stop=threading.Event(), poll_interval_s=0.001, siblings=Scripted(lambda: next(polls), 1)
    )
    assert cue == "siblings-exited"


def test_sandbox_alone_before_the_job_started_is_not_an_exit() -> None:
    state = SiblingState()
    assert not any(state.update({"p": True}, tolerated=1) for _ in range(5))
    assert not state.seen_running


def test_plain_style_gives_up_when_no_job_container_is_ever_seen() -> None:
    cue = wait_for_cue(
        stop=threading.Event(),
        poll_interval_s=0.01,
        siblings=Scripted(dict),
        unseen_give_up_s=0.05,
    )
    assert cue == "deadline"


def test_the_give_up_bound_does_not_apply_once_a_job_container_was_seen() -> None:
    stop = threading.Event()
    polls = iter([{"a": True}] * 20)

    def poll() -> Mapping[str, bool]:
        try:
            return next(polls)
        except StopIteration:
            stop.set()
            return {"a": True}

    cue = wait_for_cue(
        stop=stop, poll_interval_s=0.01, siblings=Scripted(poll), unseen_give_up_s=0.02
    )
    assert cue == "SIGTERM"


def test_sandbox_is_identified_and_then_not_tolerated(tmp_path: Path) -> None:
    build_v2(
        tmp_path,
        POD_PATHS[("cgroupfs", "burstable")],
        containers={APP: True, PAUSE: True, SELF: True},
    )
    pod = find_pod_cgroup(cgroup_root=tmp_path / "fs" / "cgroup", pod_uid=POD_UID)
    layout = CgroupSiblings(pod, own_names={SELF}, sandbox_ids={PAUSE}, own_pid=1)
    assert layout.tolerated() == 2  # nothing listed yet
    assert layout.by_role() == {"own": [SELF], "sandbox": [PAUSE], "job": [APP]}
    assert layout.tolerated() == 0
    unknown = CgroupSiblings(pod, own_names={SELF}, sandbox_ids={cid("other")}, own_pid=1)
    assert unknown.running() == {APP: True, PAUSE: True}
    assert unknown.tolerated() == 1
    lost = CgroupSiblings(pod, own_names=set(), sandbox_ids={PAUSE}, own_pid=1)
    assert lost.running() == {APP: True, SELF: True}
    assert lost.tolerated() == 1  # its own cgroup, unidentified, never exits before it does


def test_shared_namespace_watch_lists_proc_without_psutil(tmp_path: Path) -> None:
    from mon.cue import SharedNamespaceProcesses

    for name in ("1", "42", "77", "self", "sys"):
        (tmp_path / name).mkdir()
    watch = SharedNamespaceProcesses(own_pid=42, proc_root=tmp_path)
    assert watch.running() == {"pid 77": True} and watch.tolerated() == 0
    (tmp_path / "77").rmdir()
    assert watch.running() == {}
    assert SharedNamespaceProcesses(own_pid=1, proc_root=tmp_path / "gone").running() == {
        "unknown": True
    }
