"""Decoding watch lines and pod lists with msgspec: only the fields the servo reads.

A Job pod is about 13.5 KB of JSON, most of it managedFields, volumes and conditions that the
servo never looks at. Decoding into typed msgspec Structs that name only the needed fields
skips the rest at C speed, and keeps what a pod costs in memory small; the result is turned
back into a small plain dict (camelCase keys, as the API has them), so pods.py and the app-id
query work on it unchanged.

An app-id path that reaches outside these fields (say `spec/affinity/...`) is served by a
generic decode of the whole pod instead: `decoder_for(query)` picks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from servo.appid import AppIdQuery


class _Base(msgspec.Struct, rename="camel", omit_defaults=True):
    pass


class Container(_Base):
    name: str | None = None
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[dict[str, Any]] | None = None
    resources: dict[str, Any] | None = None
    restart_policy: str | None = None


class Spec(_Base):
    containers: list[Container] | None = None
    init_containers: list[Container] | None = None
    node_name: str | None = None
    restart_policy: str | None = None
    service_account_name: str | None = None


class Meta(_Base):
    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None


class ContainerStatus(_Base):
    name: str | None = None
    state: dict[str, Any] | None = None
    last_state: dict[str, Any] | None = None
    restart_count: int | None = None


class Status(_Base):
    phase: str | None = None
    reason: str | None = None
    pod_ip: str | None = msgspec.field(default=None, name="podIP")
    container_statuses: list[ContainerStatus] | None = None
    init_container_statuses: list[ContainerStatus] | None = None


class Pod(_Base):
    metadata: Meta | None = None
    spec: Spec | None = None
    status: Status | None = None


class _Event(msgspec.Struct):
    type: str = ""
    object: msgspec.Raw = msgspec.Raw(b"null")


class _PodEvent(msgspec.Struct):
    """A watch line decoded in one pass, the object as a Pod (an ERROR's Status is decoded
    again generically: rare)."""

    type: str = ""
    object: Pod | None = None


class _ListMeta(_Base):
    resource_version: str | None = None
    continue_: str | None = msgspec.field(default=None, name="continue")


class _PodList(_Base):
    metadata: _ListMeta | None = None
    items: list[msgspec.Raw] | None = None


# The parts of a pod the typed decode keeps, as the first path segments an app-id query may use.
_META_KEYS = {"name", "generateName", "namespace", "uid", "labels", "annotations"}
_CONTAINER_KEYS = {"name", "image", "command", "args", "env", "resources"}

_event = msgspec.json.Decoder(_Event)
_pod_event = msgspec.json.Decoder(_PodEvent)
_pod = msgspec.json.Decoder(Pod)
_pod_list = msgspec.json.Decoder(_PodList)
_any = msgspec.json.Decoder()


class DecodeError(ValueError):
    """Bytes that are not the JSON expected."""


def typed_covers(query: AppIdQuery) -> bool:
    """Does the typed decode keep every field the app-id query may visit?"""
    segs = query.segments
    if len(segs) >= 2 and segs[0] == "metadata":
        return segs[1] in _META_KEYS
    if len(segs) >= 4 and segs[0] == "spec" and segs[1] in ("containers", "initContainers"):
        return isinstance(segs[2], str) and segs[2].isdigit() and segs[3] in _CONTAINER_KEYS
    return False


def decode_pod_typed(raw: bytes | msgspec.Raw) -> dict[str, Any]:
    doc = msgspec.to_builtins(_pod.decode(raw))
    return doc if isinstance(doc, dict) else {}


def decode_pod_generic(raw: bytes | msgspec.Raw) -> dict[str, Any]:
    doc = _any.decode(raw)
    return doc if isinstance(doc, dict) else {}


PodDecoder = Callable[[bytes | msgspec.Raw], dict[str, Any]]


def decoder_for(query: AppIdQuery) -> PodDecoder:
    return decode_pod_typed if typed_covers(query) else decode_pod_generic


def _pod_or_generic(raw: msgspec.Raw, decode_pod: PodDecoder) -> Any:
    try:
        return decode_pod(raw)
    except msgspec.ValidationError:
        # A field of an unexpected type: decode it all and let pods.py judge it field by field
        # (refusing the event would replay it forever from the same resourceVersion).
        return _any.decode(raw)


def decode_event(line: bytes, decode_pod: PodDecoder) -> dict[str, Any]:
    """One watch line -> {"type", "object"}; a pod object through `decode_pod`, anything else
    (an ERROR's Status) generically."""
    if decode_pod is decode_pod_typed:
        try:
            typed = _pod_event.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass  # not a plain pod event: the two-step path below sorts it out
        else:
            if typed.type in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
                pod = msgspec.to_builtins(typed.object) if typed.object is not None else {}
                return {"type": typed.type, "object": pod}
    try:
        event = _event.decode(line)
        if event.type in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
            obj: Any = _pod_or_generic(event.object, decode_pod)
        else:
            obj = _any.decode(event.object)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise DecodeError(f"watch line is not a watch event: {e}; {line[:80]!r}") from e
    return {"type": event.type, "object": obj}


def decode_pod_list(
    body: bytes, decode_pod: PodDecoder
) -> tuple[list[dict[str, Any]], str, str | None]:
    """A PodList -> (items, resourceVersion, continue token)."""
    try:
        doc = _pod_list.decode(body)
        items = [_pod_or_generic(raw, decode_pod) for raw in doc.items or []]
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise DecodeError(f"pod list is not a PodList: {e}") from e
    meta = doc.metadata or _ListMeta()
    return items, meta.resource_version or "", meta.continue_ or None
