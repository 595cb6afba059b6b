"""The last word of a bench's summary line: PASS or MISS against its target, or, in a smoke run
(small sizes on a busy CI machine, where a speed figure means nothing), that it was not checked.
"""

from __future__ import annotations

SMOKE = "smoke, not checked"


def verdict(ok: bool, *, smoke: bool) -> str:
    """PASS / MISS for a full run; the smoke marker for a smoke run, whatever `ok` says."""
    if smoke:
        return SMOKE
    return "PASS" if ok else "MISS"
