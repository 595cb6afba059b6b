"""The app-id query of the original servo: a `/`-separated path into a pod object.

Segments are map keys or list indexes; `[KEY]` finds `{"name": KEY, "value": V}` in a list and
yields V; `[KEY,KEYFIELD,VALFIELD]` does the same with other field names. Any miss means "not a
job" (None, with the reason), never an exception. Pure: no I/O, no logging.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

# The job container is the one the path points into; paths that do not name a container (for
# example a label) measure container 0, as the original did.
DEFAULT_JOB_CONTAINER_INDEX = 0


@dataclass(frozen=True, slots=True)
class Lookup:
    """A `[KEY,KEYFIELD,VALFIELD]` segment: find the list item whose KEYFIELD is KEY."""

    key: str
    key_field: str = "name"
    value_field: str = "value"


Segment = str | Lookup


@dataclass(frozen=True, slots=True)
class AppIdQuery:
    """A parsed app-id path; `text` is what the user wrote."""

    text: str
    segments: tuple[Segment, ...]
    # Index of the container the path points into (`spec/containers/N/...`), else 0.
    job_container_index: int = field(init=False, default=DEFAULT_JOB_CONTAINER_INDEX)

    def __post_init__(self) -> None:
        segs = self.segments
        if len(segs) >= 3 and segs[0] == "spec" and segs[1] == "containers":
            third = segs[2]
            if isinstance(third, str) and third.isdigit():
                object.__setattr__(self, "job_container_index", int(third))


class AppIdResult(NamedTuple):
    """The app id found, or None and why not (for a DEBUG line).

    A NamedTuple, and the reason's text built only when asked: most pods of a cluster are not
    jobs, and their misses must cost next to nothing.
    """

    value: str | None
    reason: str = ""
    query: AppIdQuery | None = None
    depth: int = -1  # the segment where the path ended, when it ended early

    @property
    def why(self) -> str:
        if self.query is None or self.depth < 0:
            return self.reason
        segs = self.query.segments[: self.depth + 1]
        walked = "/".join(s if isinstance(s, str) else f"[{s.key}]" for s in segs)
        return f"{walked}: {self.reason}"


def parse_app_id_query(text: str) -> AppIdQuery:
    """Parse an app-id path; raise ValueError naming what is wrong."""
    segments: list[Segment] = []
    for part in text.split("/"):
        if not part:
            continue  # leading, trailing or doubled "/" are harmless, as in the original
        if part.startswith("[") or part.endswith("]"):
            segments.append(_parse_lookup(part))
        elif "[" in part or "]" in part:
            raise ValueError(f"segment {part!r} mixes a key with a [lookup]")
        else:
            segments.append(part)
    if not segments:
        raise ValueError("the path is empty")
    return AppIdQuery(text=text, segments=tuple(segments))


def _parse_lookup(part: str) -> Lookup:
    if not (part.startswith("[") and part.endswith("]")) or len(part) < 3:
        raise ValueError(f"segment {part!r}: expected [KEY] or [KEY,KEYFIELD,VALFIELD]")
    fields = [f.strip() for f in part[1:-1].split(",")]
    if len(fields) not in (1, 3) or not all(fields):
        raise ValueError(f"segment {part!r}: expected [KEY] or [KEY,KEYFIELD,VALFIELD]")
    if len(fields) == 1:
        return Lookup(fields[0])
    return Lookup(fields[0], fields[1], fields[2])


def resolve_app_id(obj: Any, query: AppIdQuery) -> AppIdResult:
    """Follow the query through a pod (plain JSON, or the typed Structs of podwire, whose
    fields go by their JSON names); the leaf must be a non-empty string or an integer."""
    node = obj
    for depth, seg in enumerate(query.segments):
        # Exact-type checks first: this runs for every segment of every pod event.
        if type(seg) is Lookup:
            found = _lookup(node, seg)
            if found is None:
                return AppIdResult(None, f"no item with {seg.key_field}={seg.key!r}", query, depth)
            if seg.value_field not in found:
                other = ", ".join(sorted(k for k in found if k != seg.key_field))
                why = f"item has no {seg.value_field!r} (it has: {other or 'nothing'})"
                return AppIdResult(None, why, query, depth)
            node = found[seg.value_field]
            continue
        assert isinstance(seg, str)
        kind = type(node)
        attrs = _STRUCT_FIELDS.get(kind)
        if attrs is None and isinstance(node, msgspec.Struct):
            attrs = _STRUCT_FIELDS[kind] = _fields_by_json_name(kind)
        if attrs is not None:
            attr = attrs.get(seg)
            node = getattr(node, attr) if attr is not None else None
            if node is None:
                return AppIdResult(None, "no such key", query, depth)
        elif kind is dict or isinstance(node, Mapping):
            if seg not in node:
                return AppIdResult(None, "no such key", query, depth)
            node = node[seg]
        elif kind is list or (isinstance(node, Sequence) and not isinstance(node, str)):
            if not seg.isdigit() or int(seg) >= len(node):
                return AppIdResult(None, "no such list index", query, depth)
            node = node[int(seg)]
        else:
            why = f"cannot descend into a {kind.__name__}"
            return AppIdResult(None, why, query, depth)
    if type(node) is not str and (isinstance(node, bool) or not isinstance(node, str | int)):
        return AppIdResult(None, f"{query.text}: value is a {type(node).__name__}, not a string")
    value = str(node)
    if not value:
        return AppIdResult(None, f"{query.text}: value is empty")
    return AppIdResult(value)


# Struct class -> {JSON field name: attribute name}, filled as classes are met.
_STRUCT_FIELDS: dict[type, dict[str, str]] = {}


def _fields_by_json_name(cls: type[msgspec.Struct]) -> dict[str, str]:
    return {f.encode_name: f.name for f in msgspec.structs.fields(cls)}


def _lookup(node: Any, seg: Lookup) -> Mapping[str, Any] | None:
    if type(node) is not list and (not isinstance(node, Sequence) or isinstance(node, str)):
        return None
    for item in node:
        if (type(item) is dict or isinstance(item, Mapping)) and item.get(seg.key_field) == seg.key:
            return item
    return None
