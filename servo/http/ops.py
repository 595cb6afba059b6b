"""The operations endpoint: `/metrics` (Prometheus text format), `/healthz`, `/readyz`.

/healthz answers 200 while the servo's loops run (the kubelet restarts the pod otherwise);
/readyz answers 200 once every watched scope was listed and its watch is current (a stream is
open or was within the idle timeout). Both say why in a small JSON body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from servo.http.server import BodyHandler, ServedEndpoint

logger = logging.getLogger(__name__)

# (ok, details) for a probe.
Probe = Callable[[], tuple[bool, Mapping[str, Any]]]


class OpsServer(ServedEndpoint):
    thread_name = "ops-http"

    def __init__(
        self, registry: CollectorRegistry, *, health: Probe, ready: Probe, bind: str, port: int
    ) -> None:
        super().__init__(bind=bind, port=port)
        self.registry, self.health, self.ready = registry, health, ready

    def handler(self) -> type[_Handler]:
        owner = self

        class Handler(_Handler):
            ops = owner

        return Handler

    def start(self) -> None:
        super().start()
        logger.info("metrics and probes listening", extra={"port": self.port})


class _Handler(BodyHandler):
    ops: OpsServer
    server_version = "servo-ops"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # probes every few seconds would drown the log

    def _probe(self, probe: Probe) -> None:
        try:
            ok, details = probe()
        except Exception as e:  # noqa: BLE001 - a probe that fails says so, it does not crash
            ok, details = False, {"error": str(e)}
        self.send_json(200 if ok else 503, {"status": "ok" if ok else "failing", **details})

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self.send_body(200, generate_latest(self.ops.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._probe(self.ops.health)
        elif path == "/readyz":
            self._probe(self.ops.ready)
        else:
            self.send_json(404, {"error": "try /metrics, /healthz or /readyz"})
