"""The admission webhook: AdmissionReview v1 in, a base64 JSON Patch out, over HTTPS.

Owns the decision per review (`Admitter`) and the WHATS_NEXT exchange with the backend before
a job pod starts (`Exchange`). The patch itself is built by admission.py (pure), the HTTPS
server is server.py, the configuration config.py, certificates
tls.py. It never rejects a pod: every answer is `allowed: true`, failures only cost the
patch.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from tenacity import wait_none

from servo.core.appid import resolve_app_id
from servo.core.errors import ReportError
from servo.core.models import Event
from servo.core.patches import guard_patch
from servo.system.config import Config
from servo.system.config_sections import ReportConfig
from servo.webhook.admission import (
    Adjustment,
    MonitorSpec,
    Ranges,
    build_adjustment,
    build_description,
    has_monitor,
    is_windows,
    job_container,
    monitor_patch,
)
from servo.webhook.config import API_VERSIONS, MAX_WHATS_NEXT, MIN_SEND_S
from servo.webhook.metrics import WebhookMetrics

logger = logging.getLogger(__name__)

# -- the review ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Review:
    """The parts of an AdmissionReview request the decision needs."""

    uid: str
    api_version: str
    operation: str
    namespace: str
    kind: str
    subresource: str
    dry_run: bool
    pod: Mapping[str, Any]


# Where the ids of an undecodable review are looked for: the envelope comes before the object.
_SCAN_BYTES = 64 * 1024
_REQUEST_UID = re.compile(rb'"request"\s*:\s*\{\s*"uid"\s*:\s*"([A-Za-z0-9-]{1,64})"')
_API_VERSION = re.compile(rb'"apiVersion"\s*:\s*"(admission\.k8s\.io/v1(?:beta1)?)"')
INTERNAL_ERROR_WARNING = "servo webhook: internal error; pod admitted unchanged"


class BadReviewError(ValueError):
    """Not an AdmissionReview we can act on; `uid` is echoed when the body had one.
    `review`: False when the body is no review at all (not a JSON object with a request)."""

    def __init__(
        self,
        message: str,
        *,
        uid: str = "",
        api_version: str = API_VERSIONS[0],
        review: bool = True,
    ) -> None:
        super().__init__(message)
        self.uid = uid
        self.api_version = api_version
        self.review = review


def parse_review(raw: bytes) -> Review:
    """PURE: decode an AdmissionReview; raise BadReviewError saying what is wrong."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadReviewError(f"body is not JSON: {e}", review=False) from e
    except RecursionError as e:
        # JSON nested deeper than Python's recursion limit (the API server allows more).
        seen_uid, seen_version = scan_review_ids(raw)
        raise BadReviewError(
            "body nested too deeply to decode", uid=seen_uid, api_version=seen_version
        ) from e
    if not isinstance(doc, dict) or not isinstance(doc.get("request"), dict):
        raise BadReviewError("body is not an AdmissionReview (no request)", review=False)
    api_version = doc.get("apiVersion")
    api_version = api_version if api_version in API_VERSIONS else API_VERSIONS[0]
    request = doc["request"]
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReviewError("no request.uid", api_version=api_version)
    if doc.get("kind") != "AdmissionReview":
        raise BadReviewError(
            f"kind {doc.get('kind')!r} is not AdmissionReview", uid=uid, api_version=api_version
        )
    kind = request.get("kind")
    obj = request.get("object")
    return Review(
        uid=uid,
        api_version=api_version,
        operation=str(request.get("operation") or ""),
        namespace=str(request.get("namespace") or ""),
        kind=str(kind.get("kind") or "") if isinstance(kind, dict) else "",
        subresource=str(request.get("subResource") or ""),
        dry_run=request.get("dryRun") is True,
        pod=obj if isinstance(obj, dict) else {},
    )


def scan_review_ids(raw: bytes) -> tuple[str, str]:
    """PURE: (request uid or "", apiVersion) read from the raw bytes of a review that cannot
    be decoded, as the API server writes it (request.uid first), so the answer still matches."""
    head = raw[:_SCAN_BYTES]
    uid = _REQUEST_UID.search(head)
    version = _API_VERSION.search(head)
    return (
        uid.group(1).decode() if uid else "",
        version.group(1).decode() if version else API_VERSIONS[0],
    )


