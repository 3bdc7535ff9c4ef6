"""The service runtime every service is built on: one composition root, one lifecycle.

`create_service_app` gives a FastAPI app whose lifespan runs the migrations, opens the pool,
lets the service register its consumers and routes, starts the outbox relay and the
broker, and stops everything in reverse. Every service gets `/health`, `/ready`,
`/metrics` (Prometheus) and `/asyncapi.json` the same way, and answers 503 with
`Retry-After` (not 500) when a request finds the database away.

A service's `wire(runtime)` registers its consumers, background jobs and extras on the
runtime it is given, and nothing else: it is also called on a throw-away runtime (pool,
producer and relay `None`) to build the AsyncAPI document, so it must not touch the app
(routes read `app.state.runtime` per request) and must enter whatever it opens (an HTTP
client, ...) in `runtime.resources`, which is closed when that runtime is done with.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import reduce
from http import HTTPStatus
from operator import or_
from types import FrameType
from typing import Any

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from solidarity.shared.contracts.topics import TOPICS
from solidarity.shared.db.migrations import migrate
from solidarity.shared.db.pool import TRANSIENT_DB_ERRORS, create_pool
from solidarity.shared.http_models import (
    PROBLEM_MEDIA_TYPE,
    Health,
    ProblemDetails,
    Readiness,
    answer_invalid_requests_without_their_input,
)
from solidarity.shared.logging import configure_logging, get_logger
from solidarity.shared.messaging.consumer import ConsumerRunner
from solidarity.shared.messaging.kafka import make_broker, make_producer, stay_in_groups_on_stop
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
    resources: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    """What the wiring opened (`await runtime.resources.enter_async_context(client)`): closed
    when the service stops, after its background jobs, or at once for a throw-away runtime."""

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
"""Registers a service's consumers, background jobs and resources on a runtime; nothing else."""

ErrorBody = Callable[[int, str, str], dict[str, Any]]
"""A service's error body from (status, code, message), for the errors the kit answers."""

DATABASE_RETRY_AFTER_S = 5
"""The `Retry-After` of a 503 answered because the database is away."""


def problem_body(status: int, code: str, message: str) -> dict[str, Any]:
    """The kit's default error body: RFC 9457 problem details (with `detail`, like FastAPI's)."""
    return ProblemDetails(
        title=HTTPStatus(status).phrase, status=status, detail=message, code=code
    ).model_dump()


def answer_database_outages(app: FastAPI, *, error_body: ErrorBody | None = None) -> None:
    """Answer 503 with `Retry-After`, not 500, when a route finds the database away.

    "Away" is `TRANSIENT_DB_ERRORS` (refused or dropped connections, a server shutting down,
    too many connections, ...): the request may succeed if sent again a little later, which
    is what 503 and `Retry-After` tell clients. The body is the service's error body (the
    kit's problem details by default) and says nothing of the request or the error's text.
    """
    body = error_body or problem_body
    media_type = PROBLEM_MEDIA_TYPE if error_body is None else "application/json"

    async def database_away(request: Request, exc: Exception) -> Response:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        log.warning("http_database_unavailable", route=route, error_type=type(exc).__name__)
        return JSONResponse(
            body(
                503,
                "database_unavailable",
                "the database is busy or not reachable; retry after the Retry-After seconds",
            ),
            status_code=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
            media_type=media_type,
        )

    # Starlette looks handlers up along the exception's MRO, before any `Exception` handler.
    for error in TRANSIENT_DB_ERRORS:
        if issubclass(error, Exception):  # all of them; BaseException is not handled
            app.add_exception_handler(error, database_away)


