"""Hand-written fakes of the notifications ports, for unit tests (state, not calls)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from solidarity.notifications.domain.model import Delivery, DeliveryKind, Purpose, message_id
from solidarity.notifications.domain.outcomes import SendOutcome
from solidarity.notifications.service_layer.ports import (
    CampaignState,
    ClaimedWork,
    PlannedDelivery,
    PlanningLocks,
    SessionState,
    Settlement,
)
from solidarity.shared.contracts.envelope import Event
from solidarity.shared.contracts.events.catalog import (
    FocusDayAddedV1,
    ResourcePublishedV1,
    SessionCancelledV1,
)
from solidarity.shared.contracts.events.registration import (
    RegistrantRecordedV1,
    SignupConfirmedV1,
)


class FakeMailer:
    """Answers with scripted outcomes per recipient (then `sent`), and keeps what it sent."""

    def __init__(self, script: Mapping[str, Sequence[SendOutcome]] | None = None) -> None:
        self._script = {k: list(v) for k, v in (script or {}).items()}
        self.sent: list[bytes] = []
        self.attempts: list[str] = []
        self.closed = False

    async def send(self, data: bytes, *, sender: str, recipient: str) -> SendOutcome:
        self.attempts.append(recipient)
        queue = self._script.get(recipient)
        outcome = queue.pop(0) if queue else SendOutcome.sent()
        if outcome.kind in ("sent", "unknown"):
            self.sent.append(data)
        return outcome

    async def close(self) -> None:
        self.closed = True


@dataclass
class LedgerRow:
    delivery: Delivery
    state: str = "pending"
    due_at: datetime | None = None
    claimed_at: datetime | None = None
    last_error: str | None = None


class FakeLedger:
    """The ledger in memory: claim, outcomes and the events they would publish."""

    def __init__(self, work: Sequence[ClaimedWork] = ()) -> None:
        self.rows: dict[uuid.UUID, LedgerRow] = {}
        self.work: dict[uuid.UUID, ClaimedWork] = {}
        self.events: list[Event] = []
        self.settle_calls = 0
        for item in work:
            self.add(item)

    def add(
        self, item: ClaimedWork, *, state: str = "pending", due_at: datetime | None = None
    ) -> None:
        self.rows[item.delivery.delivery_id] = LedgerRow(item.delivery, state=state, due_at=due_at)
        self.work[item.delivery.delivery_id] = item

    def state(self, delivery_id: uuid.UUID) -> str:
        return self.rows[delivery_id].state

    async def claim_due(self, *, now: datetime, limit: int) -> list[ClaimedWork]:
        claimed = []
        for key, row in self.rows.items():
            if row.state == "pending" and (row.due_at is None or row.due_at <= now):
                row.state, row.claimed_at = "sending", now
                row.delivery = replace(row.delivery, attempts=row.delivery.attempts + 1)
                item = self.work[key]
                context = item.context and replace(item.context, delivery=row.delivery)
                claimed.append(replace(item, delivery=row.delivery, context=context))
            if len(claimed) == limit:
                break
        return claimed

    async def settle(self, settlements: Sequence[Settlement], *, now: datetime) -> set[uuid.UUID]:
        """One transaction in the real ledger: here, each outcome in turn."""
        self.settle_calls += 1
        settled: set[uuid.UUID] = set()
        for s in settlements:
            allowed = ("sending", "unknown") if s.state == "sent" else ("sending",)
            row = self._move(s.delivery, allowed, s.state)
            if row is None:
                continue
            settled.add(s.delivery.delivery_id)
            row.last_error = s.reason
            if s.due_at is not None:
                row.due_at = s.due_at
            if s.event is not None:
                self.events.append(s.event)
        return settled

    def _move(self, delivery: Delivery, allowed: tuple[str, ...], state: str) -> LedgerRow | None:
        row = self.rows.get(delivery.delivery_id)
        if row is None or row.state not in allowed:
            return None
        row.state = state
        return row

    async def record_sent(self, delivery: Delivery, *, now: datetime, event: Event | None) -> bool:
        if self._move(delivery, ("sending", "unknown"), "sent") is None:
            return False
        if event is not None:
            self.events.append(event)
        return True

    async def record_failed(
        self, delivery: Delivery, *, now: datetime, reason: str, event: Event | None
    ) -> bool:
        row = self._move(delivery, ("sending",), "failed")
        if row is None:
            return False
        row.last_error = reason
        if event is not None:
            self.events.append(event)
        return True

    async def record_retry(
        self, delivery: Delivery, *, now: datetime, due_at: datetime, reason: str
    ) -> bool:
        row = self._move(delivery, ("sending",), "pending")
        if row is None:
            return False
        row.due_at, row.last_error = due_at, reason
        return True

    async def record_unknown(self, delivery: Delivery, *, now: datetime, reason: str) -> bool:
        row = self._move(delivery, ("sending",), "unknown")
        if row is not None:
            row.last_error = reason
        return row is not None

    async def record_dropped(self, delivery: Delivery, *, now: datetime, reason: str) -> bool:
        row = self._move(delivery, ("sending",), "dropped")
        if row is not None:
            row.last_error = reason
        return row is not None

    async def mark_stuck_unknown(self, *, claimed_before: datetime) -> int:
        stuck = [
            r
            for r in self.rows.values()
            if r.state == "sending" and r.claimed_at is not None and r.claimed_at < claimed_before
        ]
        for row in stuck:
            row.state = "unknown"
        return len(stuck)

    async def in_doubt(self, *, limit: int) -> list[Delivery]:
        return [r.delivery for r in self.rows.values() if r.state == "unknown"][:limit]

    async def requeue(self, delivery: Delivery, *, now: datetime) -> bool:
        row = self._move(delivery, ("unknown",), "pending")
        if row is not None:
            row.due_at = now
        return row is not None


class FakeResolver:
    name = "fake"

    def __init__(self, arrived: set[str] | None, *, domain: str = "solidarity.local") -> None:
        self.arrived = arrived
        self.domain = domain
        self.asked: list[str] = []

    def arrive(self, delivery_id: uuid.UUID) -> None:
        assert self.arrived is not None
        self.arrived.add(message_id(delivery_id, domain=self.domain))

    async def delivered(self, message_ids: Sequence[str]) -> dict[str, bool] | None:
        self.asked.extend(message_ids)
        if self.arrived is None:
            return None
        return {m: m in self.arrived for m in message_ids}


class FakeCatalog:
    def __init__(self) -> None:
        self.campaigns: dict[uuid.UUID, int] = {}
        self.sessions: dict[uuid.UUID, tuple[int, int, str]] = {}  # revision, sequence, status

    async def upsert_campaign(self, event: CampaignState) -> bool:
        if self.campaigns.get(event.campaign_id, 0) >= event.revision:
            return False
        self.campaigns[event.campaign_id] = event.revision
        return True

    async def add_focus_day(self, event: FocusDayAddedV1) -> bool:
        return True

    async def add_resource(self, event: ResourcePublishedV1) -> bool:
        return True

    async def upsert_session(self, event: SessionState, *, moved: bool) -> int | None:
        revision, sequence, _ = self.sessions.get(event.session_id, (0, -1, ""))
        if revision >= event.revision:
            return None
        new_sequence = max(event.sequence, sequence + (1 if moved else 0), 0)
        self.sessions[event.session_id] = (event.revision, new_sequence, event.status.value)
        return new_sequence

    async def cancel_session(self, event: SessionCancelledV1) -> int | None:
        current = self.sessions.get(event.session_id)
        if current is None or current[0] >= event.revision:
            return None
        self.sessions[event.session_id] = (event.revision, current[1] + 1, "cancelled")
        return current[1] + 1

    async def bump_session_revision(self, session_id: uuid.UUID, revision: int) -> bool:
        current = self.sessions.get(session_id)
        if current is None or current[0] >= revision:
            return False
        self.sessions[session_id] = (revision, current[1], current[2])
        return True


@dataclass
class FakePeople:
    recipients: dict[uuid.UUID, RegistrantRecordedV1] = field(default_factory=dict)
    erased: set[uuid.UUID] = field(default_factory=set)
    signups: dict[tuple[uuid.UUID, uuid.UUID], SignupConfirmedV1] = field(default_factory=dict)
    registrations: dict[uuid.UUID, str] = field(default_factory=dict)
    opt_outs: dict[uuid.UUID, set[str]] = field(default_factory=dict)

    async def is_erased(self, recipient_id: uuid.UUID) -> bool:
        return recipient_id in self.erased

    async def exists(self, recipient_id: uuid.UUID) -> bool:
        return recipient_id in self.recipients

    async def locale_of(self, recipient_id: uuid.UUID) -> str | None:
        recorded = self.recipients.get(recipient_id)
        return recorded.locale if recorded else None

    async def record_recipient(self, event: RegistrantRecordedV1) -> None:
        self.recipients[event.registrant_id] = event

    async def erase(self, recipient_id: uuid.UUID, *, at: datetime) -> None:
        self.recipients.pop(recipient_id, None)
        self.opt_outs.pop(recipient_id, None)
        self.erased.add(recipient_id)

    async def record_signup(self, event: SignupConfirmedV1) -> None:
        self.signups[(event.registrant_id, event.campaign_id)] = event

    async def set_registration(self, *, registration_id: uuid.UUID, status: str, **_: Any) -> None:
        self.registrations[registration_id] = status

    async def opted_out(self, recipient_id: uuid.UUID) -> set[str]:
        return set(self.opt_outs.get(recipient_id, set()))

    async def set_opt_outs(
        self, recipient_id: uuid.UUID, purposes: Mapping[Purpose, bool], *, at: datetime
    ) -> None:
        current = self.opt_outs.setdefault(recipient_id, set())
        for purpose, out in purposes.items():
            (current.add if out else current.discard)(purpose.value)


@dataclass
class FakePlanner:
    """Records intents by ledger key, as the unique constraint would."""

    planned: dict[tuple[uuid.UUID, str, str], PlannedDelivery] = field(default_factory=dict)
    fan_outs: list[tuple[str, Any]] = field(default_factory=list)
    dropped: list[tuple[str, tuple[DeliveryKind, ...]]] = field(default_factory=list)

    async def plan(self, delivery: PlannedDelivery) -> bool:
        key = (delivery.recipient_id, delivery.kind.value, delivery.subject_ref)
        if key in self.planned:
            return False
        self.planned[key] = delivery
        return True

    def kinds(self) -> list[str]:
        return sorted(kind for _, kind, _ in self.planned)

    async def invite_audience(
        self, session_id: uuid.UUID, *, now: datetime, kinds: Sequence[str]
    ) -> int:
        self.fan_outs.append(("invite_audience", session_id))
        return 0

    async def invite_to_upcoming(
        self,
        recipient_id: uuid.UUID,
        campaign_id: uuid.UUID,
        *,
        now: datetime,
        kinds: Sequence[str],
    ) -> int:
        self.fan_outs.append(("invite_to_upcoming", recipient_id))
        return 0

    async def plan_reminders(self, *, now: datetime, **target: uuid.UUID | None) -> int:
        self.fan_outs.append(("reminders", {k: v for k, v in target.items() if v}))
        return 0

    async def drop_pending(
        self, *, reason: str, kinds: Sequence[DeliveryKind], **target: uuid.UUID | None
    ) -> int:
        self.dropped.append((reason, tuple(kinds)))
        return 0

    async def drop_unwanted_reminders(self, campaign_id: uuid.UUID) -> int:
        self.dropped.append(("reminder_offset_removed", (DeliveryKind.REMINDER,)))
        return 0

    async def notify_registrants(
        self,
        session_id: uuid.UUID,
        *,
        kind: DeliveryKind,
        sequence: int,
        statuses: Sequence[str],
        now: datetime,
    ) -> int:
        self.fan_outs.append((f"notify_{kind.value}", (sequence, tuple(statuses))))
        return 0

    async def plan_webhook(
        self, partner_id: uuid.UUID, *, event_id: uuid.UUID, body: dict[str, Any], now: datetime
    ) -> bool:
        self.fan_outs.append(("webhook", event_id))
        return True


@dataclass
class FakeUnitOfWork:
    catalog: FakeCatalog = field(default_factory=FakeCatalog)
    people: FakePeople = field(default_factory=FakePeople)
    deliveries: FakePlanner = field(default_factory=FakePlanner)
    held: list[PlanningLocks] = field(default_factory=list)

    async def hold(self, locks: PlanningLocks) -> None:
        self.held.append(locks)
