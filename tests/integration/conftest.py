"""Fixtures of the integration tests: the API emulator and a servo running in a thread, the
webhook's test CA and running webhook, and the collector the page tests open."""

from tests.support.harness import emu, start_servo
from tests.support.pagekit import collector
from tests.support.webhookkit import start_hook, tls

__all__ = ["collector", "emu", "start_hook", "start_servo", "tls"]
