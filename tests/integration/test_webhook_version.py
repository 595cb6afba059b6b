"""Which sidecar style the webhook injects: the cluster's version as read through the official
client (from the API emulator, or unreadable), and the configuration that overrides it."""

from __future__ import annotations

import pytest

from servo.webhook.cli import server_version
from servo.webhook.config import load_webhook_config, use_native_sidecar
from tests.support.fakes.kubeapi import KubeEmulator


# The official client asks GET /version/ (trailing slash), as real API servers answer it.
def test_cluster_version_is_read_from_the_emulator() -> None:
    with KubeEmulator() as emu:
        version = server_version(emu.api_client())

    assert version == (1, 30)
    assert use_native_sidecar(load_webhook_config({}), version) is True


def test_unreadable_version_means_plain_containers() -> None:
    from kubernetes import client as k8s

    cfg = k8s.Configuration()
    cfg.host = "http://127.0.0.1:9"  # discard port: connection refused
    assert server_version(k8s.ApiClient(cfg)) is None


@pytest.mark.parametrize(
    ("env", "server", "native"),
    [
        ({}, (1, 30), True),
        ({}, (1, 29), True),
        ({}, (1, 28), False),
        ({}, None, False),  # unknown: the style that works everywhere
        ({"OPTUNE_K8S_VERSION": "1.28"}, (1, 30), False),
        ({"OPTUNE_K8S_VERSION": "v1.33.2"}, None, True),
        ({"OPTUNE_SIDECAR_STYLE": "plain"}, (1, 33), False),
        ({"OPTUNE_SIDECAR_STYLE": "native"}, None, True),
    ],
)
def test_sidecar_style_by_version_or_configuration(
    env: dict[str, str], server: tuple[int, int] | None, native: bool
) -> None:
    assert use_native_sidecar(load_webhook_config(env), server) is native
