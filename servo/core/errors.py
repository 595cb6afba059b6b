"""The servo's exception hierarchy; callers never catch HTTP-library types directly."""

from __future__ import annotations

# Every command's exit status for a configuration it cannot use.
EXIT_CONFIG = 2
# ...and for a command that ran but failed (a check failed, a port could not be bound).
EXIT_FAILED = 1


class ServoError(Exception):
    """Base of every error the servo raises on purpose."""


class ConfigError(ServoError):
    """The configuration is unusable; `problems` lists every problem found, one per entry."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class KubeError(ServoError):
    """The Kubernetes API answered an error (or could not be reached: status 0)."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")


class WatchExpiredError(KubeError):
    """410 Gone: the resourceVersion we watched from is too old; the caller must list again."""

    def __init__(self, message: str = "") -> None:
        super().__init__(410, "Expired", message)


class ReportError(ServoError):
    """A report was not accepted: an HTTP `status`, or none for transport errors.

    `transient` marks connection errors and timeouts (worth retrying); other transport errors
    (a malformed URL, say) are not.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        transient: bool = False,
        retry_after_s: float | None = None,
        body_excerpt: str = "",
    ) -> None:
        self.status = status
        self.transient = transient
        self.retry_after_s = retry_after_s
        self.body_excerpt = body_excerpt
        super().__init__(message)
