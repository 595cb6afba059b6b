"""Fixtures of the integration tests: the API emulator and a servo running in a thread."""

from tests.integration.harness import emu, start_servo

__all__ = ["emu", "start_servo"]
