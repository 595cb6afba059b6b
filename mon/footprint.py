"""The monitor's own memory footprint, reported so users can tell it apart from the job's.

The monitor lives in the pod, so the pod-level peak includes it.
"""

from __future__ import annotations

import resource
import sys

import psutil

# ru_maxrss is KiB on Linux and bytes on macOS.
_MAXRSS_UNIT_BYTES = 1 if sys.platform == "darwin" else 1024


def own_rss_bytes() -> int | None:
    """This process's resident set now."""
    try:
        return int(psutil.Process().memory_info().rss)
    except psutil.Error:
        return None


def own_max_rss_bytes() -> int:
    """This process's peak resident set so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT_BYTES
