"""The partner guide's Kafka example, run as written against the real broker and database."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import pytest

from solidarity.registration.domain.partners import signing_secret
from solidarity.shared.contracts.topics import REGISTRATION_OUTCOMES, REGISTRATION_SUBMISSIONS
from solidarity.shared.testing.infrastructure import Infrastructure
from tests.integration.registration.support import (
    MASTER_KEY,
    campaign_published,
    consumers,
    new_partner,
    publish_events,
    relay_all,
    session_scheduled,
)

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "partners.md"


def guide_example() -> Any:
    """The `partner_example.py` code block of docs/partners.md, loaded as a module."""
    match = re.search(r"```python partner_example\.py\n(.*?)\n```", GUIDE.read_text(), re.DOTALL)
    assert match is not None, "docs/partners.md has no partner_example.py block"
    module = types.ModuleType("partner_example")
    exec(compile(match[1], "partner_example.py", "exec"), module.__dict__)
    return module


async def test_the_guides_kafka_example_publishes_a_submission_that_is_confirmed(
    infrastructure: Infrastructure, database_dsn: str, registry_topics: str, unique: str
) -> None:
    example = guide_example()
    prefix, slug = registry_topics, f"c-{unique}"
    async with consumers(infrastructure, database_dsn, prefix) as driven:
        partner = await new_partner(database_dsn, slug)
        campaign = campaign_published(slug)
        session = session_scheduled(campaign.campaign_id, capacity=5)
        await publish_events(infrastructure.kafka_bootstrap, prefix, [campaign, session])
        await driven.catalog_events()
        await example.publish(
            infrastructure.kafka_bootstrap,
            str(partner.partner_id),
            signing_secret(MASTER_KEY.encode(), partner.partner_id),
            {
                "submission_id": "guide-1",
                "campaign": slug,
                "registrant": {"email": "Guide.Reader@Example.org", "role": "educator"},
                "session_ids": [str(session.session_id)],
            },
            topic=REGISTRATION_SUBMISSIONS.full_name(prefix),
        )
        await driven.submissions_topic()
        await relay_all(infrastructure, database_dsn)
    answers = await example.outcomes_of(
        infrastructure.kafka_bootstrap,
        str(partner.partner_id),
        "guide-1",
        topic=REGISTRATION_OUTCOMES.full_name(prefix),
        timeout_s=20,
    )
    assert sorted(a["type"] for a in answers) == ["SessionRegistrationConfirmed", "SignupConfirmed"]
