"""The kit's runtime, without infrastructure: the AsyncAPI document is built apart from the
live app, and every service answers 503 with Retry-After while its database is away."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
from fastapi import FastAPI
from pydantic import SecretStr

from solidarity.catalog.bootstrap import create_app as catalog_app
from solidarity.catalog.settings import CatalogSettings
from solidarity.notifications.adapters.tokens import TokenSigner, UnsubscribeToken
from solidarity.notifications.bootstrap import create_app as notifications_app
from solidarity.notifications.settings import NotificationsSettings
from solidarity.registration.bootstrap import create_app as registration_app
from solidarity.registration.settings import RegistrationSettings
from solidarity.shared.logging import configure_logging
from solidarity.shared.messaging.outbox import Outbox
from solidarity.shared.runtime import (
    ServiceRuntime,
    awaited_chain,
    create_service_app,
    log_task_stacks,
    observe,
    start_broker,
)
from solidarity.shared.service import ServiceSpec, discover_services
from solidarity.shared.settings import ServiceSettings
from solidarity.shared.testing.services import EXAMPLE_SERVICE

pytestmark = pytest.mark.unit

TOKEN = "unit-test-admin-token-0123456789"
SECRET = "someone@example.org"  # what an error's text might hold: never in an answer


@pytest.fixture
def neutral_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings from their defaults, as `solidarity asyncapi` builds them."""
    for key in [k for k in os.environ if k.startswith("SOLIDARITY_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SOLIDARITY_ENVIRONMENT", "development")


def _state(app: FastAPI) -> dict[str, Any]:
    return dict(vars(app.state)["_state"])


async def _get(app: FastAPI, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.request(kwargs.pop("method", "GET"), path, **kwargs)


# The AsyncAPI document -------------------------------------------------------------------------


async def test_the_document_is_built_once_on_a_throw_away_runtime_whose_resources_close() -> None:
    wired: list[ServiceRuntime] = []
    closed: list[ServiceRuntime] = []

    async def wire(runtime: ServiceRuntime) -> None:
        wired.append(runtime)

        async def close() -> None:
            closed.append(runtime)

        runtime.resources.push_async_callback(close)

    app = create_service_app(
        spec=EXAMPLE_SERVICE,
        settings=ServiceSettings(),
        wire=wire,
        title="Example",
        description="An example",
    )
    before = _state(app)
    first = await app.state.asyncapi_document()
    served = await _get(app, "/asyncapi.json")
    assert served.status_code == 200
    assert served.json() == first == await app.state.asyncapi_document()
    assert first["info"]["title"] == "Example"
    assert len(wired) == 1, "built once, then kept"
    assert closed == wired, "what the wiring opened is closed at once"
    assert wired[0].pool is None, "a throw-away runtime: nothing connected"
    assert _state(app) == before


@pytest.mark.parametrize("spec", discover_services(), ids=lambda s: s.name)
async def test_no_services_document_touches_its_app(
    spec: ServiceSpec, neutral_environment: None
) -> None:
    app = spec.app_factory()(spec.settings_class()())
    before = _state(app)
    runtime = SimpleNamespace(pool=object(), outbox=object())
    app.state.runtime = runtime  # as if running
    await app.state.asyncapi_document()
    after = _state(app)
    assert after.pop("runtime") is runtime
    assert after.keys() == before.keys()
    assert all(after[name] is before[name] for name in before), "app.state left as it was"


# The database away: 503 and Retry-After, never 500 ------------------------------------------


class AwayPool:
    """A pool whose database is not there (as asyncpg's pool is while PostgreSQL is down)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def acquire(self) -> Any:
        raise self.error


AWAY = [
    ConnectionRefusedError(111, f"Connect call failed {SECRET}"),
    asyncpg.exceptions.CannotConnectNowError(f"the database system is starting up {SECRET}"),
    asyncpg.exceptions.ConnectionDoesNotExistError(SECRET),
    TimeoutError(),
]


def _running(app: FastAPI, error: BaseException, service: str) -> FastAPI:
    app.state.runtime = SimpleNamespace(pool=AwayPool(error), outbox=Outbox(producer=service))
    return app


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"].isdigit()
    assert SECRET not in response.text


@pytest.mark.parametrize("error", AWAY, ids=lambda e: type(e).__name__)
async def test_a_kit_route_answers_a_problem_503(error: BaseException) -> None:
    async def wire(runtime: ServiceRuntime) -> None:
        pass

    app = create_service_app(
        spec=EXAMPLE_SERVICE,
        settings=ServiceSettings(),
        wire=wire,
        title="Example",
        description="An example",
    )

    @app.get("/things")
    async def things() -> None:
        raise error

    response = await _get(app, "/things")
    _unavailable(response)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 503
    assert response.json()["code"] == "database_unavailable"
    assert response.json()["detail"]


@pytest.mark.parametrize("error", AWAY, ids=lambda e: type(e).__name__)
async def test_the_catalog_admin_api_answers_503_in_its_error_body(error: BaseException) -> None:
    app = _running(
        catalog_app(CatalogSettings(admin_token=SecretStr(TOKEN), environment="test")),
        error,
        "catalog",
    )
    response = await _get(app, "/campaigns", headers={"Authorization": f"Bearer {TOKEN}"})
    _unavailable(response)
    assert response.json()["error"]["code"] == "database_unavailable"


@pytest.mark.parametrize("error", AWAY, ids=lambda e: type(e).__name__)
async def test_the_partner_api_answers_503(error: BaseException) -> None:
    app = _running(registration_app(RegistrationSettings()), error, "registration")
    auth = {"Authorization": "Bearer a-partner-key"}
    body = {
        "submission_id": "s-1",
        "campaign": "week",
        "registrant": {"email": SECRET, "role": "student"},
    }
    _unavailable(await _get(app, "/v1/registrations", method="POST", json=body, headers=auth))
    _unavailable(await _get(app, "/v1/registrations/s-1", headers=auth))
    assert (await _get(app, "/v1/registrations/s-1")).status_code == 401, "no key: no database"


@pytest.mark.parametrize("error", AWAY, ids=lambda e: type(e).__name__)
async def test_the_preference_pages_answer_503(error: BaseException) -> None:
    settings = NotificationsSettings(environment="development")
    app = _running(notifications_app(settings), error, "notifications")
    token = TokenSigner(settings.signing_key()).sign(UnsubscribeToken(uuid.uuid4(), "all"))
    _unavailable(await _get(app, "/preferences", params={"token": token}))
    _unavailable(await _get(app, "/unsubscribe", method="POST", params={"token": token}))


async def _inner(gate: asyncio.Event) -> None:
    await gate.wait()


async def _outer(gate: asyncio.Event) -> None:
    await _inner(gate)


async def test_sigusr1_logs_where_every_task_waits(capsys: pytest.CaptureFixture[str]) -> None:
    gate = asyncio.Event()
    task = asyncio.create_task(_outer(gate), name="stuck-start")
    await asyncio.sleep(0)
    assert awaited_chain(task.get_coro())[-1].startswith("Future")  # where it waits
    previous = signal.signal(signal.SIGUSR1, log_task_stacks)
    configure_logging(fmt="json", level="INFO")
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0.05)  # the handler runs between two steps of the loop
    finally:
        signal.signal(signal.SIGUSR1, previous)
        structlog.reset_defaults()
        gate.set()
        await task
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    stacks = {line["task"]: line["awaits"] for line in lines if line["event"] == "task_stack"}
    assert [line["tasks"] for line in lines if line["event"] == "task_stacks"] == [len(stacks)]
    waits = stacks["stuck-start"]
    assert [entry.rsplit(" ", 1)[-1] for entry in waits[:3]] == ["_outer", "_inner", "wait"]
    assert waits[0].startswith(__file__)


class _JoinsForever:
    """A broker whose consumers never get their partitions."""

    def __init__(self) -> None:
        self.subscribers = [
            SimpleNamespace(group_id="joined", consumer=SimpleNamespace(assignment=lambda: {0})),
            SimpleNamespace(group_id="waiting", consumer=SimpleNamespace(assignment=set)),
            SimpleNamespace(group_id="not-started", consumer=None),
        ]
        self.cancelled = False

    async def start(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_a_start_whose_consumers_do_not_join_says_so_until_it_is_stopped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker = _JoinsForever()
    configure_logging(fmt="json", level="INFO")
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.35):
                await start_broker(broker, service="example", warn_after_s=0.1)  # type: ignore[arg-type]
    finally:
        structlog.reset_defaults()
    await asyncio.sleep(0)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    warnings = [line for line in lines if line["event"] == "consumer_groups_not_joined"]
    assert 2 <= len(warnings) <= 3  # one every 0.1 s
    assert {tuple(w["groups"]) for w in warnings} == {("not-started", "waiting")}
    assert broker.cancelled, "stopping the service stops the start"


class _NeverAnswers:
    """A consumer asked for its end offsets while it is being closed: it never answers."""

    def assignment(self) -> set[str]:
        return {"partition-0"}

    async def end_offsets(self, partitions: list[str]) -> dict[str, int]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class _NoPool:
    def acquire(self) -> Any:
        raise ConnectionError("the database is away")


async def test_a_consumer_that_never_answers_does_not_hold_up_the_metrics_loop() -> None:
    """It once held up a service's stop: the loop waited on a consumer the stop had closed."""
    runtime = SimpleNamespace(
        pool=_NoPool(),
        broker=SimpleNamespace(
            subscribers=[SimpleNamespace(group_id="g", consumer=_NeverAnswers())]
        ),
    )
    app = FastAPI()
    app.state.consumer_lag = {}
    stop = asyncio.Event()
    loop = asyncio.create_task(observe(app, runtime, stop, probe_timeout_s=0.05))  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(loop, 1.0)
    assert app.state.consumer_lag == {}
