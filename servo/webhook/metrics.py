"""The admission webhook's Prometheus metrics: reviews by what their answer did, the time to
answer one (the API server waits 5 s at most, then lets the pod through unchanged), and the
WHATS_NEXT exchanges with the backend by outcome. Served on the metrics port by OpsServer.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# What an answer did: patched (monitor, guard or adjustment added), unchanged (a job pod with
# nothing to add), not-a-job, not-watched (namespace), skipped (not a pod CREATE, Windows),
# malformed (not an AdmissionReview), failed (a bug: the pod was let through unchanged).
REVIEW_RESULTS = (
    "patched",
    "unchanged",
    "not-a-job",
    "not-watched",
    "skipped",
    "malformed",
    "failed",
)
# What a WHATS_NEXT exchange came to: adjusted (the pod got the backend's settings), no
# adjustment (MEASURE, SLEEP, an ADJUST that could not apply), out of time (the 2 s budget),
# backend error, describe loop (DESCRIBE asked too often).
EXCHANGE_OUTCOMES = ("adjusted", "no-adjustment", "out-of-time", "backend-error", "describe-loop")
REVIEW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)


class WebhookMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reviews = Counter(
            "servo_webhook_reviews",
            "AdmissionReviews answered, by what the answer did",
            ["result"],
            registry=r,
        )
        self.review_seconds = Histogram(
            "servo_webhook_review_seconds",
            "Time to answer an AdmissionReview",
            buckets=REVIEW_BUCKETS,
            registry=r,
        )
        self.exchanges = Counter(
            "servo_webhook_exchanges",
            "WHATS_NEXT exchanges with the backend, by outcome",
            ["outcome"],
            registry=r,
        )
        # Every label shows from the start (at 0), so a rate() has a series before the first.
        for result in REVIEW_RESULTS:
            self.reviews.labels(result)
        for outcome in EXCHANGE_OUTCOMES:
            self.exchanges.labels(outcome)

    def reviewed(self, result: str, seconds: float) -> None:
        self.reviews.labels(result).inc()
        self.review_seconds.observe(seconds)

    def exchanged(self, outcome: str) -> None:
        self.exchanges.labels(outcome).inc()
