from __future__ import annotations

import json

import pytest

from servo.core.deepjson import scan_pod_key, split_list_items


def test_items_are_split_with_brackets_inside_strings_left_alone() -> None:
    items = [{"metadata": {"name": "a]}"}}, {"x": [[{"y": '"{[\\'}]]}, {}]
    body = json.dumps({"kind": "PodList", "metadata": {"resourceVersion": "7"}, "items": items})
    split = split_list_items(body.encode())

    assert split is not None
    raw_items, rest = split
    assert [json.loads(r) for r in raw_items] == items
    assert json.loads(rest) == {
        "kind": "PodList",
        "metadata": {"resourceVersion": "7"},
        "items": [],
    }


@pytest.mark.parametrize(
    "body",
    [b"{}", b'{"metadata": {"items": [{}]}}', b"[", b'{"items": 3}', b'{"items": [{}'],
)
def test_no_top_level_items_array_is_none(body: bytes) -> None:
    assert split_list_items(body) is None


def test_items_too_deep_for_the_decoder_are_still_split() -> None:
    body = b'{"items": [{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b'}, {"b": 1}]}'
    split = split_list_items(body)
    assert split is not None and len(split[0]) == 2 and split[0][1] == b'{"b": 1}'


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (
            b'{"type":"ADDED","object":{"metadata":{"name":"p-1","namespace":"ns","uid":"u"}}}',
            "ns/p-1",
        ),
        (b'{"metadata":{"generateName":"x-","name":"p.2"}}', "/p.2"),
        (b'{"spec":{"name":"not-metadata"}}', "?"),
        (b"[" * 100, "?"),
    ],
)
def test_pod_key_is_read_from_the_metadata(raw: bytes, key: str) -> None:
    assert scan_pod_key(raw) == key
