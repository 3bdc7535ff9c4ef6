"""Partner credentials: API keys are hashed, signing secrets derived, signatures checked."""

from __future__ import annotations

import uuid

import pytest

from solidarity.registration.domain.partners import (
    hash_api_key,
    issue_credentials,
    sign,
    signature_matches,
    signing_secret,
)

pytestmark = pytest.mark.unit

MASTER = b"master-key-for-tests-0123"


def test_signing_secrets_are_derived_per_partner_and_version() -> None:
    partner = uuid.uuid4()
    assert signing_secret(MASTER, partner) == signing_secret(MASTER, partner)
    assert signing_secret(MASTER, partner) != signing_secret(MASTER, uuid.uuid4())
    assert signing_secret(MASTER, partner, 2) != signing_secret(MASTER, partner, 1)
    assert signing_secret(b"another-master-key-000", partner) != signing_secret(MASTER, partner)


def test_a_signature_covers_the_exact_body() -> None:
    secret = signing_secret(MASTER, uuid.uuid4())
    body = b'{"payload": {}}'
    signature = sign(secret, body)
    assert signature_matches(secret, body, signature)
    assert signature_matches(secret, body, f"sha256={signature.upper()}")
    assert not signature_matches(secret, body + b" ", signature)
    assert not signature_matches("sws_other", body, signature)
    assert not signature_matches(secret, body, None)


def test_new_credentials_are_random_and_only_their_hash_needs_keeping() -> None:
    one, two = issue_credentials(MASTER), issue_credentials(MASTER)
    assert one.api_key != two.api_key
    assert one.api_key.startswith("swk_")
    assert len(hash_api_key(one.api_key)) == 32
    assert one.signing_secret == signing_secret(MASTER, one.partner_id)
