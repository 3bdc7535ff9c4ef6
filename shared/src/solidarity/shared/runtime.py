"""The service runtime every service is built on: one composition root, one lifecycle.

`create_service_app` gives a FastAPI app whose lifespan runs the migrations, opens the pool,
lets the service register its consumers and routes, starts the outbox relay and the
broker, and stops everything in reverse. Every service gets `/health`, `/ready`,
`/metrics` (Prometheus) and `/asyncapi.json` the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import reduce
from operator import or_
from typing import Any

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from solidarity.shared.contracts.topics import TOPICS
from solidarity.shared.db.migrations import migrate
from solidarity.shared.db.pool import create_pool
from solidarity.shared.logging import configure_logging, get_logger
from solidarity.shared.messaging.consumer import ConsumerRunner
from solidarity.shared.messaging.kafka import make_broker, make_producer
from solidarity.shared.messaging.outbox import Outbox
from solidarity.shared.messaging.relay import OutboxRelay
from solidarity.shared.service import ServiceSpec
from solidarity.shared.settings import ServiceSettings

log = get_logger(__name__)


BackgroundJob = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
"""A long-running task of a service; it returns when the event is set."""


@dataclass
class ServiceRuntime:
    """What a running service holds: built once in the lifespan, handed to its wiring."""

    spec: ServiceSpec
    settings: ServiceSettings
    pool: asyncpg.Pool
    broker: KafkaBroker
    outbox: Outbox
    producer: AIOKafkaProducer
    relay: OutboxRelay
    consumers: list[ConsumerRunner] = field(default_factory=list)
    background: list[BackgroundJob] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    def consumer(self, runner: ConsumerRunner, *topics: str, description: str = "") -> None:
        """Register a consumer runner on the service's broker (before it starts)."""
        runner.subscribe(
            self.broker,
            *topics,
            max_records=self.settings.consumer_max_records,
            description=description,
        )
        self.consumers.append(runner)


Wiring = Callable[[ServiceRuntime], Awaitable[None]]


def declare_publishers(broker: KafkaBroker, *, service: str, topic_prefix: str = "") -> None:
    """Declare the topics a service publishes, for its AsyncAPI document.

    The outbox relay publishes with aiokafka, not through these publishers; they exist so
    that the document shows every channel the service writes and the events on each.
    """
    for topic in TOPICS:
        if topic.producer != service:
            continue
        payload: Any = reduce(or_, topic.events)
        broker.publisher(
            topic.full_name(topic_prefix),
            title=f"{service}:publish:{topic.name}",
            description=topic.description,
            schema=payload,
        )


async def asyncapi_document(
    *,
    spec: ServiceSpec,
    settings: ServiceSettings,
    wire: Wiring,
    title: str,
    description: str,
) -> dict[str, Any]:
    """A service's AsyncAPI document, built without connecting to anything."""
    broker = make_broker(settings.kafka, service=spec.name)
    runtime = ServiceRuntime(
        spec=spec,
        settings=settings,
        pool=None,  # type: ignore[arg-type]  # wiring only registers handlers; nothing connects
        broker=broker,
        outbox=Outbox(producer=spec.name, topic_prefix=settings.kafka.topic_prefix),
        producer=None,
        relay=None,  # type: ignore[arg-type]
    )
    await wire(runtime)
    declare_publishers(broker, service=spec.name, topic_prefix=settings.kafka.topic_prefix)
    document = FastStream(
        broker, specification=AsyncAPI(title=title, description=description, version="1.0.0")
    )
    result: dict[str, Any] = document.schema.to_specification().to_jsonable()
    return result


