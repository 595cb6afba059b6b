from __future__ import annotations

from typing import Any

import pytest

from servo.core.appid import Lookup, parse_app_id_query, resolve_app_id
from tests.support.helpers import fixture_pod

POD = fixture_pod()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("spec/containers/0/env/[JOBID]", "JOB-1000000"),
        ("/spec/containers/0/env/[JOBID]/", "JOB-1000000"),
        ("spec//containers/0/env/[JOBID]", "JOB-1000000"),
        ("spec/containers/1/env/[JOBID]", "JOB-1000000"),
        ("spec/containers/0/env/[OMP_NUM_THREADS]", "4"),
        ("metadata/labels/jobid", "JOB-1000000"),
        ("spec/containers/[job]/image", None),  # [job] looks up name=job, yields its "value"
        ("spec/containers/[job,name,image]", "registry.example.com/ml/trainer:1.4.2"),
        ("status/containerStatuses/[job,name,restartCount]", "0"),
        ("spec/containers/0/env/[NOPE]", None),
        ("spec/containers/7/env/[JOBID]", None),
        ("spec/containers/x/env/[JOBID]", None),
        ("metadata/labels/missing", None),
        ("metadata/labels", None),  # a map is not an id
        ("metadata/name/deeper", None),
        ("spec/containers/0/env/[POD_NAME]", None),  # valueFrom, not value
        ("status/containerStatuses/0/ready", None),  # a bool is not an id
    ],
)
def test_resolve_app_id_table(path: str, expected: str | None) -> None:
    assert resolve_app_id(POD, parse_app_id_query(path)).value == expected


def test_value_from_entry_is_not_a_job_and_says_why() -> None:
    result = resolve_app_id(POD, parse_app_id_query("spec/containers/0/env/[POD_NAME]"))
    assert result.value is None
    assert "no 'value'" in result.why and "valueFrom" in result.why


@pytest.mark.parametrize(
    "obj", [None, 3, "text", [], {}, {"spec": None}, {"spec": {"containers": "x"}}]
)
def test_resolve_never_raises_on_odd_objects(obj: Any) -> None:
    assert resolve_app_id(obj, parse_app_id_query("spec/containers/0/env/[JOBID]")).value is None


def test_lookup_with_other_field_names() -> None:
    q = parse_app_id_query("a/[k1,key,val]")
    assert q.segments == ("a", Lookup("k1", "key", "val"))
    assert resolve_app_id({"a": [{"key": "k0"}, {"key": "k1", "val": 7}]}, q).value == "7"


@pytest.mark.parametrize(
    "bad", ["", "/", "a/[]", "a/[x,y]", "a/[x,,z]", "a/[x", "a/x]", "a/b[x]", "a/[a,b,c,d]"]
)
def test_malformed_paths_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_app_id_query(bad)


@pytest.mark.parametrize(
    ("path", "index"),
    [
        ("spec/containers/0/env/[JOBID]", 0),
        ("spec/containers/2/env/[JOBID]", 2),
        ("metadata/labels/jobid", 0),
        ("spec/initContainers/1/env/[JOBID]", 0),
    ],
)
def test_job_container_is_the_one_the_path_points_into(path: str, index: int) -> None:
    assert parse_app_id_query(path).job_container_index == index
