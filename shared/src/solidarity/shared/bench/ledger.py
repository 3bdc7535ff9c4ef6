"""What each submission of a burst asked for, when it was sent, and what came back for it.

Kept in flat arrays indexed by the submission's number, so a run of a million submissions
costs tens of megabytes here, not gigabytes. Every answer on `registration.outcomes.v1` is
checked against its submission ("lost": a submission still waiting for an answer to something
it asked for; "duplicated": a second, different answer for the same thing), and every mail in
the sink against the answers (a welcome for each new sign-up, a confirmation for each seat, a
waitlist notice for each waitlist place; "duplicated": a Message-ID seen twice). About 46 bytes
a submission and 16 a mail.
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from solidarity.shared.partners import FOLLOW_UP_TYPES, Outcome

# What a submission asks for (bits of `asks`).
ASK_SIGNUP = 1
ASK_SESSION = 2
CONSENTS_TO_INVITATIONS = 4

# The things an answer can be about.
_SIGNUP, _SESSION, _WHOLE = 0, 1, 2

# Mail the answers call for (bits of `_mail_expected` and `_mail_seen`).
MAIL_WELCOME = 1
MAIL_CONFIRMATION = 2
MAIL_WAITLISTED = 4
_MAIL_BITS = {
    "welcome": MAIL_WELCOME,
    "confirmation": MAIL_CONFIRMATION,
    "waitlisted": MAIL_WAITLISTED,
}
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class SinkMail:
    """One mail the sink kept: whom it went to, what it is, when the sink took it."""

    to: str
    subject: str
    kind: str  # welcome, invitation, confirmation, waitlisted, ... (from the subject)
    message_id: str | None
    received_at: float  # seconds since the epoch


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when there are none)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def latency_summary(values: Iterable[float]) -> dict[str, float]:
    """p50, p95, p99 and max of some latencies, in seconds."""
    ordered = sorted(values)
    return {
        "p50_s": round(percentile(ordered, 0.50), 4),
        "p95_s": round(percentile(ordered, 0.95), 4),
        "p99_s": round(percentile(ordered, 0.99), 4),
        "max_s": round(ordered[-1], 4) if ordered else 0.0,
        "count": len(ordered),
    }


def index_of_submission(submission_id: str | None) -> int | None:
    """The bench names its submissions `<partner>-<run>-<number>`."""
    if not submission_id:
        return None
    _, _, number = submission_id.rpartition("-")
    return int(number) if number.isdigit() else None


class BurstLedger:
    """Submissions by number: what each asked for, when it went out, what came back."""

    def __init__(self, capacity: int, *, origin: float) -> None:
        self.capacity = capacity
        self.origin = origin  # the zero of the per-second series
        self.submitted_at = array("d", bytes(8 * capacity))
        self.answered_at = array("d", bytes(8 * capacity))
        self.asks = bytearray(capacity)
        self._first_answer = [array("Q", bytes(8 * capacity)) for _ in range(3)]
        self._answers = [bytearray(capacity) for _ in range(3)]
        self._mail_expected = bytearray(capacity)
        self._mail_seen = bytearray(capacity)
        self.sent = 0
        self.answered = 0  # submissions with an answer to everything they asked for
        self.duplicated = 0  # second, different answers to the same thing
        self.wire_repeats = 0  # the same answer (same event id) read twice
        self.resend_answers = 0  # answers to a partner's resend, flagged `duplicate`
        self.resent = 0  # submissions a partner sent again (the broker had not acknowledged)
        self.resent_unanswered = 0  # submissions a partner sent again after no answer
        self.strangers = 0  # answers that name no submission of this run
        self.follow_ups = 0  # promotions and cancellations (none expected in a burst)
        self.invitable = 0  # new sign-ups that consented to invitations
        self.outcomes: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.submitted_per_s: Counter[int] = Counter()
        self.answered_per_s: Counter[int] = Counter()
        # Mail.
        self.mails: Counter[str] = Counter()
        self.mails_per_s: Counter[int] = Counter()
        self.mail_strangers = 0  # mail to nobody of this run
        self.mail_pending = 0  # mail an answer calls for and the sink does not have yet
        self.first_mail_at = 0.0
        self.last_mail_at = 0.0
        # 8 bytes per mail, not a set of strings: two million mails must stay cheap to watch.
        self._message_hashes = array("q")
        self.mail_index = array("l")
        self.mail_latency = array("f")

    # Sending -------------------------------------------------------------------------------

    def submitted(self, index: int, asks: int, at: float) -> None:
        self.asks[index] = asks
        self.submitted_at[index] = at
        self.sent += 1
        self.submitted_per_s[int(at - self.origin)] += 1

    # Answers -------------------------------------------------------------------------------

    def add_outcomes(self, outcomes: Iterable[Outcome], at: float) -> None:
        for outcome in outcomes:
            self.add_outcome(outcome, at)

    def add_outcome(self, outcome: Outcome, at: float) -> None:
        index = index_of_submission(outcome.submission_id)
        if index is None or not 0 <= index < self.capacity or not self.submitted_at[index]:
            self.strangers += 1
            return
        kind = outcome.event_type
        if kind in FOLLOW_UP_TYPES:
            self.follow_ups += 1
            return
        if kind == "SignupConfirmed":
            about = _SIGNUP
        elif outcome.session_id is not None:
            about = _SESSION
        else:
            about = _WHOLE
        event = outcome.event_id.int & _MASK64
        answers = self._answers[about]
        if answers[index]:
            if self._first_answer[about][index] == event:
                self.wire_repeats += 1
                return
            if outcome.duplicate:
                # The platform recognised a partner's resend of the same submission id and
                # answered it as such: the same decision again, not a second one.
                self.resend_answers += 1
                return
            self.duplicated += 1
            answers[index] = min(255, answers[index] + 1)
        else:
            answers[index] = 1
            self._first_answer[about][index] = event
        self.outcomes[kind + (" (repeat)" if outcome.duplicate else "")] += 1
        if kind == "SessionRegistrationRejected":
            self.rejections[outcome.reason or "?"] += 1
        if kind == "SignupConfirmed" and not outcome.duplicate:
            self._expect_mail(index, MAIL_WELCOME)
            if self.asks[index] & CONSENTS_TO_INVITATIONS:
                self.invitable += 1
        elif kind == "SessionRegistrationConfirmed" and not outcome.duplicate:
            self._expect_mail(index, MAIL_CONFIRMATION)
        elif kind == "SessionRegistrationWaitlisted" and not outcome.duplicate:
            self._expect_mail(index, MAIL_WAITLISTED)
        if not self.answered_at[index] and self._complete(index):
            self.answered_at[index] = at
            self.answered += 1
            self.answered_per_s[int(at - self.origin)] += 1

    def _complete(self, index: int) -> bool:
        asks = self.asks[index]
        if self._answers[_WHOLE][index]:
            return True
        if asks & ASK_SIGNUP and not self._answers[_SIGNUP][index]:
            return False
        return not (asks & ASK_SESSION and not self._answers[_SESSION][index])

    def unanswered(self, start: int, stop: int) -> int:
        """Submissions in [start, stop) sent but not answered in full."""
        return sum(
            1 for i in range(start, stop) if self.submitted_at[i] and not self.answered_at[i]
        )

    def unanswered_numbers(self, start: int, stop: int, *, limit: int) -> list[int]:
        """The first `limit` submissions in [start, stop) sent but not answered in full."""
        found: list[int] = []
        for i in range(start, stop):
            if self.submitted_at[i] and not self.answered_at[i]:
                found.append(i)
                if len(found) >= limit:
                    break
        return found

    def answered_between(self, start: int, stop: int) -> int:
        return sum(1 for i in range(start, stop) if self.answered_at[i])

    def outcome_latencies(self, start: int, stop: int) -> list[float]:
        return [
            self.answered_at[i] - self.submitted_at[i]
            for i in range(start, stop)
            if self.answered_at[i]
        ]

    def span(self, start: int, stop: int) -> tuple[float, float]:
        """(first submission, last full answer) of the submissions in [start, stop)."""
        sent = [self.submitted_at[i] for i in range(start, stop) if self.submitted_at[i]]
        answered = [self.answered_at[i] for i in range(start, stop) if self.answered_at[i]]
        if not sent or not answered:
            return 0.0, 0.0
        return min(sent), max(answered)

    # Mail ----------------------------------------------------------------------------------

    def _expect_mail(self, index: int, bit: int) -> None:
        if self._mail_expected[index] & bit:
            return
        self._mail_expected[index] |= bit
        if not self._mail_seen[index] & bit:
            self.mail_pending += 1

    @property
    def mail_duplicated(self) -> int:
        """Mails whose Message-ID the sink holds more than once (beyond the first copy)."""
        ordered = sorted(self._message_hashes)
        return sum(1 for a, b in itertools.pairwise(ordered) if a == b)

    def add_mail(self, mail: SinkMail, index: int | None) -> None:
        """Count a mail that reached the sink (duplicates are found by `mail_duplicated`)."""
        if mail.message_id is not None:
            self._message_hashes.append(hash(mail.message_id))
        self.mails[mail.kind] += 1
        self.mails_per_s[int(mail.received_at - self.origin)] += 1
        self.first_mail_at = min(self.first_mail_at or mail.received_at, mail.received_at)
        self.last_mail_at = max(self.last_mail_at, mail.received_at)
        if index is None or not 0 <= index < self.capacity or not self.submitted_at[index]:
            self.mail_strangers += 1
            return
        self.mail_index.append(index)
        self.mail_latency.append(mail.received_at - self.submitted_at[index])
        bit = _MAIL_BITS.get(mail.kind, 0)
        if bit and not self._mail_seen[index] & bit:
            self._mail_seen[index] |= bit
            if self._mail_expected[index] & bit:
                self.mail_pending -= 1

    def mail_latencies(self, start: int, stop: int) -> list[float]:
        return [
            latency
            for index, latency in zip(self.mail_index, self.mail_latency, strict=True)
            if start <= index < stop
        ]

    def mail_span(self, start: int, stop: int) -> tuple[int, float, float]:
        """(mails, first received, last received) of the mail for submissions in [start, stop)."""
        count, first, last = 0, 0.0, 0.0
        for index, latency in zip(self.mail_index, self.mail_latency, strict=True):
            if start <= index < stop:
                at = self.submitted_at[index] + latency
                count += 1
                first = min(first or at, at)
                last = max(last, at)
        return count, first, last