class _RuntimeCollector(Collector):
    """Metrics read at scrape time: outbox backlog and consumer totals."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def collect(self) -> Any:
        runtime: ServiceRuntime | None = getattr(self._app.state, "runtime", None)
        backlog = GaugeMetricFamily(
            "solidarity_outbox_backlog", "Outbox rows not yet published", labels=[]
        )
        backlog.add_metric([], float(getattr(self._app.state, "outbox_backlog", 0)))
        yield backlog
        published = CounterMetricFamily(
            "solidarity_outbox_published", "Outbox rows published by this instance"
        )
        published.add_metric([], float(runtime.relay.published if runtime else 0))
        yield published
        consumed = CounterMetricFamily(
            "solidarity_consumer_messages",
            "Messages seen by each consumer, by what became of them",
            labels=["consumer", "result"],
        )
        lag = GaugeMetricFamily(
            "solidarity_consumer_lag", "Messages behind the end of the log", labels=["consumer"]
        )
        for runner in runtime.consumers if runtime else []:
            stats = runner.stats
            for result, value in (
                ("applied", stats.applied),
                ("duplicate", stats.duplicates),
                ("ignored", stats.ignored),
                ("dead_lettered", stats.dead_lettered),
                ("retried", stats.retries),
            ):
                consumed.add_metric([runner.name, result], float(value))
            lag.add_metric([runner.name], float(self._app.state.consumer_lag.get(runner.name, 0)))
        yield consumed
        yield lag


def create_service_app(
    *,
    spec: ServiceSpec,
    settings: ServiceSettings,
    wire: Wiring,
    title: str,
    description: str,
    run_migrations: bool = True,
) -> FastAPI:
    """Build a service's HTTP app; nothing connects until the lifespan starts."""
    registry = CollectorRegistry()
    requests = Counter(
        "solidarity_http_requests",
        "HTTP requests by route and status",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "solidarity_http_request_seconds", "HTTP request latency", ["route"], registry=registry
    )
    up = Gauge("solidarity_up", "1 while the service runs", registry=registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(fmt=settings.logging.format, level=settings.logging.level)
        if run_migrations:
            applied = await migrate(settings.database.url, service_package=spec.package)
            log.info("migrations_checked", service=spec.name, applied=len(applied))
        pool = await create_pool(settings.database)
        broker = make_broker(settings.kafka, service=spec.name)
        producer = make_producer(settings.kafka)
        runtime = ServiceRuntime(
            spec=spec,
            settings=settings,
            pool=pool,
            broker=broker,
            outbox=Outbox(producer=spec.name, topic_prefix=settings.kafka.topic_prefix),
            producer=producer,
            relay=OutboxRelay(
                pool=pool,
                producer=producer,
                batch_size=settings.outbox_batch_size,
                poll_interval_s=settings.outbox_poll_interval_s,
                retention_s=settings.outbox_retention_hours * 3600,
            ),
        )
        app.state.runtime = runtime
        app.state.consumer_lag = {}
        app.state.outbox_backlog = 0
        await wire(runtime)
        declare_publishers(broker, service=spec.name, topic_prefix=settings.kafka.topic_prefix)
        stop = asyncio.Event()
        await producer.start()
        await broker.start()
        tasks = [asyncio.create_task(runtime.relay.run(stop), name="outbox-relay")]
        tasks += [asyncio.create_task(job(stop)) for job in runtime.background]
        tasks.append(asyncio.create_task(_observe(app, runtime, stop), name="observe"))
        up.set(1)
        log.info("service_started", service=spec.name, consumers=len(runtime.consumers))
        try:
            yield
        finally:
            up.set(0)
            stop.set()
            await broker.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await producer.stop()
            await pool.close()
            log.info("service_stopped", service=spec.name)

    app = FastAPI(title=title, description=description, lifespan=lifespan)
    # Services register their own collectors here; /metrics serves them all.
    app.state.metrics_registry = registry

    async def document() -> dict[str, Any]:
        return await asyncapi_document(
            spec=spec, settings=settings, wire=wire, title=title, description=description
        )

    app.state.asyncapi_document = document
    registry.register(_RuntimeCollector(app))

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        requests.labels(request.method, route, str(response.status_code)).inc()
        latency.labels(route).observe(time.perf_counter() - started)
        return response

    @app.get("/health", tags=["operations"], summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": spec.name}

    @app.get("/ready", tags=["operations"], summary="Readiness: database and broker reachable")
    async def ready() -> JSONResponse:
        runtime: ServiceRuntime | None = getattr(app.state, "runtime", None)
        checks: dict[str, bool] = {"database": False, "broker": False}
        if runtime is not None:
            with contextlib.suppress(Exception):
                async with runtime.pool.acquire() as conn:
                    checks["database"] = await conn.fetchval("SELECT 1") == 1
            with contextlib.suppress(Exception):
                checks["broker"] = await runtime.broker.ping(timeout=2.0)
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    @app.get("/asyncapi.json", tags=["operations"], summary="The AsyncAPI document")
    async def asyncapi() -> JSONResponse:
        return JSONResponse(await document())

    return app


async def _observe(app: FastAPI, runtime: ServiceRuntime, stop: asyncio.Event) -> None:
    """Refresh the outbox backlog and consumer lag every few seconds, for metrics."""
    while not stop.is_set():
        with contextlib.suppress(Exception):
            async with runtime.pool.acquire() as conn:
                app.state.outbox_backlog = await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
                )
        for subscriber in runtime.broker.subscribers:
            with contextlib.suppress(Exception):
                consumer = getattr(subscriber, "consumer", None)
                if consumer is None:
                    continue
                assigned = list(consumer.assignment())
                if not assigned:
                    continue
                ends = await consumer.end_offsets(assigned)
                total = 0
                for tp in assigned:
                    total += max(0, ends[tp] - await consumer.position(tp))
                group = getattr(subscriber, "group_id", None) or ""
                app.state.consumer_lag[group] = total
        try:
            await asyncio.wait_for(stop.wait(), timeout=5.0)
        except TimeoutError:
            continue


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run a service's app with uvicorn until SIGTERM or Ctrl-C."""
    configure_logging(fmt=settings.logging.format, level=settings.logging.level)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
