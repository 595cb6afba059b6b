from __future__ import annotations

import json
from typing import Any

import pytest
from msgspec.structs import replace

from servo.core.appid import parse_app_id_query
from servo.core.models import ContainerState, PodFacts
from servo.core.pod_measurement import (
    NEVER_RAN_MESSAGE,
    is_finished,
    measurement_from_facts,
    measurement_on_delete,
    never_started,
)
from servo.core.pods import facts_from_pod
from tests.support.helpers import fixture_pod, job_pod, set_running, set_terminated

QUERY = parse_app_id_query("spec/containers/0/env/[JOBID]")


def facts(pod: dict[str, Any]) -> PodFacts:
    found = facts_from_pod(pod, QUERY)
    assert found.facts is not None, found.why
    return found.facts


def test_fixture_pod_gives_the_full_measurement() -> None:
    pod = fixture_pod()
    pod["metadata"]["annotations"]["done-at"] = "1715683323"  # creation + 5400 s
    f = facts(pod)
    assert (f.app_id, f.container, f.state) == ("JOB-1000000", "job", ContainerState.TERMINATED)
    assert is_finished(f)
    m = measurement_from_facts(f)
    param = m.to_param()
    assert param["metrics"]["duration"] == {"value": 5722, "unit": "s"}
    assert param["metrics"]["perf"]["unit"] == "1/s"
    assert param["metrics"]["perf"]["value"] == pytest.approx(1 / 5722)
    assert param["metrics"]["est_duration"] == {"value": 5400, "unit": "s"}
    ann = param["annotations"]
    assert ann["exitcode"] == "0" and ann["reason"] == "Completed"
    assert json.loads(ann["resources"]) == pod["spec"]["containers"][0]["resources"]
    assert ann["namespace"] == "team-ml" and ann["pod"] == "train-job-000000-b35b8"
    assert ann["uid"] == "323cd7cf-bd61-6295-3ec2-8ea418ec7bf4"
    assert ann["node"] == "worker-gpu-00"
    assert all(isinstance(v, str) for v in ann.values())
    json.dumps(param)  # serialisable as is


def test_zero_duration_omits_perf_and_says_why() -> None:
    pod = job_pod()
    set_terminated(pod, started="2024-05-14T09:12:09Z", finished="2024-05-14T09:12:09Z")
    param = measurement_from_facts(facts(pod)).to_param()
    assert param["metrics"]["duration"]["value"] == 0
    assert "perf" not in param["metrics"]
    assert "one-second resolution" in param["annotations"]["perf"]


@pytest.mark.parametrize(
    ("done_at", "expected", "note"),
    [(None, None, False), ("soon", None, True), (" 1715677933 ", 10, False)],
)
def test_est_duration_from_done_at(done_at: str | None, expected: int | None, note: bool) -> None:
    pod = fixture_pod()
    if done_at is not None:
        pod["metadata"]["annotations"]["done-at"] = done_at
    param = measurement_from_facts(facts(pod)).to_param()
    assert param["metrics"].get("est_duration", {}).get("value") == expected
    assert ("est_duration" in param["annotations"]) is note


def test_job_container_found_by_name_not_by_position() -> None:
    pod = job_pod()
    set_terminated(pod, exit_code=3, reason="Error")  # puts "monitor" first in statuses
    f = facts(pod)
    assert (f.container, f.exit_code, f.term_reason) == ("job", 3, "Error")


def test_second_container_is_the_job_when_the_path_says_so() -> None:
    pod = fixture_pod()
    found = facts_from_pod(pod, parse_app_id_query("spec/containers/1/env/[JOBID]"))
    assert found.facts is not None
    assert found.facts.container == "monitor" and found.facts.state is ContainerState.RUNNING


def test_not_a_job_says_why() -> None:
    found = facts_from_pod(job_pod(jobid=None), QUERY)
    assert found.facts is None and "JOBID" in found.why


@pytest.mark.parametrize(
    "pod",
    [
        {},
        {"metadata": None},
        {"metadata": {"uid": "u", "name": "n"}, "spec": "broken"},
        {
            "metadata": {"uid": "u", "name": "n"},
            "spec": {"containers": [{"name": "c", "env": [{"name": "JOBID", "value": "x"}]}]},
            "status": {"containerStatuses": "nope"},
        },
        {
            "metadata": {"uid": "u", "name": "n", "creationTimestamp": "yesterday"},
            "spec": {"containers": [{"name": "c", "env": [{"name": "JOBID", "value": "x"}]}]},
            "status": {
                "containerStatuses": [
                    {
                        "name": "c",
                        "state": {
                            "terminated": {
                                "exitCode": "zero",
                                "startedAt": 5,
                                "finishedAt": "garbage",
                            }
                        },
                    }
                ]
            },
        },
    ],
)
def test_partial_and_broken_pods_never_raise(pod: dict[str, Any]) -> None:
    found = facts_from_pod(pod, QUERY)
    if found.facts is not None:
        m = measurement_on_delete(found.facts)
        json.dumps(m.to_param())


