"""Fixtures of the monitor's unit tests."""

from tests.support.monproc import start

__all__ = ["start"]
