"""Partner accounts: create one and hand its credentials over once."""

from __future__ import annotations

import uuid

from solidarity.registration.domain.partners import (
    PartnerAccount,
    PartnerCredentials,
    hash_api_key,
    issue_credentials,
)
from solidarity.registration.service_layer.commands import CreatePartner
from solidarity.registration.service_layer.unit_of_work import UnitOfWork


async def create_partner(
    cmd: CreatePartner, uow: UnitOfWork, *, master_key: bytes
) -> PartnerCredentials:
    """Store the partner with the hash of a new API key; the key and secret are returned once."""
    credentials = issue_credentials(master_key, uuid.uuid4())
    partner = PartnerAccount(
        partner_id=credentials.partner_id,
        name=cmd.name,
        campaigns=frozenset(cmd.campaigns),
    )
    async with uow:
        await uow.repository.add_partner(partner, api_key_sha256=hash_api_key(credentials.api_key))
        await uow.commit()
    return credentials
