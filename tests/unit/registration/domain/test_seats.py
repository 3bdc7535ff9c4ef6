"""Seat rules: seats while they last, an ordered waitlist, promotions, cuts, never oversold."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from solidarity.registration.domain.seats import SeatCounter, SeatRuleError, WaitlistSlot

pytestmark = pytest.mark.unit


def counter(capacity: int | None) -> SeatCounter:
    return SeatCounter(session_id=uuid.uuid4(), capacity=capacity)


def test_requests_take_free_seats_in_order_then_join_the_waitlist() -> None:
    seats = counter(3)
    first = seats.allocate(2)
    second = seats.allocate(3)
    assert (first.confirmed, first.waitlist) == (2, ())
    assert second.confirmed == 1
    assert second.waitlist == (WaitlistSlot(ordinal=1, position=1), WaitlistSlot(2, 2))
    assert second.slot_for(0) is None
    assert second.slot_for(2) == WaitlistSlot(2, 2)
    assert (seats.confirmed, seats.waitlisted) == (3, 2)


def test_unlimited_sessions_confirm_everyone() -> None:
    seats = counter(None)
    assert seats.allocate(1000).confirmed == 1000
    assert seats.free_seats is None


def test_nobody_jumps_the_queue_while_people_wait() -> None:
    seats = SeatCounter(session_id=uuid.uuid4(), capacity=5, confirmed=4, waitlisted=2, tail=2)
    allocation = seats.allocate(1)
    assert allocation.confirmed == 0
    assert allocation.waitlist == (WaitlistSlot(ordinal=3, position=3),)


def test_a_freed_seat_or_a_raise_promotes_the_head() -> None:
    seats = counter(2)
    seats.allocate(5)
    seats.release(confirmed=1)
    assert seats.promotions_due() == 1
    seats.promote(1)
    seats.set_capacity(4)
    assert seats.promotions_due() == 2
    seats.promote(2)
    assert (seats.confirmed, seats.waitlisted) == (4, 0)


def test_a_cut_moves_the_latest_confirmed_to_the_head_of_the_waitlist() -> None:
    seats = counter(5)
    seats.allocate(7)  # 5 confirmed, ordinals 1..2 waiting
    seats.set_capacity(2)
    assert seats.demotions_due() == 3
    slots = seats.demote(3)
    assert [s.position for s in slots] == [1, 2, 3]
    assert [s.ordinal for s in slots] == [-2, -1, 0]  # all before ordinal 1
    assert (seats.confirmed, seats.waitlisted) == (2, 5)
    again = seats.allocate(1)
    assert again.waitlist == (WaitlistSlot(ordinal=3, position=6),)


def test_the_counter_refuses_to_oversell() -> None:
    seats = counter(1)
    seats.allocate(1)
    with pytest.raises(SeatRuleError):
        seats.promote(1)
    seats.confirmed = 2
    with pytest.raises(SeatRuleError):
        seats.check()


@given(
    capacity=st.integers(min_value=0, max_value=20),
    steps=st.lists(
        st.tuples(st.sampled_from(["allocate", "cancel", "capacity"]), st.integers(0, 12)),
        max_size=40,
    ),
)
def test_whatever_happens_confirmations_never_exceed_capacity(
    capacity: int, steps: list[tuple[str, int]]
) -> None:
    seats = counter(capacity)
    for action, n in steps:
        if action == "allocate":
            allocation = seats.allocate(n)
            positions = [slot.position for slot in allocation.waitlist]
            assert positions == list(
                range(seats.waitlisted - len(positions) + 1, seats.waitlisted + 1)
            )
        elif action == "cancel":
            seats.release(confirmed=min(n, seats.confirmed))
        else:
            seats.set_capacity(n)
            if seats.demotions_due():
                seats.demote(seats.demotions_due())
        seats.promote(seats.promotions_due())
        assert seats.capacity is None or seats.confirmed <= seats.capacity
        # Nobody waits while a seat is free.
        assert seats.waitlisted == 0 or seats.free_seats == 0
