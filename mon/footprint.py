"""The monitor's own memory footprint, reported so users can tell it apart from the job's.

Read from /proc/self/status (VmRSS) and getrusage, the stdlib only.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

# ru_maxrss is KiB on Linux and bytes on macOS.
_MAXRSS_UNIT_BYTES = 1 if sys.platform == "darwin" else 1024
# Values are bounded before use: a resident set below 2^48 bytes.
_MAX_BYTES = 1 << 48


def rss_from_status(text: str) -> int | None:
    """PURE: VmRSS of a /proc/<pid>/status text, in bytes; None when absent or absurd."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                value = int(parts[1]) * 1024
                return value if value < _MAX_BYTES else None
    return None


def own_rss_bytes(status: Path = Path("/proc/self/status")) -> int | None:
    """This process's resident set now."""
    try:
        return rss_from_status(status.read_text(encoding="ascii", errors="replace"))
    except OSError:
        return None


def own_max_rss_bytes() -> int:
    """This process's peak resident set so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT_BYTES
