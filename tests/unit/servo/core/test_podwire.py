from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from servo.core.appid import parse_app_id_query
from servo.core.pods import facts_from_pod
from servo.core.podstructs import Pod, to_pod
from servo.core.podwire import DecodeError, decode_event, decode_pod_list, pod_key, typed_covers
from tests.support.helpers import (
    DATA,
    decode_pod,
    fixture_pod,
    job_pod,
    set_running,
    set_terminated,
)

FULL = (DATA / "job-pod.json").read_bytes()  # with managedFields, as the API sends it
QUERY = parse_app_id_query("spec/containers/0/env/[JOBID]")


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
    assert typed_covers(parse_app_id_query(path)) is typed


def test_typed_pod_is_small_and_gives_the_same_facts() -> None:
    typed, full = decode_pod(FULL), json.loads(FULL)
    assert len(msgspec.json.encode(typed)) < len(FULL) / 3  # managedFields, volumes... skipped
    assert typed.metadata is not None and typed.metadata.name == full["metadata"]["name"]
    assert facts_from_pod(typed, QUERY) == facts_from_pod(full, QUERY)


def pods() -> list[dict[str, Any]]:
    running, done, native = job_pod("r"), job_pod("d"), job_pod("n")
    set_running(running)
    set_terminated(done, exit_code=3, reason="Error")
    done["status"]["podIP"] = "10.0.0.7"
    done["metadata"].update(
        deletionTimestamp="2024-05-14T10:50:00Z",
        finalizers=["servo.optune.io/measure"],
        annotations={"done-at": "1715683000"},
    )
    native["spec"]["initContainers"] = [
        {
            "name": "servo-monitor",
            "image": "m",
            "restartPolicy": "Always",
            "env": [{"name": "OPTUNE_STATS_TOKEN", "value": "t"}],
        }
    ]
    native["status"]["initContainerStatuses"] = [
        {"name": "servo-monitor", "state": {"terminated": {"exitCode": 0, "message": "{}"}}}
    ]
    return [fixture_pod(), running, done, native]


@pytest.mark.parametrize("pod", pods(), ids=["fixture", "running", "terminated", "monitor"])
def test_facts_are_the_same_from_bytes_from_plain_json_and_with_the_whole_pod(
    pod: dict[str, Any],
) -> None:
    raw = json.dumps(pod).encode()
    line = b'{"type":"MODIFIED","object":%s}' % raw
    typed, whole = decode_event(line), decode_event(line, whole=True)
    assert typed.doc is None and whole.doc == pod
    expected = facts_from_pod(pod, QUERY)
    assert expected.facts is not None
    assert facts_from_pod(decode_pod(raw), QUERY) == expected
    assert typed.pod is not None and facts_from_pod(typed.pod, QUERY) == expected
    assert whole.pod is not None and facts_from_pod(whole.pod, QUERY, doc=whole.doc) == expected


def test_a_query_outside_the_typed_fields_is_followed_through_the_whole_pod() -> None:
    pod = job_pod("aff", jobid=None)
    pod["spec"]["affinity"] = {"nodeAffinity": {"team": "batch-7"}}
    line = json.dumps({"type": "ADDED", "object": pod}).encode()
    event = decode_event(line, whole=True)
    assert event.pod is not None
    query = parse_app_id_query("spec/affinity/nodeAffinity/team")
    assert facts_from_pod(event.pod, query, doc=event.doc).facts is not None
    # Without the whole pod the path finds nothing: that is why `whole` exists.
    assert facts_from_pod(event.pod, query).facts is None


def test_watch_events_bookmarks_and_errors() -> None:
    line = json.dumps({"type": "MODIFIED", "object": json.loads(FULL)}).encode()
    event = decode_event(line)
    assert event.type == "MODIFIED" and event.pod is not None and pod_key(event.pod) != "?"
    bookmark = decode_event(
        b'{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"42"}}}'
    )
    assert bookmark.pod is not None and bookmark.pod.metadata is not None
    assert bookmark.pod.metadata.resource_version == "42"
    error = decode_event(
        b'{"type":"ERROR","object":{"kind":"Status","code":410,'
        b'"message":"too old","status":"Failure"}}'
    )
    assert (error.type, error.pod, error.doc["code"]) == ("ERROR", None, 410)


def test_a_field_of_the_wrong_type_costs_that_field_only() -> None:
    pod = job_pod("odd")
    pod["metadata"]["labels"] = {"a": 1}  # not a string: the typed decode refuses it
    set_terminated(pod, exit_code=2)
    pod["status"]["containerStatuses"][1]["restartCount"] = "many"
    event = decode_event(json.dumps({"type": "ADDED", "object": pod}).encode())
    assert event.doc is not None and event.doc["metadata"]["labels"] == {"a": 1}
    assert event.pod is not None and event.pod.metadata is not None
    assert event.pod.metadata.labels is None and event.pod.metadata.name == "odd"
    found = facts_from_pod(event.pod, QUERY, doc=event.doc)
    assert found.facts is not None and found.facts.exit_code == 2
    # A path into the odd field still sees it, through the whole pod.
    label = facts_from_pod(event.pod, parse_app_id_query("metadata/labels/a"), doc=event.doc)
    assert label.facts is not None and label.facts.app_id == "1"


def test_to_pod_salvages_lists_of_structs_item_by_item() -> None:
    pod = to_pod(
        {
            "metadata": {"name": "p", "uid": "u", "finalizers": "not a list"},
            "spec": {"containers": [{"name": "job", "command": "ls"}, "junk", {"name": "side"}]},
        }
    )
    assert pod.metadata is not None and pod.metadata.finalizers is None
    assert pod.spec is not None and pod.spec.containers is not None
    assert [(c.name, c.command) for c in pod.spec.containers] == [("job", None), ("side", None)]
    assert to_pod({"metadata": [], "spec": 3}) == Pod()


@pytest.mark.parametrize("line", [b"not json", b"[1]", b'{"type": 3}'])
def test_bad_lines_raise(line: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_event(line)


def test_a_pod_event_without_a_pod_object_has_no_pod() -> None:
    assert decode_event(b'{"type":"ADDED","object":[1]}').pod is None
    assert decode_event(b'{"type":"ADDED"}').pod is None


def test_pod_list() -> None:
    body = json.dumps(
        {
            "kind": "PodList",
            "metadata": {"resourceVersion": "9", "continue": "c1"},
            "items": [json.loads(FULL)],
        }
    ).encode()
    items, rv, token = decode_pod_list(body)
    assert (rv, token, len(items)) == ("9", "c1", 1) and items[0].type == "ADDED"
    assert items[0].doc is None and items[0].pod is not None
    whole, _, _ = decode_pod_list(body, whole=True)
    assert whole[0].doc is not None and "managedFields" in whole[0].doc["metadata"]
    assert decode_pod_list(b'{"items": []}') == ([], "", None)
    with pytest.raises(DecodeError):
        decode_pod_list(b"<html>")


def test_a_pod_list_with_one_odd_item_keeps_every_item() -> None:
    odd = job_pod("odd")
    odd["metadata"]["labels"] = {"a": 1}
    body = json.dumps({"items": [job_pod("a"), odd, job_pod("b")]}).encode()
    items, _, _ = decode_pod_list(body)
    assert [pod_key(i.pod) for i in items] == ["default/a", "default/odd", "default/b"]
    assert [i.doc is not None for i in items] == [False, True, False]