def answer_errors_as_every_service_does(
    app: FastAPI, *, error_body: ErrorBody | None = None
) -> None:
    """The error answers the kit gives every service app: 503 while the database is away,
    and a 422 that never repeats the values sent. For an app built around a service's router
    without `create_service_app` (a test's), so that it answers as the service does."""
    answer_database_outages(app, error_body=error_body)
    answer_invalid_requests_without_their_input(app)


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
    """A service's AsyncAPI document, built without connecting to anything.

    The wiring runs on a throw-away runtime with its own broker (never the live one: FastStream
    reconfigures the broker it documents); what it opened in `runtime.resources` is closed
    here, and its background jobs never run.
    """
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
    async with runtime.resources:
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
    error_body: ErrorBody | None = None,
) -> FastAPI:
    """Build a service's HTTP app; nothing connects until the lifespan starts.

    `error_body` shapes the errors the kit answers itself (503 while the database is away)
    like the service's own; by default they are RFC 9457 problem details.
    """
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
        _configure_logging(settings)
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
                name=spec.name,
            ),
        )
        app.state.runtime = runtime
        app.state.consumer_lag = {}
        app.state.outbox_backlog = 0
        stop = asyncio.Event()
        try:
            await wire(runtime)
            declare_publishers(broker, service=spec.name, topic_prefix=settings.kafka.topic_prefix)
            await producer.start()
            await start_broker(broker, service=spec.name)
        except BaseException:
            # A start that failed, or was stopped while its consumers joined: close what it
            # opened, whatever state each part is in.
            if not settings.kafka.leave_group_on_stop:
                stay_in_groups_on_stop(broker)
            for close in (broker.stop, runtime.resources.aclose, producer.stop, pool.close):
                with contextlib.suppress(Exception):
                    await close()
            raise
        tasks = [asyncio.create_task(runtime.relay.run(stop), name="outbox-relay")]
        tasks += [
            asyncio.create_task(job(stop), name=getattr(job, "__qualname__", repr(job)))
            for job in runtime.background
        ]
        observer = asyncio.create_task(observe(app, runtime, stop), name="observe")
        tasks.append(observer)
        app.state.ended_tasks = []

        def ended(task: asyncio.Task[None]) -> None:
            # Every loop is written to outlive what a pass meets; one that ends anyway leaves a
            # service that answers but no longer works: say so, loudly, and fail /health.
            if stop.is_set() or task.cancelled():
                return
            error = task.exception()
            app.state.ended_tasks.append(task.get_name())
            log.error(
                "background_task_ended",
                service=spec.name,
                task=task.get_name(),
                error_type=type(error).__name__ if error is not None else None,
            )

        for task in tasks:
            task.add_done_callback(ended)
        up.set(1)
        log.info("service_started", service=spec.name, consumers=len(runtime.consumers))
        try:
            yield
        finally:
            up.set(0)
            stop.set()
            if not settings.kafka.leave_group_on_stop:
                stay_in_groups_on_stop(broker)
            observer.cancel()  # it reads the consumers that the broker's stop closes
            await broker.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runtime.resources.aclose()
            await producer.stop()
            await pool.close()
            log.info("service_stopped", service=spec.name)

    app = FastAPI(title=title, description=description, lifespan=lifespan)
    # Services register their own collectors here; /metrics serves them all.
    app.state.metrics_registry = registry

    built: list[dict[str, Any]] = []
    building = asyncio.Lock()

    async def document() -> dict[str, Any]:
        """The AsyncAPI document: built once (from a throw-away runtime), then kept."""
        if not built:
            async with building:
                if not built:
                    built.append(
                        await asyncapi_document(
                            spec=spec,
                            settings=settings,
                            wire=wire,
                            title=title,
                            description=description,
                        )
                    )
        return copy.deepcopy(built[0])

    app.state.asyncapi_document = document
    registry.register(_RuntimeCollector(app))
    answer_errors_as_every_service_does(app, error_body=error_body)

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        requests.labels(request.method, route, str(response.status_code)).inc()
        latency.labels(route).observe(time.perf_counter() - started)
        return response

    @app.get(
        "/health",
        tags=["operations"],
        summary="Liveness: the process answers and its background tasks run",
        response_model=Health,
        responses={
            503: {"model": Health, "description": "A background task ended: restart the process"}
        },
    )
    async def health() -> JSONResponse:
        ended = list(getattr(app.state, "ended_tasks", []))
        if ended:
            return JSONResponse(
                {"status": "failing", "service": spec.name, "ended": ended}, status_code=503
            )
        return JSONResponse({"status": "ok", "service": spec.name})

    @app.get(
        "/ready",
        tags=["operations"],
        summary="Readiness: database and broker reachable",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "The database or broker is away"}},
    )
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

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    @app.get(
        "/asyncapi.json",
        tags=["operations"],
        summary="The AsyncAPI document",
        responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
    )
    async def asyncapi() -> JSONResponse:
        return JSONResponse(await document())

    return app


