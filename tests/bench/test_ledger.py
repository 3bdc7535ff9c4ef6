"""The ledger: what counts as answered, lost, duplicated, and which mail is still missing."""

from __future__ import annotations

import uuid

import pytest

from solidarity.shared.bench.ledger import (
    ASK_SESSION,
    ASK_SIGNUP,
    CONSENTS_TO_INVITATIONS,
    BurstLedger,
    SinkMail,
    index_of_submission,
    latency_summary,
    percentile,
)
from solidarity.shared.bench.phases import sustainable_rate
from tests.bench.support import outcome

pytestmark = pytest.mark.unit


def _ledger(*asks: int) -> BurstLedger:
    ledger = BurstLedger(len(asks), origin=1000.0)
    for index, ask in enumerate(asks):
        ledger.submitted(index, ask, at=1000.0 + index)
    return ledger


def _mail(kind: str, index: int, *, message_id: str, at: float = 1100.0) -> SinkMail:
    return SinkMail(
        to=f"b{index}.run@bench.example.org",
        subject=kind,
        kind=kind,
        message_id=message_id,
        received_at=at,
    )


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.99) == 0.0
    summary = latency_summary([3.0, 1.0, 2.0])
    assert summary["p50_s"] == 2.0
    assert summary["max_s"] == 3.0
    assert summary["count"] == 3


def test_submission_numbers_are_read_from_their_ids() -> None:
    assert index_of_submission("riverside-ab12cd-42") == 42
    assert index_of_submission("someone-else") is None
    assert index_of_submission(None) is None


def test_a_submission_is_answered_once_everything_it_asked_for_is() -> None:
    ledger = _ledger(ASK_SIGNUP | ASK_SESSION)
    session = uuid.uuid4()

    ledger.add_outcome(outcome("SignupConfirmed", "p-r-0"), at=1001.0)
    assert ledger.answered == 0
    ledger.add_outcome(
        outcome("SessionRegistrationWaitlisted", "p-r-0", session_id=session), at=1002.5
    )

    assert ledger.answered == 1
    assert ledger.unanswered(0, 1) == 0
    assert ledger.outcome_latencies(0, 1) == [2.5]


def test_a_whole_rejection_answers_everything() -> None:
    ledger = _ledger(ASK_SIGNUP | ASK_SESSION)
    ledger.add_outcome(
        outcome("SessionRegistrationRejected", "p-r-0", reason="invalid_email"), at=1001.0
    )
    assert ledger.answered == 1
    assert ledger.rejections == {"invalid_email": 1}


def test_unanswered_submissions_are_lost() -> None:
    ledger = _ledger(ASK_SIGNUP, ASK_SIGNUP)
    ledger.add_outcome(outcome("SignupConfirmed", "p-r-0"), at=1001.0)
    assert ledger.unanswered(0, 2) == 1


def test_a_second_different_answer_is_a_duplicate_and_a_redelivery_is_not() -> None:
    ledger = _ledger(ASK_SIGNUP)
    first = outcome("SignupConfirmed", "p-r-0")
    ledger.add_outcome(first, at=1001.0)
    ledger.add_outcome(first, at=1001.5)  # the same event read again
    assert (ledger.duplicated, ledger.wire_repeats) == (0, 1)

    ledger.add_outcome(outcome("SignupConfirmed", "p-r-0"), at=1002.0)
    assert ledger.duplicated == 1


def test_answers_to_strangers_and_follow_ups_are_counted_apart() -> None:
    ledger = _ledger(ASK_SIGNUP)
    ledger.add_outcome(outcome("SignupConfirmed", "other-partner-7"), at=1001.0)
    ledger.add_outcome(outcome("WaitlistPromoted", "p-r-0", session_id=uuid.uuid4()), at=1001.0)
    assert (ledger.strangers, ledger.follow_ups, ledger.answered) == (1, 1, 0)


def test_mail_called_for_by_answers_is_pending_until_it_arrives() -> None:
    ledger = _ledger(ASK_SIGNUP | CONSENTS_TO_INVITATIONS, ASK_SESSION)
    ledger.add_outcome(outcome("SignupConfirmed", "p-r-0"), at=1001.0)
    ledger.add_outcome(
        outcome("SessionRegistrationConfirmed", "p-r-1", session_id=uuid.uuid4()), at=1002.0
    )
    assert ledger.mail_pending == 2
    assert ledger.invitable == 1

    ledger.add_mail(_mail("welcome", 0, message_id="<a@x>"), 0)
    ledger.add_mail(_mail("invitation", 0, message_id="<b@x>"), 0)
    assert ledger.mail_pending == 1
    ledger.add_mail(_mail("confirmation", 1, message_id="<c@x>"), 1)
    assert ledger.mail_pending == 0
    assert ledger.mail_latencies(0, 2) == pytest.approx([100.0, 100.0, 99.0])


def test_mail_may_be_read_before_the_answer_that_calls_for_it() -> None:
    ledger = _ledger(ASK_SIGNUP)
    ledger.add_mail(_mail("welcome", 0, message_id="<a@x>"), 0)
    ledger.add_outcome(outcome("SignupConfirmed", "p-r-0"), at=1001.0)
    assert ledger.mail_pending == 0


def test_a_message_id_seen_twice_is_a_duplicated_mail() -> None:
    ledger = _ledger(ASK_SIGNUP)
    ledger.add_mail(_mail("welcome", 0, message_id="<a@x>"), 0)
    ledger.add_mail(_mail("invitation", 0, message_id="<b@x>"), 0)
    assert ledger.mail_duplicated == 0
    ledger.add_mail(_mail("welcome", 0, message_id="<a@x>", at=1200.0), 0)
    ledger.add_mail(_mail("welcome", 0, message_id="<a@x>", at=1300.0), 0)
    assert ledger.mail_duplicated == 2
    assert ledger.mails == {"welcome": 3, "invitation": 1}


def test_a_million_submissions_fit_in_tens_of_megabytes() -> None:
    ledger = BurstLedger(1_000_000, origin=0.0)
    floats = sum(a.itemsize * len(a) for a in (ledger.submitted_at, ledger.answered_at))
    events = sum(a.itemsize * len(a) for a in ledger._first_answer)
    assert floats + events + 6 * ledger.capacity < 50 * 1024 * 1024


def test_the_sustainable_rate_is_held_back_by_the_mail_when_it_lags() -> None:
    ledger = _ledger(ASK_SIGNUP, ASK_SIGNUP)  # submitted at 1000 and 1001
    ledger.add_outcome(outcome("SignupConfirmed", "p-r-0"), at=1001.0)
    ledger.add_outcome(outcome("SignupConfirmed", "p-r-1"), at=1002.0)
    assert ledger.mail_pending == 2
    assert sustainable_rate(ledger, range(2)) == 1.0  # mail not all in: decided/s only

    ledger.add_mail(_mail("welcome", 0, message_id="<a@x>", at=1004.0), 0)
    ledger.add_mail(_mail("welcome", 1, message_id="<b@x>", at=1008.0), 1)
    assert sustainable_rate(ledger, range(2)) == 0.25  # two done in the 8 s to the last mail
