"""The result of one `servo check`: its Status and CheckResult, shared by every check module.

Also the one-line gist of a transport error, which the API server and backend checks both show.
Running the checks, the exit status and the output are servo/check/checks.py's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class Blocker(StrEnum):
    """What a failure stands in the way of, when it stops everything after it; each has an
    exit status of its own (checks.py), so a script can tell them apart."""

    NONE = ""
    # A setting or flag is wrong: `servo run` would refuse to start.
    CONFIG = "configuration"
    # No Kubernetes credentials, or ones that cannot be used or are refused (401).
    CREDENTIALS = "credentials"
    # The API server cannot be reached (connection, TLS, timeout).
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its name, status, a one-line detail and, for a problem, the fix."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    # Extra lines (every configuration problem, the paths tried).
    notes: tuple[str, ...] = ()
    # What this failure blocks (NONE: only itself).
    blocker: Blocker = Blocker.NONE

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "status": str(self.status), "detail": self.detail}
        if self.fix:
            doc["fix"] = self.fix
        if self.notes:
            doc["notes"] = list(self.notes)
        if self.blocker is not Blocker.NONE:
            doc["blocker"] = str(self.blocker)
        return doc


_ERRNO_RE = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


def short_transport_error(message: str) -> str:
    """The gist of a urllib3/requests connection error ("[Errno 111] Connection refused")."""
    if "CERTIFICATE_VERIFY_FAILED" in message:
        return "TLS certificate not trusted (CERTIFICATE_VERIFY_FAILED)"
    if "Failed to resolve" in message or "Name or service not known" in message:
        return "host name not resolved"
    if "timed out" in message.lower():
        return "timed out"
    found = _ERRNO_RE.search(message)
    return found.group(0).strip() if found else message[:200]
