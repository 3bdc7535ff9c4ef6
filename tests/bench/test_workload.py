"""The workload: the same submission for the same number, a mix of requests, parseable ids."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from solidarity.shared.bench.ledger import (
    ASK_SESSION,
    ASK_SIGNUP,
    CONSENTS_TO_INVITATIONS,
    index_of_submission,
)
from solidarity.shared.bench.workload import (
    PARTNER_SEATS,
    Workload,
    bench_email,
    index_of_email,
)
from solidarity.shared.contracts.signing import sign
from tests.bench.support import SCHOOLS, campaign, partner, session

pytestmark = pytest.mark.unit


def _workload(**changes: object) -> Workload:
    values: dict[str, object] = {
        "campaign": campaign(session(), session(audience=("educator",)), session(capacity=300)),
        "accounts": [partner("a"), partner("b"), partner("c")],
        "seats": PARTNER_SEATS[:3],
        "schools": SCHOOLS,
        "run": "ab12cd",
        "seed": 7,
        "invitation_share": 0.3,
    }
    values.update(changes)
    return Workload(**values)  # type: ignore[arg-type]


def test_a_number_always_makes_the_same_request() -> None:
    one = _workload()
    other = _workload(campaign=one.campaign, accounts=one.accounts)
    first, second = one.build(41), other.build(41)
    body = json.loads(first.message.value)["payload"]
    assert body == json.loads(second.message.value)["payload"]
    assert first.asks == second.asks
    assert first.message.key == second.message.key


def test_submissions_are_signed_by_their_partner_and_name_their_number() -> None:
    workload = _workload()
    item = workload.build(5)
    account = workload.accounts[item.partner]
    headers = dict(item.message.headers)
    assert item.partner == 5 % 3
    assert headers["x-solidarity-partner"] == str(account.partner_id).encode()
    assert (
        headers["x-solidarity-signature"]
        == sign(account.signing_secret, item.message.value).encode()
    )
    payload = json.loads(item.message.value)["payload"]
    assert index_of_submission(payload["submission_id"]) == 5
    assert index_of_email(payload["registrant"]["email"]) == 5
    assert payload["answers"]["role"] == payload["registrant"]["role"]


def test_the_mix_has_sign_ups_sessions_both_and_consents() -> None:
    workload = _workload()
    asks = Counter(workload.build(i).asks & (ASK_SIGNUP | ASK_SESSION) for i in range(2000))
    assert asks[ASK_SIGNUP] > 700
    assert asks[ASK_SIGNUP | ASK_SESSION] > 500
    assert asks[ASK_SESSION] > 250
    consenting = sum(bool(workload.build(i).asks & CONSENTS_TO_INVITATIONS) for i in range(2000))
    assert 0.15 < consenting / 2000 < 0.35


def test_bench_addresses_round_trip_and_others_are_not_ours() -> None:
    assert index_of_email(bench_email(12345, "ab12cd")) == 12345
    assert index_of_email("<b7.zz@bench.example.org>") == 7
    assert index_of_email("amara@example.org") is None
    assert index_of_email("bob@bench.example.org") is None
