from __future__ import annotations

import json
from typing import Any

import pytest

from servo.appid import parse_app_id_query
from servo.pods import facts_from_pod
from servo.podwire import (
    DecodeError,
    decode_event,
    decode_pod_generic,
    decode_pod_list,
    decode_pod_typed,
    decoder_for,
    typed_covers,
)
from tests.helpers import DATA, fixture_pod, job_pod, set_running, set_terminated

FULL = (DATA / "job-pod.json").read_bytes()  # with managedFields, as the API sends it


@pytest.mark.parametrize(
    ("path", "typed"),
    [
        ("spec/containers/0/env/[JOBID]", True),
        ("spec/containers/1/env/[APP,name,value]", True),
        ("spec/initContainers/0/image", True),
        ("metadata/labels/jobid", True),
        ("metadata/annotations/app-id", True),
        ("metadata/ownerReferences/0/name", False),
        ("spec/affinity/nodeAffinity", False),
        ("status/phase", False),
        ("spec/containers/x/env", False),
    ],
)
def test_typed_decode_only_when_it_keeps_what_the_query_visits(path: str, typed: bool) -> None:
    query = parse_app_id_query(path)
    assert typed_covers(query) is typed
    assert decoder_for(query) is (decode_pod_typed if typed else decode_pod_generic)


def test_typed_pod_is_small_and_gives_the_same_facts() -> None:
    typed, full = decode_pod_typed(FULL), json.loads(FULL)
    assert "managedFields" not in typed["metadata"] and "volumes" not in typed["spec"]
    assert len(json.dumps(typed)) < len(FULL) / 3
    query = parse_app_id_query("spec/containers/0/env/[JOBID]")
    assert facts_from_pod(typed, query) == facts_from_pod(full, query)


def pods() -> list[dict[str, Any]]:
    running, done, native = job_pod("r"), job_pod("d"), job_pod("n")
    set_running(running)
    set_terminated(done, exit_code=3, reason="Error")
    done["status"]["podIP"] = "10.0.0.7"
    done["metadata"].update(deletionTimestamp="2024-05-14T10:50:00Z",
                            finalizers=["servo.optune.io/measure"],
                            annotations={"done-at": "1715683000"})  # fmt: skip
    native["spec"]["initContainers"] = [{"name": "servo-monitor", "image": "m", "restartPolicy":
        "Always", "env": [{"name": "OPTUNE_STATS_TOKEN", "value": "t"}]}]  # fmt: skip
    native["status"]["initContainerStatuses"] = [{"name": "servo-monitor", "state": {
        "terminated": {"exitCode": 0, "message": "{}"}}}]  # fmt: skip
    return [fixture_pod(), running, done, native]


@pytest.mark.parametrize("pod", pods(), ids=["fixture", "running", "terminated", "monitor"])
def test_facts_are_the_same_through_either_decoder(pod: dict[str, Any]) -> None:
    raw = json.dumps(pod).encode()
    query = parse_app_id_query("spec/containers/0/env/[JOBID]")
    assert facts_from_pod(decode_pod_typed(raw), query) == facts_from_pod(pod, query)


def test_watch_events_bookmarks_and_errors() -> None:
    line = json.dumps({"type": "MODIFIED", "object": json.loads(FULL)}).encode()
    event = decode_event(line, decode_pod_typed)
    assert event["type"] == "MODIFIED" and event["object"]["metadata"]["name"]
    bookmark = decode_event(b'{"type":"BOOKMARK","object":{"kind":"Pod","metadata":'
                            b'{"resourceVersion":"42"}}}', decode_pod_typed)  # fmt: skip
    assert bookmark["object"]["metadata"]["resourceVersion"] == "42"
    error = decode_event(b'{"type":"ERROR","object":{"kind":"Status","code":410,'
                         b'"message":"too old"}}', decode_pod_typed)  # fmt: skip
    assert error["object"]["code"] == 410


def test_a_field_of_the_wrong_type_falls_back_to_the_generic_decode() -> None:
    pod = job_pod("odd")
    pod["metadata"]["labels"] = {"a": 1}  # not a string: the typed decode refuses it
    event = decode_event(json.dumps({"type": "ADDED", "object": pod}).encode(), decode_pod_typed)
    assert event["object"]["metadata"]["labels"] == {"a": 1}


@pytest.mark.parametrize("line", [b"not json", b"[1]", b'{"type": 3}'])
def test_bad_lines_raise(line: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_event(line, decode_pod_typed)


def test_pod_list() -> None:
    body = json.dumps({"kind": "PodList", "metadata": {"resourceVersion": "9", "continue": "c1"},
                       "items": [json.loads(FULL)]}).encode()  # fmt: skip
    items, rv, token = decode_pod_list(body, decode_pod_typed)
    assert (rv, token, len(items)) == ("9", "c1", 1) and "managedFields" not in items[0]
    assert decode_pod_list(b'{"items": []}', decode_pod_typed) == ([], "", None)
    with pytest.raises(DecodeError):
        decode_pod_list(b"<html>", decode_pod_typed)
