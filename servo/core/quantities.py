"""PURE: Kubernetes quantities ("500m", "64Mi", "1e9") read as exact Decimals and written back in
canonical form, with the API server's bounds and rounding. The pod's facts (requests, limits)
and the webhook's ADJUST both read quantities through here.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(.*)$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_EXPONENT = re.compile(r"^[eE]([+-]?\d+)$")
# Kubernetes keeps quantities in an int64 of milli-units at most; nothing real is larger, and
# the bounds keep Decimal arithmetic (scaleb, rounding, int()) cheap and exception-free.
MAX_QUANTITY = Decimal(2**63)
MAX_QUANTITY_EXPONENT = 30
MAX_QUANTITY_DIGITS = 40


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("500m", "2", "64Mi", "1G", "1e9") as an exact Decimal; out of
    range (beyond 2^63 or an exponent past +-MAX_QUANTITY_EXPONENT) is a ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"quantity {text!r}: expected a string")
    m = _QUANTITY.match(text.strip())
    if m is None or not text.strip():
        raise ValueError(f"quantity {text[:40]!r}: expected a number with an optional suffix")
    number, suffix = m.groups()
    if len(number) > MAX_QUANTITY_DIGITS:
        raise ValueError(f"quantity {text[:40]!r}: more than {MAX_QUANTITY_DIGITS} digits")
    value = Decimal(number)  # the regex admits only valid decimals
    if suffix in _BINARY:
        value *= Decimal(1024) ** _BINARY[suffix]
    elif suffix in _DECIMAL:
        value = value.scaleb(_DECIMAL[suffix])
    else:
        exp = _EXPONENT.match(suffix)
        if exp is None:
            raise ValueError(f"quantity {text[:40]!r}: unknown suffix {suffix[:20]!r}")
        if len(exp.group(1)) > 4 or abs(int(exp.group(1))) > MAX_QUANTITY_EXPONENT:
            raise ValueError(f"quantity {text[:40]!r}: exponent out of range")
        value = value.scaleb(int(exp.group(1)))
    if abs(value) > MAX_QUANTITY:
        raise ValueError(f"quantity {text[:40]!r}: above 2^63, out of range")
    return value


def parse_cpu_cores(text: str) -> Decimal:
    """CPU quantity -> cores ("500m" -> 0.5)."""
    return parse_quantity(text)


def parse_memory_bytes(text: str) -> int:
    """Memory quantity -> bytes, rounded up as the API server does ("1.5Ki" -> 1536)."""
    return int(parse_quantity(text).to_integral_value(rounding=ROUND_CEILING))


def format_cpu(cores: Decimal) -> str:
    """Cores -> the canonical quantity; below 1m precision rounds up, as the API server does."""
    milli = int((cores * 1000).to_integral_value(rounding=ROUND_CEILING))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def format_memory(n_bytes: int) -> str:
    """Bytes -> the shortest exact binary quantity ("64Mi"), else plain bytes."""
    for suffix, power in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
        unit = 1024**power
        if n_bytes >= unit and n_bytes % unit == 0:
            return f"{n_bytes // unit}{suffix}"
    return str(n_bytes)
