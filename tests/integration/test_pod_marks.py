"""The reported annotation lands on the pod the event names, through the API emulator."""

from __future__ import annotations

from servo.core.models import Event, PodRef
from servo.core.pods import REPORTED_ANNOTATION
from servo.kube.client import KubeClient
from servo.run.pod_marks import Marks, PodMarks
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.helpers import job_pod


def test_the_reported_annotation_goes_to_the_pod_the_event_carries() -> None:
    with KubeEmulator() as emu:
        created = emu.create_pod(job_pod("j1"))
        uid = created["metadata"]["uid"]
        marks = Marks(PodMarks(KubeClient(emu.api_client())))
        # The param carries no base annotations: the pod's identity rides on the event.
        event = Event(f"{uid}:MEASUREMENT", "MEASUREMENT", "A", {}, PodRef("default", "j1", uid))
        marks.mark_reported(event)
        pod = emu.get_pod("default", "j1")
        assert pod is not None
        assert pod["metadata"]["annotations"][REPORTED_ANNOTATION] == event.id


def test_a_refused_annotation_is_tried_again_until_it_lands() -> None:
    with KubeEmulator() as emu:
        created = emu.create_pod(job_pod("j2"))
        uid = created["metadata"]["uid"]
        marks = Marks(PodMarks(KubeClient(emu.api_client())))
        event = Event(f"{uid}:MEASUREMENT", "MEASUREMENT", "A", {}, PodRef("default", "j2", uid))
        emu.deny("patch", "default")
        marks.mark_reported(event)
        pod = emu.get_pod("default", "j2")
        assert pod is not None and REPORTED_ANNOTATION not in (
            pod["metadata"].get("annotations") or {}
        )
        emu.allow("patch", "default")
        marks.retry_refused()
        pod = emu.get_pod("default", "j2")
        assert pod is not None
        assert pod["metadata"]["annotations"][REPORTED_ANNOTATION] == event.id
