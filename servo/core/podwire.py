"""PURE: watch lines and pod lists -> the typed Structs of `podstructs` (msgspec, at C speed).

A Job pod is about 13.5 KB of JSON the servo mostly never reads; pods.py reads the Structs
directly. When the app-id path reaches outside them (`spec/affinity/...`), every pod is also
decoded whole into `doc` and the path is followed there; a pod the typed decode refuses keeps
its whole `doc` too and its Struct is salvaged, so one odd field never costs the event.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from servo.core.appid import AppIdQuery
from servo.core.deepjson import scan_pod_key, split_list_items
from servo.core.podstructs import Pod, WatchLine, WireStruct, salvage

logger = logging.getLogger(__name__)


class _Event(msgspec.Struct):
    type: str = ""
    object: msgspec.Raw = msgspec.Raw(b"null")


class _ListMeta(WireStruct):
    resource_version: str | None = None
    continue_: str | None = msgspec.field(default=None, name="continue")


class _PodList(WireStruct):
    metadata: _ListMeta | None = None
    items: list[msgspec.Raw] | None = None


class _TypedPodList(WireStruct):
    metadata: _ListMeta | None = None
    items: list[Pod] | None = None


POD_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})
# The parts of a pod the typed decode keeps, as the first path segments an app-id query may use.
_META_KEYS = {"name", "generateName", "namespace", "uid", "labels", "annotations"}
_CONTAINER_KEYS = {"name", "image", "command", "args", "env", "resources"}

_line = msgspec.json.Decoder(WatchLine)
_event = msgspec.json.Decoder(_Event)
_pod = msgspec.json.Decoder(Pod)
_pod_list = msgspec.json.Decoder(_PodList)
_typed_pod_list = msgspec.json.Decoder(_TypedPodList)
_any = msgspec.json.Decoder()


class DecodeError(ValueError):
    """Bytes that are not the JSON expected."""


class TooDeepError(DecodeError):
    """A watch event nested deeper than the decoder can follow: that one event is skipped
    (the stream itself is fine). `key` is the pod's namespace/name as read from the raw bytes,
    or "?"."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


def typed_covers(query: AppIdQuery) -> bool:
    """Does the typed decode keep every field the app-id query may visit?"""
    segs = query.segments
    if len(segs) >= 2 and segs[0] == "metadata":
        return segs[1] in _META_KEYS
    if len(segs) >= 4 and segs[0] == "spec" and segs[1] in ("containers", "initContainers"):
        return isinstance(segs[2], str) and segs[2].isdigit() and segs[3] in _CONTAINER_KEYS
    return False


def decode_event(line: bytes, *, whole: bool = False) -> WatchLine:
    """One watch line -> WatchLine; `whole`: keep every pod's full JSON in `doc` as well.
    DecodeError when it is no watch event, TooDeepError when it is nested too deeply."""
    try:
        return _decode_event(line, whole=whole)
    except RecursionError as e:
        key = scan_pod_key(line)
        raise TooDeepError(f"watch event nested too deeply to decode ({key})", key=key) from e


def _decode_event(line: bytes, *, whole: bool) -> WatchLine:
    if not whole:
        try:
            typed = _line.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass  # not a plain pod event: the two-step path below sorts it out
        else:
            if typed.type in POD_EVENT_TYPES:
                return typed
    try:
        event = _event.decode(line)
        if event.type in POD_EVENT_TYPES:
            pod, doc = _decode_pod(event.object, whole=whole)
            return WatchLine(event.type, pod, doc)
        return WatchLine(event.type, None, _any.decode(event.object))
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise DecodeError(f"watch line is not a watch event: {e}; {line[:80]!r}") from e


def decode_pod_list(body: bytes, *, whole: bool = False) -> tuple[list[WatchLine], str, str | None]:
    """A PodList -> (each item as an ADDED WatchLine, resourceVersion, continue token)."""
    try:
        return _decode_pod_list(body, whole=whole)
    except RecursionError:
        return _decode_deep_pod_list(body, whole=whole)


def _decode_deep_pod_list(body: bytes, *, whole: bool) -> tuple[list[WatchLine], str, str | None]:
    """A list with a pod too deep to decode: the others item by item, that one skipped (a
    list that fails as a whole would be retried, and fail, forever)."""
    split = split_list_items(body)
    if split is None:
        raise DecodeError(f"pod list nested too deeply to decode (near {scan_pod_key(body)})")
    raw_items, rest = split
    items: list[WatchLine] = []
    for raw in raw_items:
        try:
            items.append(WatchLine("ADDED", *_decode_pod(msgspec.Raw(raw), whole=whole)))
        except RecursionError:
            logger.error(
                "listed pod skipped: nested too deeply to decode",
                extra={"pod": scan_pod_key(raw), "bytes": len(raw)},
            )
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise DecodeError(f"pod list item is not JSON: {e}") from e
    try:
        meta = _pod_list.decode(rest).metadata
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
        raise DecodeError(f"pod list is not a PodList: {e}") from e
    return items, *_list_meta(meta)


def _decode_pod_list(body: bytes, *, whole: bool) -> tuple[list[WatchLine], str, str | None]:
    items: list[WatchLine]
    try:
        if not whole:
            try:
                typed = _typed_pod_list.decode(body)
            except msgspec.ValidationError:
                pass  # one odd item: decode them one by one below
            else:
                items = [WatchLine("ADDED", pod) for pod in typed.items or []]
                return items, *_list_meta(typed.metadata)
        doc = _pod_list.decode(body)
        items = [WatchLine("ADDED", *_decode_pod(raw, whole=whole)) for raw in doc.items or []]
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise DecodeError(f"pod list is not a PodList: {e}") from e
    return items, *_list_meta(doc.metadata)


def _list_meta(meta: _ListMeta | None) -> tuple[str, str | None]:
    meta = meta or _ListMeta()
    return meta.resource_version or "", meta.continue_ or None


def _decode_pod(raw: msgspec.Raw, *, whole: bool) -> tuple[Pod | None, Any]:
    """A pod object -> (Struct or None when it is no JSON object, its whole JSON or None)."""
    try:
        pod = _pod.decode(raw)
    except msgspec.ValidationError:
        # A field of an unexpected type: keep the whole pod, and salvage the rest of the Struct
        # (refusing the event would replay it forever from the same resourceVersion).
        # msgspec.convert of the same JSON would refuse it again: salvage straight away.
        doc = _any.decode(raw)
        return (salvage(doc, Pod) if isinstance(doc, dict) else None), doc
    return pod, (_any.decode(raw) if whole else None)


def pod_key(pod: Pod | None) -> str:
    """`namespace/name` for log lines."""
    meta = pod.metadata if pod is not None else None
    if meta is None:
        return "?"
    return f"{meta.namespace}/{meta.name}"
