"""PURE: the bounds every figure read from outside keeps before it is used.

A reading is a finite number >= 0; an integer also lies below 2^63, what a signed 64-bit
counter (the kernel's, Kubernetes') can hold. The monitor's stats, `servo measure`'s figures
and the collector's event check all ask `figure_fault`, each naming a fault in its own words.
"""

from __future__ import annotations

import math

# Bytes a kernel counter can hold (int64); anything at or above is not a reading.
BYTES_LIMIT = 1 << 63
# The largest byte figure kept, as an int: compared exactly with ints and floats alike.
MAX_BYTES = BYTES_LIMIT - 1
OUT_OF_RANGE = "out of range"
NOT_FINITE = "not finite"
NEGATIVE = "negative"


def figure_fault(value: float) -> str:
    """'' when `value` is a reading; else which bound it breaks (an integer's magnitude at
    or above 2^63 first, so a huge negative integer is out of range rather than negative)."""
    if isinstance(value, int) and abs(value) >= BYTES_LIMIT:
        return OUT_OF_RANGE
    if not math.isfinite(value):
        return NOT_FINITE
    if value < 0:
        return NEGATIVE
    return ""
