"""Fixtures of the monitor's unit tests."""

from tests.unit.mon.monproc import start

__all__ = ["start"]