def review_response(
    *,
    uid: str,
    api_version: str = API_VERSIONS[0],
    ops: list[Any] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """PURE: the AdmissionReview answer; always allowed, a JSONPatch only when there are ops."""
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if ops:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
    if warnings:
        response["warnings"] = warnings
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def decode_patch(response: Mapping[str, Any]) -> list[Any]:
    """The JSON Patch of an AdmissionReview answer ([] when none): for tests and logs."""
    patch = response.get("response", {}).get("patch")
    if not patch:
        return []
    try:
        ops = json.loads(base64.b64decode(patch, validate=True))
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"patch is not base64 JSON: {e}") from e
    return ops if isinstance(ops, list) else []


# -- the exchange -------------------------------------------------------------------------

Sender = Callable[[Event, float], Any]


class _OutOfTimeError(Exception):
    pass


class ReporterSender:
    """Sends one event through servo.report.reporter.Reporter, one try, timed to the time left."""

    def __init__(self, cfg: ReportConfig) -> None:
        import requests

        from servo.report.reporter import Reporter

        self._cfg = cfg
        self._reporter_cls = Reporter
        self._session = requests.Session()

    def __call__(self, event: Event, timeout_s: float) -> Any:
        # One attempt (deadline 0): a retry would not fit in the budget.
        cfg = replace(self._cfg, timeout_s=timeout_s, deadline_s=0.0, max_backoff_s=0.0)
        reporter = self._reporter_cls(cfg, session=self._session, wait=wait_none())
        return reporter.send(event, deadline_s=0.0)


