"""Test pods built from the realistic fixture (tests/support/data/job-pod-no-managedfields.json),
and reading a pod or an outbox the way the product does."""

from __future__ import annotations

import copy
import json
import math
import uuid
from pathlib import Path
from typing import Any

from servo.core.podstructs import Pod
from servo.core.podwire import decode_event
from servo.report.outbox import Outbox

DATA = Path(__file__).parent / "data"


def decode_pod(raw: bytes) -> Pod:
    """One pod's JSON -> its Struct, the way a watch line carrying it is decoded."""
    pod = decode_event(b'{"type": "ADDED", "object": ' + raw + b"}").pod
    assert pod is not None, raw[:80]
    return pod


def pending_ids(box: Outbox) -> set[str]:
    """The ids of the events an outbox still holds: every one was put before the end of time."""
    return {p.event.id for p in box.older_than(math.inf, limit=box.depth() + 1)}


_FIXTURE: dict[str, Any] = json.loads((DATA / "job-pod-no-managedfields.json").read_text())


def fixture_pod() -> dict[str, Any]:
    """The fixture as the API returned it: a finished Job pod (job container terminated)."""
    return copy.deepcopy(_FIXTURE)


def job_pod(
    name: str = "job-1",
    *,
    namespace: str = "default",
    jobid: str | None = "JOB-1",
    uid: str | None = None,
) -> dict[str, Any]:
    """A fresh job pod (Pending, no status) modelled on the fixture; jobid None = not a job."""
    pod = fixture_pod()
    meta = pod["metadata"]
    meta.update(name=name, namespace=namespace, uid=uid or str(uuid.uuid4()))
    for key in ("resourceVersion", "creationTimestamp", "generateName"):
        meta.pop(key, None)
    env = pod["spec"]["containers"][0]["env"]
    env[:] = [e for e in env if e["name"] != "JOBID"]
    if jobid is not None:
        env.insert(0, {"name": "JOBID", "value": jobid})
    pod["status"] = {"phase": "Pending", "qosClass": "Burstable"}
    return pod


def set_running(pod: dict[str, Any], *, started: str = "2024-05-14T09:12:09Z") -> None:
    pod["status"] = {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "job",
                "state": {"running": {"startedAt": started}},
                "ready": True,
                "restartCount": 0,
            },
            {
                "name": "monitor",
                "state": {"running": {"startedAt": started}},
                "ready": True,
                "restartCount": 0,
            },
        ],
    }


def set_terminated(
    pod: dict[str, Any],
    *,
    started: str = "2024-05-14T09:12:09Z",
    finished: str = "2024-05-14T10:47:31Z",
    exit_code: int = 0,
    reason: str = "Completed",
    phase: str = "Running",
) -> None:
    pod["status"] = {
        "phase": phase,
        "containerStatuses": [
            {
                "name": "monitor",
                "state": {"running": {"startedAt": started}},
                "ready": True,
                "restartCount": 0,
            },
            {
                "name": "job",
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": reason,
                        "startedAt": started,
                        "finishedAt": finished,
                    }
                },
                "ready": False,
                "restartCount": 0,
            },
        ],
    }
