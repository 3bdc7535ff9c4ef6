"""Stable ids for what a campaign file defines, so that loading it again finds the same rows."""

from __future__ import annotations

import uuid

CATALOG_NAMESPACE = uuid.UUID("6f1d3c52-7d8e-4b2a-9a57-2f0c1e5b8d41")


def organization_id_for(key: str) -> uuid.UUID:
    return uuid.uuid5(CATALOG_NAMESPACE, f"organization:{key}")


def campaign_id_for(slug: str) -> uuid.UUID:
    return uuid.uuid5(CATALOG_NAMESPACE, f"campaign:{slug}")


def item_id_for(campaign_id: uuid.UUID, kind: str, key: str) -> uuid.UUID:
    """A focus day's, session's or resource's id: its campaign, its kind and its key."""
    return uuid.uuid5(campaign_id, f"{kind}:{key}")
