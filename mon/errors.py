"""The monitor's exceptions; callers never catch library types."""

from __future__ import annotations

from collections.abc import Sequence


class MonError(Exception):
    """Base of every error the monitor raises on purpose."""


class ConfigError(MonError):
    """The environment is wrong; one message lists every problem, one per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class CgroupNotFoundError(MonError):
    """The pod cgroup is nowhere to be found; names every path tried."""

    def __init__(self, *, what: str, tried: Sequence[str]) -> None:
        self.what = what
        self.tried = tuple(tried)
        listing = "\n".join(f"  {p}" for p in self.tried) or "  (nothing)"
        super().__init__(f"{what} not found; tried:\n{listing}")


class CgroupParseError(MonError):
    """A cgroup file's content is empty, half-written or not what the kernel documents."""


class DeliveryError(MonError):
    """The stats POST failed; `status` is the HTTP status, None for connection errors."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)
