"""PURE: the typed Structs of the pod fields the servo reads, and the salvage of an odd pod.

A pod decodes into these Structs at C speed, skipping the managedFields, volumes and conditions
the servo never reads. A pod as plain JSON with a field of an unexpected type (hand-made objects,
never the API server) is salvaged field by field: one odd field costs that field only.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import msgspec


class WireStruct(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    # gc=False: decoded JSON holds no reference cycles, so the collector need not track these.
    pass


class Container(WireStruct):
    name: str | None = None
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[dict[str, Any]] | None = None
    resources: dict[str, Any] | None = None
    restart_policy: str | None = None


class Spec(WireStruct):
    containers: list[Container] | None = None
    init_containers: list[Container] | None = None
    node_name: str | None = None
    restart_policy: str | None = None
    service_account_name: str | None = None


class Meta(WireStruct):
    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None


class Terminated(WireStruct):
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class State(WireStruct):
    """A container's state: exactly one of the three is set by the kubelet."""

    waiting: dict[str, Any] | None = None
    running: dict[str, Any] | None = None
    terminated: Terminated | None = None


class ContainerStatus(WireStruct):
    name: str | None = None
    container_id: str | None = msgspec.field(default=None, name="containerID")
    state: State | None = None
    last_state: State | None = None
    restart_count: int | None = None


class Status(WireStruct):
    phase: str | None = None
    reason: str | None = None
    pod_ip: str | None = msgspec.field(default=None, name="podIP")
    container_statuses: list[ContainerStatus] | None = None
    init_container_statuses: list[ContainerStatus] | None = None


class Pod(WireStruct):
    metadata: Meta | None = None
    spec: Spec | None = None
    status: Status | None = None


class WatchLine(msgspec.Struct, gc=False):
    """One watch line: a pod event or BOOKMARK with `pod`. `doc` is the object as plain JSON
    when the app-id path needs the whole pod, when the typed decode refused it, and for an
    ERROR (its Status)."""

    type: str = ""
    pod: Pod | None = msgspec.field(default=None, name="object")
    doc: Any = None  # never on the wire: filled in by the slower paths below


S = TypeVar("S", bound=msgspec.Struct)


def to_pod(doc: Mapping[str, Any]) -> Pod:
    """A pod as plain JSON -> Pod; fields of an unexpected type are left at their default."""
    try:
        return msgspec.convert(doc, Pod)
    except msgspec.ValidationError:
        return salvage(doc, Pod)


def salvage(doc: Mapping[str, Any], cls: type[S]) -> S:
    kwargs: dict[str, Any] = {}
    for f in msgspec.structs.fields(cls):
        if f.encode_name not in doc:
            continue
        value = doc[f.encode_name]
        try:
            kwargs[f.name] = msgspec.convert(value, f.type)
            continue
        except msgspec.ValidationError:
            pass
        struct, listed = _struct_of(f.type)
        if struct is None:
            continue  # a scalar or map of the wrong type: its default
        if not listed and isinstance(value, Mapping):
            kwargs[f.name] = salvage(value, struct)
        elif listed and isinstance(value, list):
            kwargs[f.name] = [salvage(v, struct) for v in value if isinstance(v, Mapping)]
    return cls(**kwargs)


def _struct_of(annotation: Any) -> tuple[type[msgspec.Struct] | None, bool]:
    """`X | None` or `list[X] | None` with X a Struct -> (X, is it a list)."""
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for arg in args:
        if isinstance(arg, type) and issubclass(arg, msgspec.Struct):
            return arg, False
        inner = typing.get_args(arg)
        if (
            typing.get_origin(arg) is list
            and inner
            and isinstance(inner[0], type)
            and issubclass(inner[0], msgspec.Struct)
        ):
            return inner[0], True
    return None, False
