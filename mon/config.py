"""Configuration: one frozen object built from the environment and validated at start.

`load_config(environ)` is the only reader of the environment. It collects every problem and raises
one ConfigError listing them all; `__main__` prints it and exits with status 2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from mon.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as Record
    from typing import TypeVar

    T = TypeVar("T")
    N = TypeVar("N", int, float)
else:
    from mon.record import Record

# The servo's stats receiver port in the original design (the monitor POSTed to <target>:8080).
STATS_PORT = 8080
# A pod UID as the Downward API gives it (a UUID); underscores are accepted for the systemd form.
_UID_RE = re.compile(r"^[0-9a-fA-F][0-9a-fA-F_-]{7,63}$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
LOG_FORMATS = ("json", "text")
SIDECAR_STYLES = ("native", "plain")


class Config(Record):
    """Everything the monitor needs, validated."""

    # The pod UID (Downward API metadata.uid): finds the pod cgroup and is the POST's "id".
    pod_uid: str
    # Explicit pod cgroup path below each controller root (the original's OPTUNE_CGROUP_PATH,
    # e.g. /kubepods/burstable/pod<uid>); None means find it by the UID.
    cgroup_path: str | None
    # The host's /sys mounted read-only into the pod; cgroups are at <sys_root>/fs/cgroup.
    sys_root: Path = Path("/rsys")
    # This container's own /proc: /proc/self/cgroup and /proc/self/mountinfo tell which sibling
    # cgroups are the monitor itself and the pod sandbox (pause).
    proc_root: Path = Path("/proc")
    # Kubernetes reads this file after the container exits (state.terminated.message).
    termination_log: Path = Path("/dev/termination-log")
    # The servo's stats receiver; None means the termination message is the only channel.
    stats_url: str | None = None
    # The monitor's POST credential: a projected service-account token (audience servo-stats)
    # that the kubelet keeps fresh in this file; it is read before each try, never cached.
    stats_token_file: Path = Path("/var/run/secrets/servo/token")
    # Wait between checks for exited siblings and memory.current samples; 1 s keeps the
    # monitor's own CPU cost negligible, SIGTERM wakes it at once anyway.
    poll_interval_s: float = 1.0
    # How deep below the cgroup root the pod directory is searched for when the kubelet's fixed
    # paths miss (kubepods nested under another slice); pod dirs sit at depth 2-4 in practice.
    search_depth: int = 5
    # The pod shares one process namespace (shareProcessNamespace: true): processes are visible.
    shared_pid_namespace: bool = False
    # "native": an init container with restartPolicy Always (Kubernetes 1.29+), whose cue is
    # the SIGTERM the kubelet always sends once the main containers exited. "plain": a regular
    # container that nobody signals: it watches its siblings and has bounds (below).
    sidecar_style: str = "plain"
    # Finish by itself when every other container exited (default: plain style only).
    watch_siblings: bool = True
    # Plain style: no job container seen running this long after start (they exited before the
    # monitor looked, or cannot be watched): read what it can, report, exit.
    unseen_wait_s: float = 30.0
    # Per-try timeout of the POST; short, since the pod is dying.
    post_timeout_s: float = 1.0
    # POST tries and overall deadline: a few seconds stays well inside the grace period.
    post_attempts: int = 3
    post_deadline_s: float = 3.0
    # "json" lines on stderr (default) or "text" for people.
    log_format: str = "json"
    # OPTUNE_DEBUG > 0 logs every poll at DEBUG.
    debug: bool = False


def _get(
    environ: Mapping[str, str],
    name: str,
    parse: Callable[[str], T],
    default: T,
    problems: list[str],
    expected: str,
) -> T:
    raw = environ.get(name)
    if raw is None:
        return default
    try:
        return parse(raw.strip())
    except ValueError:
        problems.append(f"{name}={raw!r}: expected {expected}")
        return default


def _parse_bool(raw: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(raw)


def _bounded(parse: Callable[[str], N], lo: N, hi: N) -> Callable[[str], N]:
    def inner(raw: str) -> N:
        value = parse(raw)
        if not lo <= value <= hi:
            raise ValueError(raw)
        return value

    return inner


def _check_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def stats_url_for_host(host: str) -> str:
    """The receiver URL for a bare host or IP, as the original built it: http://<host>:8080/."""
    import ipaddress  # only for REPORT_TARGET / SELF_IP

    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"http://{host}:{STATS_PORT}/"


# Every number the monitor takes: parser, range, default, what the error message expects.
NUMERIC_SETTINGS: dict[str, tuple[Callable[[str], float], float, float, float, str]] = {
    "OPTUNE_POLL_INTERVAL": (float, 0.01, 3600.0, 1.0, "seconds between 0.01 and 3600"),
    "OPTUNE_POST_TIMEOUT": (float, 0.1, 60.0, 1.0, "seconds between 0.1 and 60"),
    "OPTUNE_UNSEEN_WAIT": (float, 1.0, 86400.0, 30.0, "seconds between 1 and 86400"),
    "OPTUNE_CGROUP_SEARCH_DEPTH": (int, 1, 12, 5, "an integer between 1 and 12"),
    "OPTUNE_DEBUG": (int, 0, 5, 0, "an integer 0..5"),
}


