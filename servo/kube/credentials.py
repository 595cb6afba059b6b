"""Kubernetes credentials, in a pod or outside one: where the servo's API client gets its token.

`api_client_for(kubeconfig, environ)` picks one source, in this order:

1. `--kubeconfig FILE` (the flag): that kubeconfig;
2. `OPTUNE_KUBE_TOKEN_COMMAND` (e.g. `kubectl create token servo -n servo --duration=1h`): run
   without a shell; the token is cached and the command run again before the token's `exp`
   (when less than 10% of its lifetime or 5 minutes remain);
3. `OPTUNE_KUBE_TOKEN_FILE`: a token file, re-read when it changes (projected service-account
   tokens rotate), for the server `OPTUNE_KUBE_SERVER`;
4. in a pod (KUBERNETES_SERVICE_HOST and the service-account token file): the service account;
5. else the kubeconfig of KUBECONFIG, else ~/.kube/config.

Token sources (2, 3) need `OPTUNE_KUBE_SERVER` (https://host:port) and take `OPTUNE_KUBE_CA_FILE`
(PEM) or `OPTUNE_KUBE_INSECURE=true` (no TLS verification: tests only). Problems raise
ConfigError with one line each. No token text is ever logged or put in an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.incluster_config import InClusterConfigLoader

from servo.core.errors import ConfigError, KubeError

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_ENV = "OPTUNE_KUBE_TOKEN_FILE"
TOKEN_COMMAND_ENV = "OPTUNE_KUBE_TOKEN_COMMAND"
SERVER_ENV = "OPTUNE_KUBE_SERVER"
CA_FILE_ENV = "OPTUNE_KUBE_CA_FILE"
INSECURE_ENV = "OPTUNE_KUBE_INSECURE"
# A token file is re-read when it changes, and at least this often (a rewrite within the
# file system's timestamp granularity, same size and inode, would otherwise go unseen).
TOKEN_FILE_RECHECK_S = 60.0
# Run the token command again when less than this share of the token's lifetime is left...
REFRESH_FRACTION = 0.1
# ...or less than this many seconds, whichever comes first.
REFRESH_MARGIN_S = 300.0
# Claims beyond this (year 5000) are nonsense, not times: the token is treated as without them.
MAX_EPOCH_S = 95_617_584_000
# A token without a readable `exp` claim: run the command again after this long.
UNKNOWN_EXPIRY_REFRESH_S = 300.0
# After a failed refresh while the cached token is still valid, wait this long before retrying.
FAILED_REFRESH_RETRY_S = 30.0
COMMAND_TIMEOUT_S = 30.0
STDERR_EXCERPT_CHARS = 300

SOURCES = ("kubeconfig", "token-command", "token-file", "in-cluster")


@dataclass(frozen=True, slots=True)
class KubeCredentials:
    """An API client and where its credentials came from (for `servo check` and logs)."""

    client: k8s.ApiClient
    # One of SOURCES.
    source: str
    # For people: "kubeconfig /home/me/.kube/config", "token file /run/token", ...
    detail: str
    # The API server URL.
    server: str


def api_client_for(kubeconfig: str | None, environ: Mapping[str, str]) -> k8s.ApiClient:
    """The API client for the first credential source that applies (see the module doc)."""
    return load_credentials(kubeconfig, environ).client


def load_credentials(
    kubeconfig: str | None,
    environ: Mapping[str, str],
    *,
    retries: int | None = None,
    clock: Callable[[], float] = time.time,
) -> KubeCredentials:
    """Like api_client_for, with the source named. `retries` caps urllib3's retries per
    request (None: its default; `servo check` uses 0 to stay fast)."""
    configuration = k8s.Configuration()
    configuration.retries = retries
    command = _text(environ, TOKEN_COMMAND_ENV)
    token_file = _text(environ, TOKEN_FILE_ENV)
    if kubeconfig is not None or (command is None and token_file is None):
        _refuse_stray_token_settings(environ, kubeconfig)
        source, detail = _load_builtin(kubeconfig, environ, configuration)
    else:
        if command is not None and token_file is not None:
            raise ConfigError([f"{TOKEN_COMMAND_ENV} and {TOKEN_FILE_ENV} are both set: use one"])
        _server_settings(environ, configuration)
        if command is not None:
            runner = TokenCommand(command, clock=clock)
            _install(configuration, runner.token_now(), runner.refresh_hook)
            source, detail = "token-command", f"token command {command!r}"
        else:
            assert token_file is not None
            reader = TokenFile(token_file, clock=clock)
            _install(configuration, reader.token_now(), reader.refresh_hook)
            source, detail = "token-file", f"token file {token_file}"
        detail += f", server {configuration.host}"
    return KubeCredentials(
        client=k8s.ApiClient(configuration),
        source=source,
        detail=detail,
        server=str(configuration.host),
    )


def _text(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value.strip() if value is not None and value.strip() else None


def _refuse_stray_token_settings(environ: Mapping[str, str], kubeconfig: str | None) -> None:
    """Token settings that would be ignored are a mistake worth one clear line."""
    if kubeconfig is not None:
        for name in (TOKEN_COMMAND_ENV, TOKEN_FILE_ENV):
            if _text(environ, name) is not None:
                raise ConfigError([f"--kubeconfig and {name} are both given: use one"])
    for name in (SERVER_ENV, CA_FILE_ENV):
        if _text(environ, name) is not None:
            raise ConfigError(
                [f"{name} is set but neither {TOKEN_FILE_ENV} nor {TOKEN_COMMAND_ENV} is"]
            )


def _load_builtin(
    kubeconfig: str | None, environ: Mapping[str, str], configuration: Any
) -> tuple[str, str]:
    """In-cluster service account when in a pod, else `kubeconfig`, KUBECONFIG, ~/.kube/config
    (what client.load_api_client does)."""
    token_path = SERVICE_ACCOUNT_DIR / "token"
    in_pod = kubeconfig is None and "KUBERNETES_SERVICE_HOST" in environ and token_path.exists()
    where = kubeconfig or environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        if in_pod:
            InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=str(token_path),
                cert_filename=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
                environ=dict(environ),
            ).load_and_set(configuration)
            return "in-cluster", "in-cluster service account"
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.path.expanduser(where), client_configuration=configuration
        )
    except (k8s_config.ConfigException, OSError, ValueError, TypeError) as e:
        if in_pod:
            raise ConfigError([f"Kubernetes credentials: {e} (in a pod: service account)"]) from e
        raise ConfigError(
            [f"Kubernetes credentials: {e} (not in a pod; tried kubeconfig {where})"]
        ) from e
    return "kubeconfig", f"kubeconfig {where}, server {configuration.host}"


def _server_settings(environ: Mapping[str, str], configuration: Any) -> None:
    server = _text(environ, SERVER_ENV)
    using = TOKEN_COMMAND_ENV if _text(environ, TOKEN_COMMAND_ENV) else TOKEN_FILE_ENV
    if server is None:
        raise ConfigError(
            [f"{using} needs {SERVER_ENV}, the API server's URL (e.g. https://10.0.0.1:6443)"]
        )
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError([f"{SERVER_ENV}={server!r}: expected https://host[:port]"])
    configuration.host = server.rstrip("/")
    ca_file = _text(environ, CA_FILE_ENV)
    insecure_raw = (_text(environ, INSECURE_ENV) or "false").lower()
    if insecure_raw not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ConfigError([f"{INSECURE_ENV}={insecure_raw!r}: expected true or false"])
    insecure = insecure_raw in ("1", "true", "yes", "on")
    if ca_file is not None and insecure:
        raise ConfigError([f"{CA_FILE_ENV} and {INSECURE_ENV}=true are both set: use one"])
    if ca_file is not None:
        if not Path(ca_file).is_file():
            raise ConfigError([f"{CA_FILE_ENV}={ca_file!r}: no such file"])
        configuration.ssl_ca_cert = ca_file
    if insecure:
        configuration.verify_ssl = False


def _install(configuration: Any, token: str, hook: Callable[[Any], None]) -> None:
    configuration.api_key = {"authorization": f"Bearer {token}"}
    # Called by the client before every request: it may put a fresh token in place.
    configuration.refresh_api_key_hook = hook


class TokenFile:
    """A token file, re-read when its mtime, size or inode changes (or every minute)."""

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._read_at = 0.0
        self._token = ""

    def token_now(self) -> str:
        """Read the file at start: a problem is a ConfigError."""
        try:
            self._read()
        except (OSError, ValueError) as e:
            raise ConfigError([f"{TOKEN_FILE_ENV}={str(self.path)!r}: {_why(e)}"]) from e
        return self._token

    def _read(self) -> None:
        st = self.path.stat()
        text = self.path.read_text(encoding="utf-8").strip()
        if not text:
            raise ValueError("the file is empty")
        if any(c.isspace() for c in text):
            raise ValueError("the file holds more than one token (whitespace inside)")
        self._token = text
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        self._read_at = self._clock()

    def refresh_hook(self, configuration: Any) -> None:
        with self._lock:
            try:
                st = self.path.stat()
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
                stale = self._clock() - self._read_at >= TOKEN_FILE_RECHECK_S
                if stamp != self._stamp or stale:
                    self._read()
                    logger.debug("token file read", extra={"path": str(self.path)})
            except (OSError, ValueError) as e:
                # Mid-rotation, or gone: keep the token we have; the server judges it.
                logger.warning(
                    "token file unreadable, keeping the token read before",
                    extra={"path": str(self.path), "error": _why(e)},
                )
            configuration.api_key = {"authorization": f"Bearer {self._token}"}


class TokenCommand:
    """A command that prints a token (kubectl create token); run again before the token ends."""

    def __init__(
        self,
        command: str,
        *,
        clock: Callable[[], float] = time.time,
        timeout_s: float = COMMAND_TIMEOUT_S,
        refresh_fraction: float = REFRESH_FRACTION,
        refresh_margin_s: float = REFRESH_MARGIN_S,
    ) -> None:
        self.command = command
        try:
            self.argv = shlex.split(command)
        except ValueError as e:
            raise ConfigError([f"{TOKEN_COMMAND_ENV}={command!r}: cannot split it: {e}"]) from e
        if not self.argv:
            raise ConfigError([f"{TOKEN_COMMAND_ENV} is empty"])
        self._clock = clock
        self._timeout_s = timeout_s
        self._fraction = refresh_fraction
        self._margin_s = refresh_margin_s
        self._lock = threading.Lock()
        self._token: str | None = None
        self.expires_at: float | None = None
        self.refresh_at = 0.0
        # How many times the command ran (tests, logs).
        self.runs = 0

    def token_now(self) -> str:
        """The token, running the command when there is none or it is due; ConfigError when
        the command fails and no valid token is cached."""
        with self._lock:
            now = self._clock()
            if self._token is not None and now < self.refresh_at:
                return self._token
            try:
                self._run(now)
            except ConfigError as e:
                if self._token is None or not self._still_valid(now):
                    raise
                self.refresh_at = now + FAILED_REFRESH_RETRY_S
                logger.warning(
                    "token command failed; the cached token is still valid, retrying later",
                    extra={"error": e.problems[0], "retry_s": FAILED_REFRESH_RETRY_S},
                )
            assert self._token is not None
            return self._token

    def _still_valid(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at

    def refresh_hook(self, configuration: Any) -> None:
        try:
            token = self.token_now()
        except ConfigError as e:
            # Inside a request: surface as an authentication failure the watch loop handles.
            raise KubeError(401, "TokenCommandFailed", e.problems[0]) from e
        configuration.api_key = {"authorization": f"Bearer {token}"}

    def _run(self, now: float) -> None:
        name = f"{TOKEN_COMMAND_ENV} {self.command!r}"
        try:
            proc = subprocess.run(  # noqa: S603 - the operator's own command, no shell
                self.argv, capture_output=True, text=True, timeout=self._timeout_s, check=False
            )
        except FileNotFoundError as e:
            raise ConfigError([f"{name}: {self.argv[0]!r} not found on PATH"]) from e
        except subprocess.TimeoutExpired as e:
            raise ConfigError([f"{name}: no answer within {self._timeout_s:g} s"]) from e
        except OSError as e:
            raise ConfigError([f"{name}: cannot run it: {e.strerror or e}"]) from e
        self.runs += 1
        if proc.returncode != 0:
            err = " ".join(proc.stderr.split())[-STDERR_EXCERPT_CHARS:] or "(no stderr)"
            raise ConfigError([f"{name} failed (exit {proc.returncode}): {err}"])
        token = proc.stdout.strip()
        if not token or any(c.isspace() for c in token):
            raise ConfigError([f"{name} printed no single token on stdout"])
        exp, iat = jwt_times(token)
        self._token = token
        self.expires_at = exp
        if exp is None:
            self.refresh_at = now + UNKNOWN_EXPIRY_REFRESH_S
        else:
            issued = iat if iat is not None and iat <= now else now
            lifetime = max(0.0, exp - issued)
            self.refresh_at = exp - max(self._fraction * lifetime, self._margin_s)
        logger.debug(
            "token command ran",
            extra={"runs": self.runs, "expires_in_s": None if exp is None else round(exp - now)},
        )


def jwt_times(token: str) -> tuple[float | None, float | None]:
    """(exp, iat) of a JWT's payload (base64url JSON), unverified; None where unreadable."""
    parts = token.split(".")
    if len(parts) != 3:
        return None, None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None, None
    if not isinstance(claims, dict):
        return None, None
    return _number(claims.get("exp")), _number(claims.get("iat"))


def _number(value: object) -> float | None:
    """A claim's epoch seconds, when it is a finite time this side of year 5000 (json.loads
    takes NaN, Infinity and 400-digit integers; float() of the last raises)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < MAX_EPOCH_S:
        return float(value)
    return None


def _why(e: Exception) -> str:
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)
