"""The admission webhook's decision: AdmissionReview v1 in, a base64 JSON Patch out.

`Admitter` answers each review; the WHATS_NEXT exchange is exchange.py, the patch admission.py
(pure), the HTTPS server server.py, certificates tls.py. It never rejects a pod: every answer
is `allowed: true`, failures only cost the patch.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from servo.core.appid import resolve_app_id
from servo.core.patches import guard_patch
from servo.system.config import Config
from servo.webhook.admission import (
    MonitorSpec,
    has_monitor,
    is_windows,
    monitor_patch,
)
from servo.webhook.config import API_VERSIONS
from servo.webhook.exchange import Exchange
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
