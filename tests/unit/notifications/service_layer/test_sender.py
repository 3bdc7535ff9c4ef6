"""The sender and the reconciler against fakes: outcomes, retries, events, never twice."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage

import pytest

from solidarity.notifications.adapters.clock import SettableClock
from solidarity.notifications.domain.model import DeliveryKind
from solidarity.notifications.domain.outcomes import SendOutcome
from solidarity.notifications.domain.schedule import RetryPolicy
from solidarity.notifications.service_layer.ports import ClaimedWork, WebhookTarget
from solidarity.notifications.service_layer.sender import DeliverySender, InDoubtReconciler
from solidarity.shared.contracts.events.notifications import (
    NotificationFailedV1,
    NotificationSentV1,
)
from tests.unit.notifications import examples
from tests.unit.notifications.fakes import FakeLedger, FakeMailer, FakeResolver

pytestmark = pytest.mark.unit

ADDRESS = "ada@school.example"


def confirmation(**changes: object) -> ClaimedWork:
    context = examples.context(DeliveryKind.CONFIRMATION, attempts=0, **changes)  # type: ignore[arg-type]
    return ClaimedWork(delivery=context.delivery, context=context)


def make_sender(
    ledger: FakeLedger, mailer: FakeMailer, clock: SettableClock, **options: object
) -> DeliverySender:
    return DeliverySender(
        ledger=ledger,
        mailer=mailer,
        webhooks=None,
        renderer=examples.renderer(),
        clock=clock,
        sender_address="notifications@solidarity.example",
        retry=RetryPolicy(base_s=60, max_s=600, max_attempts=3, jitter=0),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(examples.SESSION_START - timedelta(days=3))


async def test_a_sent_mail_is_recorded_with_an_event_that_names_no_one(
    clock: SettableClock,
) -> None:
    work = confirmation()
    ledger, mailer = FakeLedger([work]), FakeMailer()

    await make_sender(ledger, mailer, clock).send_once()

    assert ledger.state(work.delivery.delivery_id) == "sent"
    assert len(mailer.sent) == 1
    (event,) = ledger.events
    assert isinstance(event, NotificationSentV1)
    assert event.delivery_id == work.delivery.delivery_id
    assert event.recipient_id == examples.PERSON_ID
    assert event.kind == "confirmation"
    assert event.attempts == 1
    assert ADDRESS not in event.model_dump_json()
    assert "Ada" not in event.model_dump_json()


async def test_a_4xx_is_retried_later_then_sent_once(clock: SettableClock) -> None:
    work = confirmation()
    ledger = FakeLedger([work])
    mailer = FakeMailer({ADDRESS: [SendOutcome.retry("smtp_451"), SendOutcome.retry("smtp_451")]})
    sender = make_sender(ledger, mailer, clock)
    key = work.delivery.delivery_id

    await sender.send_once()
    assert ledger.state(key) == "pending"
    assert ledger.rows[key].due_at == clock.now() + timedelta(seconds=60)
    assert await sender.send_once() == 0, "not due yet"

    clock.advance(timedelta(seconds=60))
    await sender.send_once()
    assert ledger.rows[key].due_at == clock.now() + timedelta(seconds=120)

    clock.advance(timedelta(seconds=120))
    await sender.send_once()

    assert ledger.state(key) == "sent"
    assert len(mailer.sent) == 1
    assert mailer.attempts == [ADDRESS] * 3
    assert [type(e) for e in ledger.events] == [NotificationSentV1]
    assert ledger.events[0].attempts == 3  # type: ignore[attr-defined]
    assert sender.stats.retried[("confirmation", "email")] == 2


async def test_a_5xx_fails_at_once_and_is_published(clock: SettableClock) -> None:
    work = confirmation()
    ledger = FakeLedger([work])
    mailer = FakeMailer({ADDRESS: [SendOutcome.permanent("smtp_550")]})
    sender = make_sender(ledger, mailer, clock)

    await sender.send_once()
    clock.advance(timedelta(days=1))
    await sender.send_once()

    assert ledger.state(work.delivery.delivery_id) == "failed"
    assert mailer.attempts == [ADDRESS]
    (event,) = ledger.events
    assert isinstance(event, NotificationFailedV1)
    assert event.permanent is True
    assert event.reason == "smtp_550"
    assert ADDRESS not in event.model_dump_json()


async def test_retries_are_bounded(clock: SettableClock) -> None:
    work = confirmation()
    ledger = FakeLedger([work])
    mailer = FakeMailer({ADDRESS: [SendOutcome.retry("smtp_421")] * 10})
    sender = make_sender(ledger, mailer, clock)

    for _ in range(5):
        await sender.send_once()
        clock.advance(timedelta(hours=1))

    assert ledger.state(work.delivery.delivery_id) == "failed"
    assert len(mailer.attempts) == 3
    (event,) = ledger.events
    assert isinstance(event, NotificationFailedV1)
    assert event.permanent is False
    assert event.reason == "smtp_421_retries_exhausted"


async def test_a_connection_lost_after_data_is_in_doubt_not_retried(clock: SettableClock) -> None:
    work = confirmation()
    ledger = FakeLedger([work])
    mailer = FakeMailer({ADDRESS: [SendOutcome.unknown("smtp_lost_in_data")]})
    sender = make_sender(ledger, mailer, clock)

    await sender.send_once()
    clock.advance(timedelta(hours=1))
    await sender.send_once()

    assert ledger.state(work.delivery.delivery_id) == "unknown"
    assert mailer.attempts == [ADDRESS]
    assert ledger.events == []


async def test_an_opted_out_purpose_is_dropped_without_a_send(clock: SettableClock) -> None:
    work = confirmation(opted_out=frozenset({"registration_updates"}))
    ledger, mailer = FakeLedger([work]), FakeMailer()

    await make_sender(ledger, mailer, clock).send_once()

    assert ledger.state(work.delivery.delivery_id) == "dropped"
    assert ledger.rows[work.delivery.delivery_id].last_error == "opted_out"
    assert mailer.attempts == []
    assert ledger.events == []


async def test_an_invalid_address_fails_permanently(clock: SettableClock) -> None:
    work = confirmation(recipient=examples.person(email="not an address"))
    ledger, mailer = FakeLedger([work]), FakeMailer()

    await make_sender(ledger, mailer, clock).send_once()

    assert ledger.state(work.delivery.delivery_id) == "failed"
    assert mailer.attempts == []


async def test_a_batch_is_sent_concurrently_and_each_once(clock: SettableClock) -> None:
    works = []
    for i in range(25):
        work = confirmation(recipient=examples.person(email=f"p{i}@school.example"))
        delivery = replace(work.delivery, delivery_id=uuid.uuid4())
        assert work.context is not None
        works.append(
            ClaimedWork(delivery=delivery, context=replace(work.context, delivery=delivery))
        )
    ledger, mailer = FakeLedger(works), FakeMailer()
    sender = make_sender(ledger, mailer, clock, batch_size=10)

    counts = [await sender.send_once() for _ in range(4)]

    assert counts == [10, 10, 5, 0]
    assert sorted(mailer.attempts) == sorted(f"p{i}@school.example" for i in range(25))
    assert len(ledger.events) == 25


async def test_a_webhook_without_its_endpoint_is_dropped(clock: SettableClock) -> None:
    work = confirmation()
    hook = ClaimedWork(
        delivery=replace(work.delivery, kind=DeliveryKind.WEBHOOK, channel="webhook"),
        webhook=None,
    )
    ledger = FakeLedger([hook])

    await make_sender(ledger, FakeMailer(), clock).send_once()

    assert ledger.state(hook.delivery.delivery_id) == "dropped"


class RecordingPoster:
    def __init__(self, outcome: SendOutcome) -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, str, bytes]] = []

    async def post(
        self, target: WebhookTarget, *, event_id: str, body: bytes, now: object
    ) -> SendOutcome:
        self.calls.append((target.url, event_id, body))
        return self.outcome


async def test_a_webhook_posts_its_payload_with_the_outcome_event_id(clock: SettableClock) -> None:
    work = confirmation()
    hook = ClaimedWork(
        delivery=replace(
            work.delivery,
            kind=DeliveryKind.WEBHOOK,
            channel="webhook",
            subject_ref="7d4f2b0e-0000-4000-8000-000000000001",
            payload={"event_type": "SessionRegistrationConfirmed"},
        ),
        webhook=WebhookTarget(url="https://partner.example/hook", secret="s" * 32),
    )
    ledger = FakeLedger([hook])
    poster = RecordingPoster(SendOutcome.sent())
    sender = DeliverySender(
        ledger=ledger,
        mailer=FakeMailer(),
        webhooks=poster,
        renderer=examples.renderer(),
        clock=clock,
        sender_address="n@solidarity.example",
    )

    await sender.send_once()

    assert poster.calls == [
        (
            "https://partner.example/hook",
            "7d4f2b0e-0000-4000-8000-000000000001",
            b'{"event_type":"SessionRegistrationConfirmed"}',
        )
    ]
    assert ledger.state(hook.delivery.delivery_id) == "sent"


async def test_the_reconciler_settles_in_doubt_mail_by_asking_the_mailbox(
    clock: SettableClock,
) -> None:
    arrived, lost, stuck = confirmation(), confirmation(), confirmation()
    lost = replace(lost, delivery=replace(lost.delivery, delivery_id=uuid.uuid4()))
    stuck = replace(stuck, delivery=replace(stuck.delivery, delivery_id=uuid.uuid4()))
    ledger = FakeLedger()
    ledger.add(arrived, state="unknown")
    ledger.add(lost, state="unknown")
    ledger.add(stuck)
    await ledger.claim_due(now=clock.now() - timedelta(minutes=10), limit=10)  # a dead sender's
    resolver = FakeResolver(set())
    resolver.arrive(arrived.delivery.delivery_id)
    reconciler = InDoubtReconciler(
        ledger=ledger,
        resolver=resolver,
        clock=clock,
        domain="solidarity.local",
        lease=timedelta(minutes=5),
    )

    result = await reconciler.reconcile_once()

    assert result["expired"] == 1
    assert ledger.state(arrived.delivery.delivery_id) == "sent"
    assert ledger.state(lost.delivery.delivery_id) == "pending"
    assert ledger.state(stuck.delivery.delivery_id) == "pending"
    assert [type(e) for e in ledger.events] == [NotificationSentV1]


async def test_a_mailbox_that_cannot_answer_leaves_mail_in_doubt(clock: SettableClock) -> None:
    work = confirmation()
    ledger = FakeLedger()
    ledger.add(work, state="unknown")
    reconciler = InDoubtReconciler(
        ledger=ledger, resolver=FakeResolver(None), clock=clock, domain="solidarity.local"
    )

    result = await reconciler.reconcile_once()

    assert result["undecided"] == 1
    assert ledger.state(work.delivery.delivery_id) == "unknown"


async def test_a_live_senders_claims_are_left_alone(clock: SettableClock) -> None:
    work = confirmation()
    ledger = FakeLedger([work])
    await ledger.claim_due(now=clock.now(), limit=10)
    reconciler = InDoubtReconciler(
        ledger=ledger, resolver=FakeResolver(set()), clock=clock, domain="solidarity.local"
    )

    await reconciler.reconcile_once()

    assert ledger.state(work.delivery.delivery_id) == "sending"


class ExplodingMailer(FakeMailer):
    async def send(self, message: EmailMessage, *, sender: str, recipient: str) -> SendOutcome:
        if recipient == "boom@school.example":
            raise RuntimeError("a bug in a mail library")
        return await super().send(message, sender=sender, recipient=recipient)


async def test_a_crash_on_one_delivery_leaves_it_in_flight_and_sends_the_others(
    clock: SettableClock,
) -> None:
    boom = confirmation(recipient=examples.person(email="boom@school.example"))
    fine = confirmation()
    fine = replace(fine, delivery=replace(fine.delivery, delivery_id=uuid.uuid4()))
    assert fine.context is not None
    fine = replace(fine, context=replace(fine.context, delivery=fine.delivery))
    ledger, mailer = FakeLedger([boom, fine]), ExplodingMailer()

    await make_sender(ledger, mailer, clock).send_once()

    assert ledger.state(boom.delivery.delivery_id) == "sending", "the reconciler decides"
    assert ledger.state(fine.delivery.delivery_id) == "sent"
