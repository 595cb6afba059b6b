"""The app-id query of the original servo: a `/`-separated path into a pod object.

Segments are map keys or list indexes; `[KEY]` finds `{"name": KEY, "value": V}` in a list and
yields V; `[KEY,KEYFIELD,VALFIELD]` does the same with other field names. Any miss means "not a
job" (None, with the reason), never an exception. Pure: no I/O, no logging.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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

    @property
    def job_container_index(self) -> int:
        """Index of the container the path points into (`spec/containers/N/...`), else 0."""
        segs = self.segments
        if len(segs) >= 3 and segs[0] == "spec" and segs[1] == "containers":
            third = segs[2]
            if isinstance(third, str) and third.isdigit():
                return int(third)
        return DEFAULT_JOB_CONTAINER_INDEX


@dataclass(frozen=True, slots=True)
class AppIdResult:
    """The app id found, or None and why not (for a DEBUG line)."""

    value: str | None
    why: str = ""


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
    """Follow the query through a pod object; the leaf must be a non-empty string or an integer."""
    node = obj
    walked: list[str] = []
    for seg in query.segments:
        walked.append(seg if isinstance(seg, str) else f"[{seg.key}]")
        where = "/".join(walked)
        if isinstance(seg, Lookup):
            found = _lookup(node, seg)
            if found is None:
                return AppIdResult(None, f"{where}: no item with {seg.key_field}={seg.key!r}")
            if seg.value_field not in found:
                other = ", ".join(sorted(k for k in found if k != seg.key_field))
                return AppIdResult(
                    None, f"{where}: item has no {seg.value_field!r} (it has: {other or 'nothing'})"
                )
            node = found[seg.value_field]
        elif type(node) is dict or isinstance(node, Mapping):
            if seg not in node:
                return AppIdResult(None, f"{where}: no such key")
            node = node[seg]
        elif type(node) is list or (isinstance(node, Sequence) and not isinstance(node, str)):
            if not seg.isdigit() or int(seg) >= len(node):
                return AppIdResult(None, f"{where}: no such list index")
            node = node[int(seg)]
        else:
            return AppIdResult(None, f"{where}: cannot descend into a {type(node).__name__}")
    if isinstance(node, bool) or not isinstance(node, str | int):
        return AppIdResult(None, f"{query.text}: value is a {type(node).__name__}, not a string")
    value = str(node)
    if not value:
        return AppIdResult(None, f"{query.text}: value is empty")
    return AppIdResult(value)


def _lookup(node: Any, seg: Lookup) -> Mapping[str, Any] | None:
    if type(node) is not list and (not isinstance(node, Sequence) or isinstance(node, str)):
        return None
    for item in node:
        if (type(item) is dict or isinstance(item, Mapping)) and item.get(seg.key_field) == seg.key:
            return item
    return None
