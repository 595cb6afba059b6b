"""Table tests of the emulator's pure parts: selectors, patches, pod semantics, Status bodies."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.fakes.kubelogic import (
    PATCHERS,
    ApiError,
    as_seen,
    check_spec_update,
    json_patch,
    merge_patch,
    qos_class,
    restrict,
    status_body,
    strategic_merge_patch,
    validate_new_pod,
)
from tests.support.fakes.kubeselect import field_matcher, label_matcher


def labelled(**labels: str) -> dict[str, Any]:
    return {"metadata": {"name": "p", "labels": labels}}


LABELS = [
    ("", {}, True),
    ("a=1", {"a": "1"}, True),
    ("a=1", {"a": "2"}, False),
    ("a=1", {}, False),
    ("a==1", {"a": "1"}, True),
    ("a!=1", {"a": "2"}, True),
    ("a!=1", {}, True),
    ("a!=1", {"a": "1"}, False),
    ("a in (1,2)", {"a": "2"}, True),
    ("a in (1, 2)", {"a": "3"}, False),
    ("a in (1,2)", {}, False),
    ("a notin (1,2)", {"a": "3"}, True),
    ("a notin (1,2)", {}, True),
    ("a notin (1,2)", {"a": "1"}, False),
    ("a", {"a": ""}, True),
    ("a", {"b": "1"}, False),
    ("!a", {"b": "1"}, True),
    ("!a", {"a": "1"}, False),
    ("a=1,b in (x,y),!c", {"a": "1", "b": "y"}, True),
    ("a=1,b in (x,y),!c", {"a": "1", "b": "y", "c": "1"}, False),
    ("example.com/role=db", {"example.com/role": "db"}, True),
    (" a = 1 ", {"a": "1"}, True),
    ("a=", {"a": ""}, True),
    ("a=", {}, False),
    ("n>5", {"n": "6"}, True),
    ("n>5", {"n": "5"}, False),
    ("n<5", {"n": "x"}, False),
    ("n<5", {}, False),
]


@pytest.mark.parametrize(("selector", "labels", "matches"), LABELS)
def test_label_matcher(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert label_matcher(selector)(labelled(**labels)) is matches


@pytest.mark.parametrize(
    "selector", ["a in ()", "a=1=2", "!a=1", "a b", "a in (1", "n>x", "=1", "a!!=1"]
)
def test_malformed_label_selector(selector: str) -> None:
    with pytest.raises(ApiError) as info:
        label_matcher(selector)
    assert info.value.code == 400 and info.value.reason == "BadRequest"


POD = {
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {"nodeName": "n1", "restartPolicy": "Never", "hostNetwork": True},
    "status": {"phase": "Running", "podIP": "10.0.0.1"},
}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("metadata.name=p", True),
        ("metadata.name==q", False),
        ("metadata.name!=q", True),
        ("metadata.namespace=ns,status.phase=Running", True),
        ("metadata.namespace=ns,status.phase=Failed", False),
        ("spec.nodeName=n1", True),
        ("spec.nodeName=", False),
        ("spec.restartPolicy=Never", True),
        ("spec.hostNetwork=true", True),
        ("status.podIP=10.0.0.1", True),
        ("status.nominatedNodeName=", True),
        ("", True),
    ],
)
def test_field_matcher(selector: str, matches: bool) -> None:
    assert field_matcher(selector)(POD) is matches


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("spec.image=x", "field label not supported: spec.image"),
        ("metadata.labels=x", "field label not supported: metadata.labels"),
        ("status.phase", "invalid selector: 'status.phase'"),
    ],
)
def test_bad_field_selector(selector: str, message: str) -> None:
    with pytest.raises(ApiError) as info:
        field_matcher(selector)
    assert (info.value.code, info.value.message) == (400, message)


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ({"a": 1, "b": 2}, {"b": None}, {"a": 1}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"y": None, "z": 3}}, {"a": {"x": 1, "z": 3}}),
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
        ({"a": 1}, {"a": {"b": 1}}, {"a": {"b": 1}}),
        ({"a": {"b": 1}}, {"a": 5}, {"a": 5}),
        ({"a": 1}, {"missing": None}, {"a": 1}),
        ({"a": 1}, [1], [1]),
    ],
)
def test_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    before = repr(target)
    assert merge_patch(target, patch) == expected
    assert repr(target) == before, "the target is not mutated"


C1 = {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]}
C2 = {"name": "b", "image": "b:1"}


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        # Containers merge by name; fields inside merge too.
        (
            {"containers": [C1, C2]},
            {"containers": [{"name": "b", "image": "b:2"}]},
            {"containers": [C1, {"name": "b", "image": "b:2"}]},
        ),
        (
            {"containers": [C1]},
            {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}]},
            {
                "containers": [
                    {
                        "name": "a",
                        "image": "a:1",
                        "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                    }
                ]
            },
        ),
        # New keys are appended; `$patch: delete` removes by key.
        ({"containers": [C1]}, {"containers": [C2]}, {"containers": [C1, C2]}),
        (
            {"containers": [C1, C2]},
            {"containers": [{"name": "a", "$patch": "delete"}]},
            {"containers": [C2]},
        ),
        (
            {"containers": [C1]},
            {"containers": [{"name": "zz", "$patch": "delete"}]},
            {"containers": [C1]},
        ),
        # Finalizers are a union; `$deleteFromPrimitiveList` removes.
        ({"finalizers": ["x"]}, {"finalizers": ["y", "x"]}, {"finalizers": ["x", "y"]}),
        (
            {"finalizers": ["x", "y"]},
            {"$deleteFromPrimitiveList/finalizers": ["x"]},
            {"finalizers": ["y"]},
        ),
        # Lists without a merge key are replaced, as the server does.
        (
            {"tolerations": [{"key": "a"}]},
            {"tolerations": [{"key": "b"}]},
            {"tolerations": [{"key": "b"}]},
        ),
        (
            {"containerStatuses": [{"name": "a", "ready": True}]},
            {"containerStatuses": [{"name": "b", "ready": False}]},
            {"containerStatuses": [{"name": "b", "ready": False}]},
        ),
        (
            {"conditions": [{"type": "Ready", "status": "False"}]},
            {"conditions": [{"type": "Ready", "status": "True"}]},
            {"conditions": [{"type": "Ready", "status": "True"}]},
        ),
        # Maps: null deletes a key, `$patch: replace` replaces, `$patch: delete` removes.
        ({"labels": {"a": "1", "b": "2"}}, {"labels": {"a": None}}, {"labels": {"b": "2"}}),
        (
            {"labels": {"a": "1"}},
            {"labels": {"$patch": "replace", "c": "3"}},
            {"labels": {"c": "3"}},
        ),
        ({"labels": {"a": "1"}, "x": 1}, {"labels": {"$patch": "delete"}}, {"x": 1}),
        # Directives the client adds are ignored.
        (
            {"containers": [C1, C2]},
            {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]},
            {"containers": [C1, C2]},
        ),
    ],
)
def test_strategic_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    assert strategic_merge_patch(target, patch) == expected


def test_strategic_merge_patch_needs_merge_keys() -> None:
    with pytest.raises(ApiError) as info:
        strategic_merge_patch({"containers": []}, {"containers": [{"image": "x"}]})
    assert info.value.code == 400


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([{"op": "add", "path": "/b", "value": 2}], {"a": {"x": 1}, "b": 2}),
        ([{"op": "remove", "path": "/a/x"}], {"a": {}}),
        ([{"op": "replace", "path": "/a/x", "value": 5}], {"a": {"x": 5}}),
        ([{"op": "test", "path": "/a/x", "value": 1}], {"a": {"x": 1}}),
        ([{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"x": 1}, "c": {"x": 1}}),
        ([{"op": "move", "from": "/a", "path": "/c"}], {"c": {"x": 1}}),
        ([], {"a": {"x": 1}}),
    ],
)
def test_json_patch(ops: Any, expected: Any) -> None:
    assert json_patch({"a": {"x": 1}}, ops) == expected


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ([{"op": "test", "path": "/a/x", "value": 2}], 422),
        ([{"op": "remove", "path": "/nope"}], 422),
        ([{"op": "replace", "path": "/nope/deeper", "value": 1}], 422),
        ({"op": "add", "path": "/b", "value": 1}, 400),
    ],
)
def test_json_patch_errors(ops: Any, code: int) -> None:
    with pytest.raises(ApiError) as info:
        json_patch({"a": {"x": 1}}, ops)
    assert info.value.code == code


def test_patchers_by_media_type() -> None:
    assert PATCHERS == {
        "application/merge-patch+json": merge_patch,
        "application/strategic-merge-patch+json": strategic_merge_patch,
        "application/json-patch+json": json_patch,
    }


def test_status_body() -> None:
    assert status_body(404, "NotFound", 'pods "x" not found') == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "x" not found',
        "reason": "NotFound",
        "code": 404,
    }


def _res(requests: dict[str, str] | None, limits: dict[str, str] | None) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    return {"name": "c", "image": "i", "resources": res}


FULL = {"cpu": "1", "memory": "1Gi"}


@pytest.mark.parametrize(
    ("containers", "qos"),
    [
        ([_res(None, None)], "BestEffort"),
        ([_res({"cpu": "1"}, None)], "Burstable"),
        ([_res(None, FULL)], "Guaranteed"),
        ([_res(FULL, FULL)], "Guaranteed"),
        ([_res({"cpu": "1", "memory": "512Mi"}, FULL)], "Burstable"),
        ([_res(None, FULL), _res(None, None)], "Burstable"),
        ([_res(None, {"cpu": "1"})], "Burstable"),
    ],
)
def test_qos_class(containers: list[dict[str, Any]], qos: str) -> None:
    assert qos_class({"spec": {"containers": containers}}) == qos


@pytest.mark.parametrize(
    ("pod", "field"),
    [
        ({"metadata": {"name": "Bad"}, "spec": {"containers": [C2]}}, "metadata.name"),
        ({"metadata": {"name": "a" * 254}, "spec": {"containers": [C2]}}, "metadata.name"),
        ({"metadata": {"name": "ok"}, "spec": {}}, "spec.containers"),
        ({"metadata": {"name": "ok"}, "spec": {"containers": [{"name": "c"}]}}, "image"),
    ],
)
def test_validate_new_pod(pod: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as info:
        validate_new_pod(pod)
    assert info.value.code == 422 and field in info.value.message
    validate_new_pod({"metadata": {"name": "a-b.c"}, "spec": {"containers": [C2]}})


def _spec(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": spec}


OLD_SPEC = {"containers": [{"name": "a", "image": "a:1"}], "tolerations": [{"key": "t"}]}


@pytest.mark.parametrize(
    ("new", "allowed"),
    [
        (OLD_SPEC, True),
        ({**OLD_SPEC, "containers": [{"name": "a", "image": "a:2"}]}, True),
        ({**OLD_SPEC, "activeDeadlineSeconds": 30}, True),
        ({**OLD_SPEC, "tolerations": [{"key": "t"}, {"key": "u"}]}, True),
        ({**OLD_SPEC, "tolerations": []}, False),
        ({**OLD_SPEC, "nodeName": "n1"}, False),
        ({**OLD_SPEC, "containers": [{"name": "b", "image": "a:1"}]}, False),
        ({**OLD_SPEC, "containers": []}, False),
    ],
)
def test_check_spec_update(new: dict[str, Any], allowed: bool) -> None:
    if allowed:
        check_spec_update(_spec(**OLD_SPEC), _spec(**new))
        return
    with pytest.raises(ApiError) as info:
        check_spec_update(_spec(**OLD_SPEC), _spec(**new))
    assert info.value.code == 422
    assert info.value.message.startswith('Pod "p" is invalid: spec: Forbidden: pod updates')


def test_restrict() -> None:
    old = {"metadata": {"labels": {"a": "1"}}, "status": {"phase": "Pending"}}
    new = {"metadata": {"labels": {"a": "2"}}, "status": {"phase": "Running"}}
    assert restrict(old, dict(new), "status") == {
        "metadata": {"labels": {"a": "1"}},
        "status": {"phase": "Running"},
    }
    assert restrict(old, dict(new), None) == {
        "metadata": {"labels": {"a": "2"}},
        "status": {"phase": "Pending"},
    }


def _pod(app: str, rv: str = "5") -> dict[str, Any]:
    return {"metadata": {"name": "p", "labels": {"app": app}, "resourceVersion": rv}}


WEB = label_matcher("app=web")


def _visible(p: Any) -> bool:
    return p is not None and WEB(p)


@pytest.mark.parametrize(
    ("type_", "obj", "old", "expected_type", "expected_app"),
    [
        ("ADDED", _pod("web"), None, "ADDED", "web"),
        ("ADDED", _pod("db"), None, None, None),
        ("MODIFIED", _pod("web"), _pod("web"), "MODIFIED", "web"),
        ("MODIFIED", _pod("web"), _pod("db"), "ADDED", "web"),
        ("MODIFIED", _pod("db"), _pod("web"), "DELETED", "web"),
        ("MODIFIED", _pod("db"), _pod("db"), None, None),
        ("DELETED", _pod("web"), _pod("web"), "DELETED", "web"),
        ("DELETED", _pod("db"), _pod("db"), None, None),
    ],
)
def test_as_seen(
    type_: str,
    obj: dict[str, Any],
    old: dict[str, Any] | None,
    expected_type: str | None,
    expected_app: str | None,
) -> None:
    got = as_seen(type_, obj, old, 9, _visible)
    if expected_type is None:
        assert got is None
        return
    assert got is not None and got["type"] == expected_type
    assert got["object"]["metadata"]["labels"]["app"] == expected_app
    if expected_type == "DELETED":
        assert got["object"]["metadata"]["resourceVersion"] == "9"
        assert old is not None and old["metadata"]["resourceVersion"] == "5", "not mutated"
