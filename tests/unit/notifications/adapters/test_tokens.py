"""Unsubscribe tokens: round trip, and nothing forged or altered passes."""

from __future__ import annotations

import uuid

import pytest

from solidarity.notifications.adapters.tokens import (
    InvalidTokenError,
    TokenSigner,
    UnsubscribeToken,
)

pytestmark = pytest.mark.unit

KEY = b"a-long-enough-test-key"


def test_a_signed_token_verifies_back_to_who_and_what() -> None:
    token = UnsubscribeToken(recipient_id=uuid.uuid4(), purpose="reminders")

    assert TokenSigner(KEY).verify(TokenSigner(KEY).sign(token)) == token


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2],
        lambda t: ("B" if t[0] == "A" else "A") + t[1:],  # always another first character
        lambda t: t.replace(".", ""),
        lambda t: "",
        lambda t: "not.a.token",
    ],
)
def test_altered_tokens_are_refused(mangle) -> None:
    text = TokenSigner(KEY).sign(UnsubscribeToken(uuid.uuid4(), "invitations"))

    with pytest.raises(InvalidTokenError):
        TokenSigner(KEY).verify(mangle(text))


def test_a_token_signed_with_another_key_is_refused() -> None:
    text = TokenSigner(b"another-key-entirely").sign(UnsubscribeToken(uuid.uuid4(), "all"))

    with pytest.raises(InvalidTokenError):
        TokenSigner(KEY).verify(text)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="short"):
        TokenSigner(b"short")