class Exchange:
    """WHATS_NEXT for one app id before its pod starts: DESCRIBE, ADJUST, MEASURE or SLEEP."""

    def __init__(
        self,
        send: Sender,
        *,
        budget_s: float,
        ranges: Ranges,
        clock: Callable[[], float] = time.monotonic,
        metrics: WebhookMetrics | None = None,
    ) -> None:
        self._send = send
        self._budget_s = budget_s
        self._ranges = ranges
        self._clock = clock
        self._metrics = metrics

    def run(
        self,
        *,
        review_uid: str,
        app_id: str,
        pod: Mapping[str, Any],
        index: int,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> Adjustment | None:
        """The adjustment the backend asked for, or None; never raises for backend trouble."""
        adj, outcome = self._exchange(
            review_uid=review_uid, app_id=app_id, pod=pod, index=index, log=log
        )
        if self._metrics is not None:
            self._metrics.exchanged(outcome)
        return adj

    def _exchange(
        self,
        *,
        review_uid: str,
        app_id: str,
        pod: Mapping[str, Any],
        index: int,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> tuple[Adjustment | None, str]:
        """(the adjustment or None, the outcome for the metrics)."""
        deadline = self._clock() + self._budget_s
        n = 0

        def send(name: str, param: Any) -> Any:
            nonlocal n
            left = deadline - self._clock()
            if left < MIN_SEND_S:
                raise _OutOfTimeError
            n += 1
            return self._send(Event(f"{review_uid}:{name}:{n}", name, app_id, param), left)

        try:
            for _ in range(MAX_WHATS_NEXT):
                reply = send("WHATS_NEXT", None)
                cmd = reply.get("cmd") if isinstance(reply, dict) else None
                log.debug("backend answered", extra={"cmd": cmd})
                if cmd == "DESCRIBE":
                    send("DESCRIPTION", build_description(job_container(pod, index), self._ranges))
                    continue
                if cmd == "ADJUST":
                    adj = build_adjustment(
                        pod, reply.get("param"), index=index, ranges=self._ranges
                    )
                    log.info(
                        "adjust asked",
                        extra={
                            "status": adj.reply.get("status"),
                            "reason": adj.reply.get("reason"),
                        },
                    )
                    self._reply_adjustment(send, adj, log)
                    return (adj, "adjusted") if adj.ok else (None, "no-adjustment")
                if cmd not in ("MEASURE", "SLEEP"):
                    log.warning("backend answered an unknown command", extra={"cmd": str(cmd)})
                return None, "no-adjustment"
            log.warning("backend kept asking to DESCRIBE; pod goes on unchanged")
            return None, "describe-loop"
        except _OutOfTimeError:
            log.warning(
                "backend exchange out of time; pod goes on unchanged",
                extra={"budget_s": self._budget_s},
            )
            return None, "out-of-time"
        except ReportError as e:
            log.warning(
                "backend exchange failed; pod goes on unchanged",
                extra={"status": e.status, "error": str(e)},
            )
            return None, "backend-error"

    @staticmethod
    def _reply_adjustment(
        send: Callable[[str, Any], Any], adj: Adjustment, log: logging.LoggerAdapter[logging.Logger]
    ) -> None:
        # The backend asked; the pod gets the settings even if the ADJUSTMENT is not delivered.
        try:
            send("ADJUSTMENT", adj.reply)
        except (ReportError, _OutOfTimeError) as e:
            log.warning("ADJUSTMENT not delivered", extra={"error": str(e) or "out of time"})


# -- the decision -------------------------------------------------------------------------


class Admitter:
    """Turns one AdmissionReview body into its answer (thread-safe: no shared mutable state)."""

    def __init__(
        self,
        cfg: Config,
        *,
        monitor: MonitorSpec,
        exchange: Exchange | None,
        metrics: WebhookMetrics | None = None,
    ) -> None:
        self.cfg = cfg
        self.monitor = monitor
        self.exchange = exchange
        self.metrics = metrics

    def review(self, raw: bytes) -> dict[str, Any]:
        """The answer to one review body (see `answer`)."""
        return self.answer(raw)[1]

    def answer(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) for one request body; never raises, never rejects a pod: 200
        with an AdmissionReview answer (allowed, a warning when something went wrong), or 400
        when the body is no review at all."""
        started = time.monotonic()
        try:
            status, answer, result = self._answer(raw)
        except Exception:  # noqa: BLE001 - the pod is let through whatever went wrong
            uid, api_version = scan_review_ids(raw)
            logger.exception("admission failed; pod allowed unchanged", extra={"uid": uid})
            answer = review_response(
                uid=uid, api_version=api_version, warnings=[INTERNAL_ERROR_WARNING]
            )
            status, result = 200, "failed"
        try:
            if self.metrics is not None:
                self.metrics.reviewed(result, time.monotonic() - started)
        except Exception:  # noqa: BLE001 - a metrics failure must not cost the answer
            logger.exception("webhook metrics failed", extra={"result": result})
        return status, answer

    def _answer(self, raw: bytes) -> tuple[int, dict[str, Any], str]:
        try:
            review = parse_review(raw)
        except BadReviewError as e:
            logger.warning("malformed admission review", extra={"error": str(e), "uid": e.uid})
            if not e.review:
                return 400, {"error": f"{e}"[:200]}, "malformed"
            warning = f"servo webhook: {e}"[:120]
            answer = review_response(uid=e.uid, api_version=e.api_version, warnings=[warning])
            return 200, answer, "malformed"
        try:
            ops, result = self.ops_for(review)
            return (
                200,
                review_response(uid=review.uid, api_version=review.api_version, ops=ops),
                result,
            )
        except Exception:  # noqa: BLE001 - deep JSON, odd fields: the pod goes through unchanged
            logger.exception("admission failed; pod allowed unchanged", extra={"uid": review.uid})
        return (
            200,
            review_response(
                uid=review.uid, api_version=review.api_version, warnings=[INTERNAL_ERROR_WARNING]
            ),
            "failed",
        )

    def ops_for(self, review: Review) -> tuple[list[Any], str]:
        """The JSON Patch for a review (the monitor and the backend's adjustment, or []) and
        what it does, for the metrics."""
        pod = review.pod
        raw_meta = pod.get("metadata")
        meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        name = str(meta.get("name") or meta.get("generateName") or "")
        log = logging.LoggerAdapter(
            logger, {"pod": f"{review.namespace}/{name}", "uid": review.uid}
        )
        if review.operation != "CREATE" or review.kind != "Pod" or review.subresource:
            return [], "skipped"
        watched = self.cfg.watch.namespaces
        if not self.cfg.watch.all_namespaces and review.namespace not in watched:
            log.debug("namespace not watched")
            return [], "not-watched"
        found = resolve_app_id(pod, self.cfg.app_id)
        if found.value is None:
            log.debug("not a job pod", extra={"why": found.why})
            return [], "not-a-job"
        if is_windows(pod):
            log.info("windows pod: no monitor")
            return [], "skipped"
        ops: list[Any] = []
        if not has_monitor(pod, self.monitor.name):
            ops += monitor_patch(pod, self.monitor)
        if self.cfg.guard.enabled:
            # Kept until the servo has the measurement in its outbox (OPTUNE_FINALIZER_GUARD).
            ops += guard_patch(pod)
        if self.exchange is not None and not review.dry_run:
            adj = self.exchange.run(
                review_uid=review.uid,
                app_id=found.value,
                pod=pod,
                index=self.cfg.app_id.job_container_index,
                log=log,
            )
            if adj is not None:
                ops += adj.ops
        log.info("job pod admitted", extra={"job": found.value, "ops": len(ops)})
        return ops, "patched" if ops else "unchanged"
