"""PURE: JSON nested deeper than the decoders follow (msgspec and json stop near Python's
recursion limit of 1,000 levels; the API server accepts more). These helpers read raw bytes
without recursion, so the one object that is too deep is named and skipped, and the rest of
a list or stream is still decoded.
"""

from __future__ import annotations

import re

# Ids are looked for near the start: metadata comes first in what the API server writes, and
# name before namespace and the rest.
SCAN_BYTES = 16 * 1024
_METADATA = re.compile(rb'"metadata"\s*:\s*\{')
_NAME = re.compile(rb'"name"\s*:\s*"([a-z0-9.-]{1,253})"')
_NAMESPACE = re.compile(rb'"namespace"\s*:\s*"([a-z0-9-]{1,63})"')
# Strings (skipped whole, so brackets inside them do not count) and brackets.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_ITEMS_KEY = re.compile(rb"\s*:\s*\[")


def scan_pod_key(raw: bytes) -> str:
    """`namespace/name` of the first object's metadata in raw JSON bytes; "?" if not found."""
    meta = _METADATA.search(raw, 0, SCAN_BYTES)
    if meta is None:
        return "?"
    head = raw[meta.end() : meta.end() + SCAN_BYTES]
    name, namespace = _NAME.search(head), _NAMESPACE.search(head)
    if name is None:
        return "?"
    return f"{namespace.group(1).decode() if namespace else ''}/{name.group(1).decode()}"


def split_list_items(body: bytes) -> tuple[list[bytes], bytes] | None:
    """The objects of a list's top-level `items` array as raw bytes, and the list with that
    array emptied (for its metadata); None when the body has no such array."""
    depth, start, items, begin = 0, -1, [], -1
    for m in _TOKEN.finditer(body):
        token = m.group()
        if token in (b"{", b"["):
            depth += 1
            if depth == 3 and start >= 0 and token == b"{":
                begin = m.start()
        elif token in (b"}", b"]"):
            depth -= 1
            if depth == 2 and begin >= 0 and token == b"}":
                items.append(body[begin : m.end()])
                begin = -1
            elif depth == 1 and start >= 0:
                return items, body[:start] + b"[]" + body[m.end() :]
        elif depth == 1 and start < 0 and token == b'"items"':
            key = _ITEMS_KEY.match(body, m.end())
            if key is not None:
                start = key.end() - 1
    return None
