"""Signed unsubscribe tokens: who and which purpose, no personal data, no expiry.

A token is `base64url(recipient_id bytes + purpose) . base64url(HMAC-SHA256)`: links in old
mail keep working (RFC 8058 wants one-click to work without a login), and nobody can forge
one for someone else without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass


class InvalidTokenError(ValueError):
    """The token was altered, cut, or signed with another key."""


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    recipient_id: uuid.UUID
    purpose: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 12:
            raise ValueError("the signing key is too short")
        self._key = key

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, b"unsubscribe:" + body, hashlib.sha256).digest()[:16]

    def sign(self, token: UnsubscribeToken) -> str:
        body = token.recipient_id.bytes + token.purpose.encode()
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def verify(self, text: str) -> UnsubscribeToken:
        try:
            body_part, mac_part = text.split(".", 1)
            body, mac = _unb64(body_part), _unb64(mac_part)
        except (ValueError, TypeError) as exc:
            raise InvalidTokenError("malformed token") from exc
        if len(body) < 17 or not hmac.compare_digest(mac, self._mac(body)):
            raise InvalidTokenError("bad signature")
        try:
            purpose = body[16:].decode()
        except UnicodeDecodeError as exc:
            raise InvalidTokenError("malformed token") from exc
        return UnsubscribeToken(recipient_id=uuid.UUID(bytes=body[:16]), purpose=purpose)
