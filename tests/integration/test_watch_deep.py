"""A pod nested deeper than the decoder follows, served by the API emulator to the real watch
loop (official client): that pod is skipped with an ERROR naming it, in a watch event and in
a list alike, and the watch goes on with the next pod. An unexpected error in a call is logged
and retried, never the end of the watch thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from servo.kube.client import KubeClient
from servo.system.config_sections import WatchConfig
from servo.watch.loop import LISTED, PodWatch, WatchEvent
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.helpers import job_pod

MARK = b'"__too_deep__"'
DEEP = b"[" * 5000 + b"]" * 5000


def deep_pod(name: str) -> dict[str, object]:
    pod = job_pod(name, uid=f"uid-{name}")
    pod["spec"]["containers"][0]["deep"] = MARK.decode().strip('"')
    return pod


@pytest.fixture
def watch_of(emu: KubeEmulator) -> Iterator[object]:
    emu.wire_substitutions[MARK] = DEEP
    stop = threading.Event()

    def make(*, whole: bool) -> Iterator[WatchEvent]:
        kube = KubeClient(emu.api_client(), whole_pods=whole)
        cfg = WatchConfig(namespaces=("default",), timeout_s=60, idle_timeout_s=10)
        return PodWatch(kube, "default", cfg, stop).events()

    yield make
    stop.set()


def skipped(caplog: pytest.LogCaptureFixture, message: str) -> list[object]:
    return [
        getattr(r, "pod", None)
        for r in caplog.records
        if r.levelno == logging.ERROR and r.getMessage() == message
    ]


@pytest.mark.parametrize("whole", [False, True])
def test_a_watch_event_too_deep_is_skipped_and_the_watch_goes_on(
    emu: KubeEmulator, watch_of: object, caplog: pytest.LogCaptureFixture, whole: bool
) -> None:
    events = watch_of(whole=whole)  # type: ignore[operator]
    assert next(events).type == LISTED
    emu.create_pod(deep_pod("deep-1"))
    emu.create_pod(job_pod("after-1", uid="uid-after-1"))

    event = next(events)
    assert (event.type, event.pod.metadata.name) == ("ADDED", "after-1")
    assert skipped(caplog, "watch event skipped: nested too deeply to decode") == ["default/deep-1"]


@pytest.mark.parametrize("whole", [False, True])
def test_a_listed_pod_too_deep_is_skipped_and_the_rest_is_listed(
    emu: KubeEmulator, watch_of: object, caplog: pytest.LogCaptureFixture, whole: bool
) -> None:
    emu.create_pod(job_pod("before-1", uid="uid-before-1"))
    emu.create_pod(deep_pod("deep-2"))
    emu.create_pod(job_pod("before-2", uid="uid-before-2"))
    events = watch_of(whole=whole)  # type: ignore[operator]

    got = [next(events) for _ in range(3)]
    assert [e.pod.metadata.name for e in got[:2]] == ["before-1", "before-2"]
    assert got[2].type == LISTED and got[2].listed_uids == {"uid-before-1", "uid-before-2"}
    assert skipped(caplog, "listed pod skipped: nested too deeply to decode") == ["default/deep-2"]
    emu.create_pod(job_pod("after-2", uid="uid-after-2"))
    assert next(events).pod.metadata.name == "after-2"


class FailsOnce(KubeClient):
    """The real client, with a bug in its first list: the watch must survive it."""

    failed = False

    def list_pods(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a bug nobody expected")
        return super().list_pods(*args, **kwargs)


def test_an_unexpected_error_is_logged_and_the_watch_retries(
    emu: KubeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu.create_pod(job_pod("p-1", uid="uid-p-1"))
    stop = threading.Event()
    cfg = WatchConfig(namespaces=("default",), timeout_s=60, idle_timeout_s=10, max_backoff_s=0)
    events = PodWatch(FailsOnce(emu.api_client()), "default", cfg, stop).events()
    try:
        assert next(events).pod.metadata.name == "p-1"
    finally:
        stop.set()
    assert [r for r in caplog.records if r.getMessage() == "watch failed unexpectedly, will retry"]
