"""Seats and waitlists of one session: who is confirmed, who waits, and in what order.

The counter is the one source of truth for how many seats are taken. It is changed only
under its row lock, in the transaction that records the registrations it counts, and the
database refuses a counter above capacity, so a session can never be oversold.

Rules:

- First come, first served: requests take free seats in the order they are decided; when no
  seat is free they join the end of the waitlist.
- Nobody jumps the queue: while anyone waits, a new request waits too (a free seat goes to
  the head of the waitlist first).
- A cancellation or a capacity increase promotes the head of the waitlist, in order.
- A capacity cut below the confirmed count moves the most recently confirmed people back to
  the *head* of the waitlist (last in, first out), keeping their order, so they are the first
  promoted if seats free up again. Everyone else keeps their seat.
- A cancelled session cancels every live registration.

Waitlist order is kept by ordinals that are never reused: new people get `tail + 1`, people
moved back by a capacity cut get ordinals just below `head`. A person's position is their
rank among those waiting (1 is next).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


class SeatRuleError(ValueError):
    """A seat operation that would break the counters' invariants (a bug, never input)."""


@dataclass(frozen=True, slots=True)
class WaitlistSlot:
    ordinal: int
    position: int


@dataclass(frozen=True, slots=True)
class SeatAllocation:
    """The answer to `n` requests: the first `confirmed` get seats, the rest these slots."""

    confirmed: int
    waitlist: tuple[WaitlistSlot, ...]

    def slot_for(self, index: int) -> WaitlistSlot | None:
        """The waitlist slot of the index-th request, or None when it got a seat."""
        if index < self.confirmed:
            return None
        return self.waitlist[index - self.confirmed]


@dataclass(slots=True)
class SeatCounter:
    """The seat counters of one session (a row of `sessions`, locked while changed)."""

    session_id: uuid.UUID
    capacity: int | None
    confirmed: int = 0
    waitlisted: int = 0
    tail: int = 0
    head: int = 1
    accepting: bool = True  # False once the session is cancelled: no new seats, no waitlist

    def check(self) -> None:
        if self.confirmed < 0 or self.waitlisted < 0:
            raise SeatRuleError(f"negative counters on session {self.session_id}")
        if self.capacity is not None and self.confirmed > self.capacity:
            raise SeatRuleError(f"session {self.session_id} would be oversold")

    @property
    def free_seats(self) -> int | None:
        """Seats free now (None: unlimited)."""
        if self.capacity is None:
            return None
        return max(0, self.capacity - self.confirmed)

    def allocate(self, requests: int) -> SeatAllocation:
        """Decide `requests` new registrations in order: seats while they last, then waitlist."""
        if requests < 0:
            raise SeatRuleError("a negative number of requests")
        free = self.free_seats
        if self.waitlisted > 0:
            seats = 0  # nobody jumps the queue
        elif free is None:
            seats = requests
        else:
            seats = min(requests, free)
        waiting = requests - seats
        slots = tuple(
            WaitlistSlot(ordinal=self.tail + 1 + i, position=self.waitlisted + 1 + i)
            for i in range(waiting)
        )
        self.confirmed += seats
        self.waitlisted += waiting
        self.tail += waiting
        self.check()
        return SeatAllocation(confirmed=seats, waitlist=slots)

    def promotions_due(self) -> int:
        """How many people at the head of the waitlist can be confirmed now."""
        free = self.free_seats
        if free is None:
            return self.waitlisted
        return min(free, self.waitlisted)

    def promote(self, count: int) -> None:
        """Confirm the first `count` people of the waitlist (the caller picks them by ordinal)."""
        if count > self.waitlisted:
            raise SeatRuleError("promoting more people than are waiting")
        self.waitlisted -= count
        self.confirmed += count
        self.check()

    def demotions_due(self) -> int:
        """How many confirmed people are over capacity after a cut."""
        if self.capacity is None:
            return 0
        return max(0, self.confirmed - self.capacity)

    def demote(self, count: int) -> tuple[WaitlistSlot, ...]:
        """Move `count` confirmed people to the head of the waitlist.

        The slots are in the order the caller gives the people (earliest confirmed first):
        they take positions 1..count and everyone already waiting moves back by `count`.
        """
        if count > self.confirmed:
            raise SeatRuleError("demoting more people than are confirmed")
        first = self.head - count
        slots = tuple(WaitlistSlot(ordinal=first + i, position=1 + i) for i in range(count))
        self.head = first
        self.confirmed -= count
        self.waitlisted += count
        self.check()
        return slots

    def release(self, *, confirmed: int = 0, waitlisted: int = 0) -> None:
        """Cancellations: free these seats and waitlist places."""
        if confirmed > self.confirmed or waitlisted > self.waitlisted:
            raise SeatRuleError("releasing more than is held")
        self.confirmed -= confirmed
        self.waitlisted -= waitlisted
        self.check()

    def set_capacity(self, capacity: int | None) -> None:
        """A new capacity; the caller then demotes `demotions_due()` and promotes the rest."""
        if capacity is not None and capacity < 0:
            raise SeatRuleError("a negative capacity")
        self.capacity = capacity
