"""The servo's two listeners: the stats receiver (monitors' POSTs) and the ops endpoint
(/metrics, /healthz, /readyz). Either failing to listen is logged and the servo goes on."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from servo.http.ops import OpsServer
from servo.run.probes import ServoProbes
from servo.run.receiver import Accept, StatsReceiver
from servo.system.config import Config

logger = logging.getLogger(__name__)


class Servers:
    def __init__(
        self,
        cfg: Config,
        accept: Accept,
        registry: CollectorRegistry,
        probes: ServoProbes,
        *,
        listen: bool = True,
    ) -> None:
        self._cfg, self._accept, self._registry, self._probes = cfg, accept, registry, probes
        self._listen = listen  # False: neither is started (the benches drive the servo)
        self.receiver: StatsReceiver | None = None
        self.ops: OpsServer | None = None

    def start_receiver(self) -> None:
        if not self._listen:
            return
        stats = self._cfg.stats
        receiver = StatsReceiver(self._accept, bind=stats.bind, port=stats.port)
        try:
            receiver.start()
        except OSError as e:
            # Termination messages still bring stats; only the POST channel is lost.
            logger.error(
                "stats receiver cannot listen; monitors' POSTs will fail, termination messages"
                " still work",
                extra={"bind": stats.bind, "port": stats.port, "error": str(e)},
            )
            return
        self.receiver = receiver

    def start_ops(self) -> None:
        if not self._listen:
            return
        cfg = self._cfg.metrics
        ops = OpsServer(
            self._registry,
            health=self._probes.health,
            ready=self._probes.ready,
            bind=cfg.bind,
            port=cfg.port,
        )
        try:
            ops.start()
        except OSError as e:
            logger.error(
                "metrics and probes cannot listen", extra={"port": cfg.port, "error": str(e)}
            )
            return
        self.ops = ops

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
        if self.ops is not None:
            self.ops.stop()
