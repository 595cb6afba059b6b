"""Kubernetes credentials, in a pod or outside one: where the servo's API client gets its token.

`api_client_for` takes the first of: `--kubeconfig FILE`; OPTUNE_KUBE_TOKEN_COMMAND or
OPTUNE_KUBE_TOKEN_FILE (`tokens.py`; both need OPTUNE_KUBE_SERVER, and take OPTUNE_KUBE_CA_FILE
or OPTUNE_KUBE_INSECURE=true); the pod's service account; KUBECONFIG, else ~/.kube/config.
Problems raise ConfigError with one line each; no token text is ever logged.
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
