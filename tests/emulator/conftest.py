"""Fixtures of the emulator tests: a started KubeEmulator (bookmarks every 0.2 s) and the
official client's CoreV1Api bound to it. Modules that need another emulator (the lease and
authz tests) define their own `emu`, which takes precedence."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.support.fakes.kubeapi import KubeEmulator


@pytest.fixture
def emu() -> Iterator[KubeEmulator]:
    with KubeEmulator(bookmark_interval_s=0.2) as e:
        yield e


@pytest.fixture
def core(emu: KubeEmulator) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(emu.api_client())
