"""Prometheus metrics of the registration service, counted only for what was committed.

A consumer's handler runs inside the runner's transaction, which can still roll back and be
retried after the handler returns. So the consumers count through the kit's `on_commit`: a
count runs once the batch's transaction has committed, never for an attempt that rolled back.
The metrics are served from the kit's one `/metrics` (`attach`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram


class RegistrationMetrics:
    """Submissions by source, outcomes by kind (and rejections by reason), decision timing."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.submissions = Counter(
            "solidarity_registration_submissions",
            "Submissions decided, by where they came from",
            ["source"],
            registry=self.registry,
        )
        self.accepted = Counter(
            "solidarity_registration_http_accepted",
            "Submissions accepted over HTTP (waiting for the decision path)",
            registry=self.registry,
        )
        self.outcomes = Counter(
            "solidarity_registration_outcomes",
            "Outcomes published, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "solidarity_registration_rejections",
            "Rejections published, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "solidarity_registration_decision_batch_seconds",
            "Time to decide one batch of submissions (one transaction)",
            registry=self.registry,
        )

    def count_outcomes(self, kinds: Mapping[str, int]) -> None:
        for kind, value in kinds.items():
            if value:
                self.outcomes.labels(kind).inc(value)

    def count_events(self, event_types: Sequence[str]) -> None:
        """Outcomes of changes after the decision (promotions, cancellations, demotions)."""
        names = {
            "WaitlistPromoted": "promoted",
            "RegistrationCancelled": "cancelled",
            "SessionRegistrationWaitlisted": "waitlisted",
            "SessionRegistrationConfirmed": "confirmed",
            "SignupConfirmed": "signup_confirmed",
            "SessionRegistrationRejected": "rejected",
            "RegistrantErased": "erased",
        }
        for event_type in event_types:
            kind = names.get(event_type)
            if kind is not None:
                self.outcomes.labels(kind).inc()

    def attach(self, app: FastAPI) -> None:
        """Serve these metrics from the service's own /metrics (the kit's registry)."""
        kit_registry: CollectorRegistry = app.state.metrics_registry
        kit_registry.register(_Forward(self.registry))


class _Forward:
    """A collector that yields another registry's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self._registry.collect()
