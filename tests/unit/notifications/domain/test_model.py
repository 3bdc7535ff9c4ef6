"""Ledger keys, purposes and the rules that drop a delivery instead of sending it."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from solidarity.notifications.domain.model import (
    PURPOSE_OF,
    DeliveryKind,
    Purpose,
    delivery_id,
    message_id,
    resources_for,
    why_not_send,
)
from tests.unit.notifications import examples

pytestmark = pytest.mark.unit

BEFORE = examples.SESSION_START - timedelta(days=1)


def test_the_ledger_key_is_stable_and_distinct_per_recipient_kind_and_subject() -> None:
    person, other = uuid.uuid4(), uuid.uuid4()

    key = delivery_id(person, "invitation", "s1")

    assert key == delivery_id(person, "invitation", "s1")
    assert (
        len(
            {
                key,
                delivery_id(other, "invitation", "s1"),
                delivery_id(person, "reminder", "s1"),
                delivery_id(person, "invitation", "s2"),
            }
        )
        == 4
    )
    assert message_id(key, domain="solidarity.local") == f"<{key}@solidarity.local>"


def test_every_kind_has_a_purpose() -> None:
    assert set(PURPOSE_OF) == set(DeliveryKind)
    assert PURPOSE_OF[DeliveryKind.INVITATION] == Purpose.INVITATIONS
    assert PURPOSE_OF[DeliveryKind.REMINDER] == Purpose.REMINDERS


def test_a_due_delivery_is_sent_when_nothing_stands_in_the_way() -> None:
    for kind in (DeliveryKind.CONFIRMATION, DeliveryKind.REMINDER, DeliveryKind.INVITATION):
        assert why_not_send(examples.context(kind), now=BEFORE) is None


def test_an_opt_out_of_the_purpose_drops_it() -> None:
    context = examples.context(DeliveryKind.INVITATION, opted_out=frozenset({"invitations"}))
    other_purpose = examples.context(
        DeliveryKind.CONFIRMATION, opted_out=frozenset({"invitations"})
    )

    assert why_not_send(context, now=BEFORE) == "opted_out"
    assert why_not_send(other_purpose, now=BEFORE) is None


def test_invitations_and_reminders_for_a_cancelled_or_started_session_are_dropped() -> None:
    cancelled = examples.context(
        DeliveryKind.REMINDER, session_view=examples.session(status="cancelled")
    )
    started = examples.context(DeliveryKind.INVITATION)

    assert why_not_send(cancelled, now=BEFORE) == "session_cancelled"
    assert why_not_send(started, now=examples.SESSION_START) == "session_started"


def test_a_reminder_needs_a_confirmed_seat_and_the_current_time() -> None:
    waitlisted = examples.context(DeliveryKind.REMINDER, registration_status="waitlisted")
    moved = examples.context(DeliveryKind.REMINDER, session_view=examples.session(sequence=1))

    assert why_not_send(waitlisted, now=BEFORE) == "registration_not_confirmed"
    assert why_not_send(moved, now=BEFORE) == "session_moved"


def test_resources_follow_the_persons_role_and_language() -> None:
    campaign = examples.campaign()

    student = [r.title for r in resources_for(campaign, role="student", locale="en")]
    educator = [r.title for r in resources_for(campaign, role="educator", locale="en")]
    spanish_student = [r.title for r in resources_for(campaign, role="student", locale="es")]
    spanish_educator = [r.title for r in resources_for(campaign, role="educator", locale="es")]

    assert student == ["Student Guide"]
    assert educator == ["Educator Guide"]
    assert spanish_student == ["Guía para estudiantes"]
    assert spanish_educator == ["Educator Guide"], "no Spanish guide: the English one, not none"


def test_a_resource_for_everyone_reaches_every_role() -> None:
    campaign = examples.campaign()
    shared = replace(campaign.resources[0], audience=(), title="For everyone")
    campaign = replace(campaign, resources=(shared,))

    assert [r.title for r in resources_for(campaign, role="family", locale="en")] == [
        "For everyone"
    ]
