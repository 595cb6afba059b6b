"""Kubernetes credentials, in a pod or outside one: where the servo's API client gets its token.

`api_client_for` takes the first of: `--kubeconfig FILE` (and/or `--context NAME`);
OPTUNE_KUBE_TOKEN_COMMAND or OPTUNE_KUBE_TOKEN_FILE (`tokens.py`; both need OPTUNE_KUBE_SERVER,
and take OPTUNE_KUBE_CA_FILE or OPTUNE_KUBE_INSECURE=true); KUBECONFIG; the pod's service
account; ~/.kube/config. Problems raise ConfigError with one line each (NoCredentialsError when
there is nothing to use at all); no token text is ever logged.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.incluster_config import InClusterConfigLoader
from kubernetes.config.kube_config import KubeConfigMerger

from servo.core.errors import ConfigError
from servo.kube.tokens import TOKEN_COMMAND_ENV, TOKEN_FILE_ENV, TokenCommand, TokenFile

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVER_ENV = "OPTUNE_KUBE_SERVER"
CA_FILE_ENV = "OPTUNE_KUBE_CA_FILE"
INSECURE_ENV = "OPTUNE_KUBE_INSECURE"

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


class NoCredentialsError(ConfigError):
    """No credential source applies at all (not in a pod, no kubeconfig, no token settings):
    something to provide, not a setting to correct."""


def api_client_for(
    kubeconfig: str | None, environ: Mapping[str, str], *, context: str | None = None
) -> k8s.ApiClient:
    """The API client for the first credential source that applies (see the module doc)."""
    return load_credentials(kubeconfig, environ, context=context).client


def load_credentials(
    kubeconfig: str | None,
    environ: Mapping[str, str],
    *,
    context: str | None = None,
    retries: int | None = None,
    clock: Callable[[], float] = time.time,
) -> KubeCredentials:
    """Like api_client_for, with the source named. `kubeconfig` and `context` are the
    --kubeconfig and --context flags; `retries` caps urllib3's retries per request (None: its
    default; `servo check` uses 0 to stay fast)."""
    configuration = k8s.Configuration()
    configuration.retries = retries
    command = _text(environ, TOKEN_COMMAND_ENV)
    token_file = _text(environ, TOKEN_FILE_ENV)
    flags = kubeconfig is not None or context is not None
    if flags or (command is None and token_file is None):
        _refuse_stray_token_settings(environ, kubeconfig=kubeconfig, context=context)
        source, detail = _load_builtin(kubeconfig, context, environ, configuration)
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


def _refuse_stray_token_settings(
    environ: Mapping[str, str], *, kubeconfig: str | None, context: str | None
) -> None:
    """Token settings that would be ignored are a mistake worth one clear line."""
    flag = "--kubeconfig" if kubeconfig is not None else "--context" if context else None
    if flag is not None:
        for name in (TOKEN_COMMAND_ENV, TOKEN_FILE_ENV):
            if _text(environ, name) is not None:
                raise ConfigError([f"{flag} and {name} are both given: use one"])
    for name in (SERVER_ENV, CA_FILE_ENV):
        if _text(environ, name) is not None:
            raise ConfigError(
                [f"{name} is set but neither {TOKEN_FILE_ENV} nor {TOKEN_COMMAND_ENV} is"]
            )


def home_kubeconfig(environ: Mapping[str, str]) -> Path:
    """~/.kube/config, with HOME from `environ` when it has one."""
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".kube" / "config"


def in_pod(environ: Mapping[str, str]) -> bool:
    """Running in a pod with a service-account token mounted (what the client checks too)."""
    return "KUBERNETES_SERVICE_HOST" in environ and (SERVICE_ACCOUNT_DIR / "token").exists()


def _kubeconfig_files(kubeconfig: str | None, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(the files to load, joined as KUBECONFIG joins them; how they were named) by kubectl's
    order: --kubeconfig, then KUBECONFIG (a list, as kubectl reads it), then ~/.kube/config;
    None when only the last applies and it does not exist."""
    if kubeconfig is not None:
        path = os.path.expanduser(kubeconfig)
        if not Path(path).is_file():
            raise ConfigError([f"--kubeconfig {kubeconfig}: no such file"])
        return path, f"kubeconfig {kubeconfig}"
    listed = _text(environ, "KUBECONFIG")
    if listed is not None:
        paths = [os.path.expanduser(p) for p in listed.split(os.pathsep) if p]
        found = [p for p in paths if Path(p).is_file()]
        if not found:
            raise ConfigError([f"KUBECONFIG={listed!r}: no such file"])
        return os.pathsep.join(found), f"kubeconfig {os.pathsep.join(found)} (KUBECONFIG)"
    home = home_kubeconfig(environ)
    return (str(home), f"kubeconfig {home}") if home.is_file() else None


def _load_builtin(
    kubeconfig: str | None,
    context: str | None,
    environ: Mapping[str, str],
    configuration: Any,
) -> tuple[str, str]:
    """--kubeconfig, KUBECONFIG, the in-cluster service account (in a pod), ~/.kube/config:
    the order of controller-runtime, so that a KUBECONFIG set in a pod is used as kubectl
    would use it. --context picks a kubeconfig context (never the in-cluster account)."""
    explicit = kubeconfig is not None or context is not None or _text(environ, "KUBECONFIG")
    if not explicit and in_pod(environ):
        token_path = SERVICE_ACCOUNT_DIR / "token"
        try:
            InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=str(token_path),
                cert_filename=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
                environ=dict(environ),
            ).load_and_set(configuration)
        except (k8s_config.ConfigException, OSError, ValueError, TypeError) as e:
            raise ConfigError([f"in-cluster credentials unusable: {e}"]) from e
        return "in-cluster", "in-cluster service account"
    files = _kubeconfig_files(kubeconfig, environ)
    if files is None:
        looked = f"--kubeconfig, KUBECONFIG, {home_kubeconfig(environ)}"
        if context is not None:
            raise NoCredentialsError(
                [f"--context {context}: no kubeconfig to take it from ({looked})"]
            )
        raise NoCredentialsError(
            [
                f"no Kubernetes credentials: not in a pod and no kubeconfig ({looked}), "
                f"nor {TOKEN_FILE_ENV} or {TOKEN_COMMAND_ENV}"
            ]
        )
    path, where = files
    try:
        _check_context(path, where, context)
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=configuration
        )
    except (k8s_config.ConfigException, OSError, ValueError, TypeError, AttributeError) as e:
        raise ConfigError([f"{where}: unusable: {e}"]) from e
    chosen = f", context {context}" if context else ""
    return "kubeconfig", f"{where}{chosen}, server {configuration.host}"


def _check_context(path: str, where: str, context: str | None) -> None:
    """A context that is not there (or no current-context) named with the ones that are (the
    client would say only "Expected key current-context")."""
    merged = KubeConfigMerger(path).config  # type: ignore[no-untyped-call]
    doc = merged.value if merged is not None else None
    if not isinstance(doc, dict):
        return  # the loader says what is wrong with it
    # Merged entries are the client's ConfigNode wrappers around each dict.
    entries = [getattr(c, "value", c) for c in doc.get("contexts") or []]
    names = [str(e.get("name")) for e in entries if isinstance(e, dict)]
    have = ", ".join(names) or "none"
    if context is not None and context not in names:
        raise ConfigError([f"--context {context}: {where} has no such context (it has: {have})"])
    if context is None and not doc.get("current-context"):
        raise ConfigError([f"{where} has no current-context: pass --context (one of: {have})"])


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