async def start_broker(broker: KafkaBroker, *, service: str, warn_after_s: float = 60.0) -> None:
    """Start the broker (every consumer joins its group), saying so while a join drags on.

    A join takes seconds; one that takes minutes is the broker not completing the group's
    rebalance, and the service is not ready meanwhile: a warning each minute names the groups
    still waiting, instead of silence.
    """
    starting = asyncio.ensure_future(broker.start())
    started = time.monotonic()
    while True:
        try:
            done, _ = await asyncio.wait({starting}, timeout=warn_after_s)
        except BaseException:
            starting.cancel()
            raise
        if done:
            starting.result()
            return
        waiting = sorted(
            str(getattr(subscriber, "group_id", None))
            for subscriber in broker.subscribers
            if not (consumer := getattr(subscriber, "consumer", None)) or not consumer.assignment()
        )
        log.warning(
            "consumer_groups_not_joined",
            service=service,
            waited_s=round(time.monotonic() - started),
            groups=waiting,
        )


async def observe(
    app: FastAPI, runtime: ServiceRuntime, stop: asyncio.Event, *, probe_timeout_s: float = 5.0
) -> None:
    """Refresh the outbox backlog and consumer lag every few seconds, for metrics.

    Each probe has a time limit: a consumer asked for its end offsets while the broker
    rebalances, or while the service stops it, may never answer, and a metric must not hold
    up the loop (or the service's stop, which waits for this task).
    """
    while not stop.is_set():
        with contextlib.suppress(Exception):
            async with asyncio.timeout(probe_timeout_s):
                async with runtime.pool.acquire() as conn:
                    app.state.outbox_backlog = await conn.fetchval(
                        "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
                    )
        for subscriber in runtime.broker.subscribers:
            with contextlib.suppress(Exception):
                consumer = getattr(subscriber, "consumer", None)
                if consumer is None:
                    continue
                async with asyncio.timeout(probe_timeout_s):
                    lag = await _lag(consumer)
                if lag is not None:
                    app.state.consumer_lag[getattr(subscriber, "group_id", None) or ""] = lag
        try:
            await asyncio.wait_for(stop.wait(), timeout=5.0)
        except TimeoutError:
            continue


async def _lag(consumer: Any) -> int | None:
    """Messages behind the end of the log over the consumer's partitions (None: it has none)."""
    assigned = list(consumer.assignment())
    if not assigned:
        return None
    ends = await consumer.end_offsets(assigned)
    total = 0
    for tp in assigned:
        # The embedded broker reports a partition's end as its last record batch's base
        # offset + 1; the fetch responses' high watermark is right.
        end = max(ends[tp], consumer.highwater(tp) or 0)
        total += max(0, end - await consumer.position(tp))
    return total


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run a service's app with uvicorn until SIGTERM or Ctrl-C; SIGUSR1 logs its tasks."""
    _configure_logging(settings)
    signal.signal(signal.SIGUSR1, log_task_stacks)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )


def _configure_logging(settings: ServiceSettings) -> None:
    configure_logging(
        fmt=settings.logging.format,
        level=settings.logging.level,
        libraries_level=settings.logging.libraries_level,
    )


def log_task_stacks(signum: int, frame: FrameType | None) -> None:
    """SIGUSR1: log every asyncio task and the chain of awaits it is suspended in.

    For a service that is alive but stuck (a start that never ends, a loop that stopped
    making progress): `kill -USR1 <pid>` shows where each task waits, in the service's log.
    Only code locations are logged, never values.
    """
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no loop runs yet (or any more)
        log.warning("task_stacks", tasks=0)
        return
    log.warning("task_stacks", tasks=len(tasks))
    for task in sorted(tasks, key=lambda t: t.get_name()):
        log.warning("task_stack", task=task.get_name(), awaits=awaited_chain(task.get_coro()))


def awaited_chain(awaitable: object) -> list[str]:
    """Where a coroutine is suspended, outermost first: `file:line function` per frame."""
    chain: list[str] = []
    current: object | None = awaitable
    while current is not None and len(chain) < 64:
        frame = next(
            (
                f
                for f in (getattr(current, a, None) for a in ("cr_frame", "gi_frame", "ag_frame"))
                if f is not None
            ),
            None,
        )
        if frame is None:  # a future, a finished coroutine, or something else awaitable
            chain.append(type(current).__name__)
            break
        code = frame.f_code
        chain.append(f"{code.co_filename}:{frame.f_lineno} {code.co_name}")
        current = next(
            (
                n
                for n in (
                    getattr(current, a, None) for a in ("cr_await", "gi_yieldfrom", "ag_await")
                )
                if n is not None
            ),
            None,
        )
    return chain
