"""The sender and the reconciler against fakes: outcomes, retries, events, never twice."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from solidarity.notifications.adapters.clock import SettableClock
from solidarity.notifications.domain.model import DeliveryKind
from solidarity.notifications.domain.outcomes import SendOutcome
from solidarity.notifications.domain.schedule import RetryPolicy
from solidarity.notifications.service_layer.ports import ClaimedWork, Settlement, WebhookTarget
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
    assert ledger.settle_calls == 3, "each claimed batch is settled in one transaction"


def batch_of(*recipients: str) -> list[ClaimedWork]:
    works = []
    for email in recipients:
        work = confirmation(recipient=examples.person(email=email))
        delivery = replace(work.delivery, delivery_id=uuid.uuid4())
        assert work.context is not None
        works.append(
            ClaimedWork(delivery=delivery, context=replace(work.context, delivery=delivery))
        )
    return works


async def test_a_batch_with_every_outcome_is_settled_at_once(clock: SettableClock) -> None:
    sent, retried, refused, lost, opted = batch_of(
        "sent@school.example",
        "busy@school.example",
        "refused@school.example",
        "lost@school.example",
        "opted@school.example",
    )
    assert opted.context is not None
    opted_out = frozenset({opted.delivery.purpose.value})
    opted = replace(opted, context=replace(opted.context, opted_out=opted_out))
    ledger = FakeLedger([sent, retried, refused, lost, opted])
    mailer = FakeMailer(
        {
            "busy@school.example": [SendOutcome.retry("smtp_451")],
            "refused@school.example": [SendOutcome.permanent("smtp_550")],
            "lost@school.example": [SendOutcome.unknown("smtp_lost_in_data_OSError")],
        }
    )
    sender = make_sender(ledger, mailer, clock)

    await sender.send_once()

    assert ledger.settle_calls == 1
    states = {
        w.delivery.delivery_id: ledger.state(w.delivery.delivery_id) for w in ledger.work.values()
    }
    assert states == {
        sent.delivery.delivery_id: "sent",
        retried.delivery.delivery_id: "pending",
        refused.delivery.delivery_id: "failed",
        lost.delivery.delivery_id: "unknown",
        opted.delivery.delivery_id: "dropped",
    }
    assert ledger.rows[retried.delivery.delivery_id].due_at == clock.now() + timedelta(seconds=60)
    assert sorted(type(e).__name__ for e in ledger.events) == [
        "NotificationFailedV1",
        "NotificationSentV1",
    ]
    assert sender.stats.sent[("confirmation", "email")] == 1
    assert sender.stats.retried[("confirmation", "email")] == 1
    assert sender.stats.failed[("confirmation", "email", "permanent")] == 1
    assert sender.stats.unknown["confirmation"] == 1
    assert sender.stats.dropped["opted_out"] == 1


class FailingSettleLedger(FakeLedger):
    async def settle(self, settlements: Sequence[Settlement], *, now: datetime) -> set[uuid.UUID]:
        raise ConnectionRefusedError("the database went away")


async def test_a_batch_that_cannot_be_settled_stays_sending_for_the_reconciler(
    clock: SettableClock,
) -> None:
    works = batch_of("a@school.example", "b@school.example")
    ledger, mailer = FailingSettleLedger(works), FakeMailer()
    sender = make_sender(ledger, mailer, clock)

    assert await sender.send_once() == 2

    assert [ledger.state(w.delivery.delivery_id) for w in works] == ["sending", "sending"]
    assert len(mailer.sent) == 2, "sent once; the in-doubt policy decides, never a resend"
    assert ledger.events == []
    assert sum(sender.stats.sent.values()) == 0


async def test_an_address_that_needs_smtputf8_fails_without_a_send(clock: SettableClock) -> None:
    (work,) = batch_of("zoë@school.example")
    ledger, mailer = FakeLedger([work]), FakeMailer()

    await make_sender(ledger, mailer, clock).send_once()

    assert ledger.state(work.delivery.delivery_id) == "failed"
    assert ledger.rows[work.delivery.delivery_id].last_error == "unencodable_message"
    assert mailer.attempts == []


async def test_an_address_with_a_domain_outside_ascii_is_sent(clock: SettableClock) -> None:
    (work,) = batch_of("ada@bücher.example")
    ledger, mailer = FakeLedger([work]), FakeMailer()

    await make_sender(ledger, mailer, clock).send_once()

    assert ledger.state(work.delivery.delivery_id) == "sent"
    assert len(mailer.attempts) == 1


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
    async def send(self, data: bytes, *, sender: str, recipient: str) -> SendOutcome:
        if recipient == "boom@school.example":
            raise RuntimeError("a bug in a mail library")
        return await super().send(data, sender=sender, recipient=recipient)


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
