"""Opt-outs per purpose: one click for one purpose, the form for all, nothing for the unknown."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from solidarity.notifications.domain.model import Purpose
from solidarity.notifications.service_layer import preferences
from solidarity.shared.contracts.events.common import Role
from solidarity.shared.contracts.events.registration import RegistrantRecordedV1
from tests.unit.notifications.fakes import FakePeople

pytestmark = pytest.mark.unit

NOW = datetime(2023, 11, 1, tzinfo=UTC)


def people_with(person: uuid.UUID) -> FakePeople:
    people = FakePeople()
    people.recipients[person] = RegistrantRecordedV1(
        registrant_id=person, email="ada@school.example", role=Role.STUDENT
    )
    return people


async def test_one_click_opts_out_of_that_purpose_only() -> None:
    person = uuid.uuid4()
    people = people_with(person)

    result = await preferences.unsubscribe(people, person, "invitations", now=NOW)

    assert people.opt_outs[person] == {"invitations"}
    assert Purpose.INVITATIONS not in result.receiving
    assert Purpose.REMINDERS in result.receiving


async def test_all_opts_out_of_everything() -> None:
    person = uuid.uuid4()
    people = people_with(person)

    result = await preferences.unsubscribe(people, person, "all", now=NOW)

    assert result.receiving == frozenset()


async def test_the_form_sets_every_purpose_and_ignores_unknown_ones() -> None:
    person = uuid.uuid4()
    people = people_with(person)
    await preferences.unsubscribe(people, person, "all", now=NOW)

    result = await preferences.save_preferences(
        people, person, ["reminders", "partner_webhooks", "nonsense"], now=NOW
    )

    assert result.receiving == frozenset({Purpose.REMINDERS})


async def test_an_unknown_or_erased_person_has_nothing_to_change() -> None:
    people = FakePeople()
    ghost = uuid.uuid4()
    people.erased.add(ghost)

    result = await preferences.unsubscribe(people, ghost, "invitations", now=NOW)

    assert not result.known
    assert people.opt_outs == {}
