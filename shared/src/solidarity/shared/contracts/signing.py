"""How a partner signs a submission on Kafka: part of the partner-facing contract.

HMAC-SHA256 of the exact body bytes with the partner's signing secret, as lower-case hex, in
the `x-solidarity-signature` header, with the partner's id in `x-solidarity-partner`. The
partner client and the registration service both use these functions.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "x-solidarity-signature"
PARTNER_HEADER = "x-solidarity-partner"


def sign(secret: str, body: bytes) -> str:
    """The signature of a body, as the partner computes it."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, signature: str | None) -> bool:
    """Constant-time check of a signature header against the body."""
    if not signature:
        return False
    given = signature.strip().lower().removeprefix("sha256=")
    return hmac.compare_digest(sign(secret, body), given)
