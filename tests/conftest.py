"""Shared fixtures: the recording backend and, when present, the Kubernetes API emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fakes.backend import RecordingBackend


@pytest.fixture
def backend() -> Iterator[RecordingBackend]:
    with RecordingBackend() as b:
        yield b
