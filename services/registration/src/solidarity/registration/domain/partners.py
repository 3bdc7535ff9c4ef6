"""Partner accounts and their credentials: API keys (stored as hashes) and signing secrets.

A partner's signing secret is never stored: it is derived from the service's master key and
the partner's id (and a version, to rotate it). So a copy of the database alone can neither
forge a signature nor call the API.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field

from solidarity.shared.contracts.signing import (
    PARTNER_HEADER,
    SIGNATURE_HEADER,
    sign,
    signature_matches,
)

# The signing rule is part of the partner-facing contract: one implementation, in shared.
__all__ = ["PARTNER_HEADER", "SIGNATURE_HEADER", "sign", "signature_matches"]
API_KEY_PREFIX = "swk_"


@dataclass(frozen=True, slots=True)
class PartnerAccount:
    """A partner platform that may publish registrations for some campaigns."""

    partner_id: uuid.UUID
    name: str
    campaigns: frozenset[str] = field(default_factory=frozenset)
    secret_version: int = 1
    active: bool = True

    def may_register_for(self, campaign_slug: str) -> bool:
        return self.active and campaign_slug in self.campaigns


@dataclass(frozen=True, slots=True)
class PartnerCredentials:
    """What a new partner is told once: its id, API key and signing secret."""

    partner_id: uuid.UUID
    api_key: str
    signing_secret: str


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.strip().encode()).digest()


def signing_secret(master_key: bytes, partner_id: uuid.UUID, version: int = 1) -> str:
    """The partner's signing secret: HMAC-SHA256(master key, "partner-signing:<id>:<version>")."""
    message = f"partner-signing:{partner_id}:{version}".encode()
    return "sws_" + hmac.new(master_key, message, hashlib.sha256).hexdigest()


def issue_credentials(master_key: bytes, partner_id: uuid.UUID | None = None) -> PartnerCredentials:
    partner_id = partner_id or uuid.uuid4()
    return PartnerCredentials(
        partner_id=partner_id,
        api_key=new_api_key(),
        signing_secret=signing_secret(master_key, partner_id),
    )