def _f(**kw: Any) -> PodFacts:
    base = PodFacts(uid="u", namespace="ns", name="n", app_id="a", restart_policy="Never")
    return replace(base, **kw)


T, R, W, U = (
    ContainerState.TERMINATED,
    ContainerState.RUNNING,
    ContainerState.WAITING,
    ContainerState.UNKNOWN,
)


@pytest.mark.parametrize(
    ("kw", "finished"),
    [
        ({"state": T, "exit_code": 0}, True),
        ({"state": T, "exit_code": 1}, True),  # restartPolicy Never: final
        ({"state": T, "exit_code": 1, "restart_policy": "OnFailure", "phase": "Running"}, False),
        ({"state": T, "exit_code": 1, "restart_policy": "OnFailure", "phase": "Failed"}, True),
        ({"state": T, "exit_code": 1, "restart_policy": "OnFailure", "deleting": True}, True),
        ({"state": T, "exit_code": 0, "restart_policy": "OnFailure"}, True),
        ({"state": R}, False),
        ({"state": W}, False),
        ({"state": U, "phase": "Succeeded"}, False),
    ],
)
def test_is_finished_table(kw: dict[str, Any], finished: bool) -> None:
    assert is_finished(_f(**kw)) is finished


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"phase": "Failed", "state": U}, True),
        ({"phase": "Failed", "state": W}, True),
        ({"phase": "Failed", "state": T, "started_s": None}, True),
        ({"phase": "Failed", "state": T, "started_s": 5.0}, False),
        ({"phase": "Failed", "state": R}, False),
        ({"phase": "Pending", "state": U}, False),
    ],
)
def test_never_started_table(kw: dict[str, Any], expected: bool) -> None:
    assert never_started(_f(**kw)) is expected


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"state": U}, NEVER_RAN_MESSAGE),
        ({"state": W}, NEVER_RAN_MESSAGE),
        ({"state": R, "started_s": 1.0}, "job deleted before it finished"),
        ({"state": T, "started_s": 1.0, "finished_s": 3.0, "exit_code": 137}, None),
        ({"state": W, "started_s": 1.0, "finished_s": 3.0, "exit_code": 1}, None),  # back-off
    ],
)
def test_measurement_on_delete(kw: dict[str, Any], message: str | None) -> None:
    m = measurement_on_delete(_f(**kw))
    assert m.failure == message
    if message is not None:
        assert m.to_param()["status"] == "failed" and m.to_param()["message"] == message
    else:
        assert m.to_param()["metrics"]["duration"]["value"] == 2


def test_start_error_zero_time_counts_as_never_started() -> None:
    pod = job_pod()
    set_terminated(
        pod,
        started="1970-01-01T00:00:00Z",
        finished="1970-01-01T00:00:00Z",
        exit_code=128,
        reason="StartError",
        phase="Failed",
    )
    m = measurement_from_facts(facts(pod))
    assert m.failure == NEVER_RAN_MESSAGE and m.annotations["reason"] == "StartError"


def test_running_pod_is_not_finished() -> None:
    pod = job_pod()
    set_running(pod)
    assert not is_finished(facts(pod))


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2024-05-14T09:12:03Z", 1715677923.0),
        ("2024-05-14T09:12:03.250000Z", 1715677923.25),
        ("2024-05-14T11:12:03+02:00", 1715677923.0),
        ("1970-01-01T00:00:00Z", None),
        ("", None),
        ("not a time", None),
        (None, None),
        (12, None),
    ],
)
def test_api_times_become_epoch_seconds(text: Any, epoch: float | None) -> None:
    # Malformed or mistyped times cost that field only: the rest of the pod is still read.
    pod = job_pod("t")
    set_terminated(pod, exit_code=0)
    pod["status"]["containerStatuses"][1]["state"]["terminated"]["startedAt"] = text
    f = facts(pod)
    assert (f.started_s, f.exit_code, f.app_id) == (epoch, 0, "JOB-1")
