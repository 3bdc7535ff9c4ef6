"""Prometheus metrics of the registration service, counted only for what was committed.

A consumer's handler runs inside the runner's transaction, which can still roll back and be
retried after the handler returns. So the handler *stages* its counts under the id of the
top-level transaction it ran in, and they are added once the runner reports the batch done:
only the counts of the last (committed) attempt are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram

from solidarity.shared.logging import get_logger
from solidarity.shared.messaging.consumer import BatchReport, ConsumerRunner, RecordLike

log = get_logger(__name__)


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

    def attach(self, app: FastAPI) -> bool:
        """Serve these metrics from the service's own /metrics.

        The kit does not expose its registry yet (a change is requested), so it is found
        through the /metrics route; if that ever fails, the metrics are served on
        /metrics/registration instead and a warning is logged.
        """
        kit_registry = _kit_registry(app)
        if kit_registry is not None:
            kit_registry.register(_Forward(self.registry))
            return True
        log.warning("metrics_registry_not_found", fallback="/metrics/registration")
        return False


class _Forward:
    """A collector that yields another registry's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self._registry.collect()


def _kit_registry(app: FastAPI) -> CollectorRegistry | None:
    registry = getattr(app.state, "metrics_registry", None)
    if isinstance(registry, CollectorRegistry):
        return registry
    for route in app.routes:
        if getattr(route, "path", None) != "/metrics":
            continue
        for cell in getattr(getattr(route, "endpoint", None), "__closure__", None) or ():
            if isinstance(cell.cell_contents, CollectorRegistry):
                return cell.cell_contents
    return None


class StagedCounts:
    """Counts staged by transaction id, applied once that transaction is known to be done."""

    def __init__(self) -> None:
        self._staged: list[tuple[int, Callable[[], None]]] = []

    def stage(self, txid: int, apply: Callable[[], None]) -> None:
        self._staged.append((txid, apply))

    def settle(self) -> None:
        """Apply what the last transaction staged; drop what rolled back before it."""
        if self._staged:
            last = self._staged[-1][0]
            for txid, apply in self._staged:
                if txid == last:
                    apply()
        self._staged.clear()

    def discard(self) -> None:
        self._staged.clear()


class CountingConsumerRunner(ConsumerRunner):
    """A consumer runner that applies its handler's staged counts after each batch commits."""

    def __init__(self, *, staged: StagedCounts, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.staged = staged

    async def process_batch(self, records: Sequence[RecordLike]) -> BatchReport:
        self.staged.discard()
        try:
            report = await super().process_batch(records)
        except BaseException:
            self.staged.discard()
            raise
        self.staged.settle()
        return report