def _numbers(environ: Mapping[str, str], problems: list[str]) -> dict[str, float]:
    """Each numeric setting, finite and in its range (nan and inf fail the range check)."""
    return {
        name: _get(environ, name, _bounded(parse, lo, hi), default, problems, expected)
        for name, (parse, lo, hi, default, expected) in NUMERIC_SETTINGS.items()
    }


def load_config(environ: Mapping[str, str]) -> Config:
    """Build the Config from `environ`; raise one ConfigError listing every problem."""
    problems: list[str] = []

    uid, cgroup_path = _pod_uid(environ, problems)
    stats_url = _stats_url(environ, problems)
    log_format = environ.get("OPTUNE_LOG_FORMAT", "json").strip().lower()
    if log_format not in LOG_FORMATS:
        problems.append(f"OPTUNE_LOG_FORMAT={log_format!r}: expected one of {LOG_FORMATS}")

    def path(name: str, default: str) -> Path:
        raw = (environ.get(name) or "").strip()
        if raw and not raw.startswith("/"):
            problems.append(f"{name}={raw!r}: expected an absolute path")
        return Path(raw or default)

    numbers = _numbers(environ, problems)
    shared = _get(
        environ, "OPTUNE_SHARED_PID_NAMESPACE", _parse_bool, False, problems, "true or false"
    )
    style = (environ.get("OPTUNE_SIDECAR_STYLE") or "plain").strip().lower()
    if style not in SIDECAR_STYLES:
        problems.append(f"OPTUNE_SIDECAR_STYLE={style!r}: expected one of {SIDECAR_STYLES}")
    siblings = _get(
        environ, "OPTUNE_WATCH_SIBLINGS", _parse_bool, style != "native", problems, "true or false"
    )

    config = Config(
        pod_uid=uid,
        cgroup_path=cgroup_path,
        sys_root=path("OPTUNE_SYS_ROOT", "/rsys"),
        proc_root=path("OPTUNE_PROC_ROOT", "/proc"),
        termination_log=path("OPTUNE_TERMINATION_LOG", "/dev/termination-log"),
        stats_url=stats_url,
        stats_token_file=path("OPTUNE_STATS_TOKEN_FILE", "/var/run/secrets/servo/token"),
        poll_interval_s=numbers["OPTUNE_POLL_INTERVAL"],
        search_depth=int(numbers["OPTUNE_CGROUP_SEARCH_DEPTH"]),
        shared_pid_namespace=shared,
        sidecar_style=style,
        watch_siblings=siblings,
        unseen_wait_s=numbers["OPTUNE_UNSEEN_WAIT"],
        post_timeout_s=numbers["OPTUNE_POST_TIMEOUT"],
        log_format=log_format,
        debug=numbers["OPTUNE_DEBUG"] > 0,
    )
    if problems:
        raise ConfigError(problems)
    return config


def _pod_uid(environ: Mapping[str, str], problems: list[str]) -> tuple[str, str | None]:
    """(the pod UID, the explicit cgroup path or None); a UID is checked unless the path is
    given (then the UID only names the pod)."""
    uid = (environ.get("OPTUNE_POD_UID") or environ.get("OPTUNE_SELF_ID") or "").strip()
    cgroup_path = (environ.get("OPTUNE_CGROUP_PATH") or "").strip() or None
    if not uid:
        problems.append(
            "OPTUNE_POD_UID is not set: expected the pod UID "
            "(env valueFrom fieldRef metadata.uid); OPTUNE_SELF_ID is the older name"
        )
    elif cgroup_path is None and not _UID_RE.match(uid):
        problems.append(f"OPTUNE_POD_UID={uid!r}: expected a pod UID like 3f1c2a4e-...-...")
    return uid, cgroup_path


def _stats_url(environ: Mapping[str, str], problems: list[str]) -> str | None:
    """OPTUNE_STATS_URL, else the receiver URL of REPORT_TARGET or SELF_IP, else None."""
    stats_url = (environ.get("OPTUNE_STATS_URL") or "").strip() or None
    if stats_url is None:
        host = (environ.get("REPORT_TARGET") or environ.get("SELF_IP") or "").strip()
        stats_url = stats_url_for_host(host) if host else None
    if stats_url is not None and not _check_url(stats_url):
        problems.append(f"OPTUNE_STATS_URL={stats_url!r}: expected http(s)://host[:port]/path")
    return stats_url


def describe(config: Config) -> dict[str, object]:
    """The effective config for the start-up log line, the token masked."""
    return {
        "pod_uid": config.pod_uid,
        "cgroup_path": config.cgroup_path,
        "sys_root": str(config.sys_root),
        "termination_log": str(config.termination_log),
        "stats_url": config.stats_url,
        "stats_token_file": str(config.stats_token_file),
        "poll_interval_s": config.poll_interval_s,
        "shared_pid_namespace": config.shared_pid_namespace,
        "sidecar_style": config.sidecar_style,
        "watch_siblings": config.watch_siblings,
        "unseen_wait_s": config.unseen_wait_s,
    }
