"""The topic registry: every topic's name, key, partitions, retention, producer and consumers.

Topic creation (the local stack, the compose topic job, the tests) reads this and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from solidarity.shared.contracts.envelope import Event
from solidarity.shared.contracts.events import catalog, notifications, registration

DAY_MS = 24 * 60 * 60 * 1000
DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic and what travels on it."""

    name: str
    key: str
    partitions: int
    retention_ms: int
    producer: str
    consumers: tuple[str, ...]
    events: tuple[type[Event], ...]
    description: str = ""
    cleanup_policy: str = "delete"
    # A topic some service consumes has a dead-letter twin.
    dlq_retention_ms: int = field(default=30 * DAY_MS)

    @property
    def dlq(self) -> str | None:
        return f"{self.name}{DLQ_SUFFIX}" if self.consumers else None

    def full_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}"

    def full_dlq_name(self, prefix: str = "") -> str:
        if self.dlq is None:
            raise ValueError(f"{self.name} has no consumer and so no DLQ")
        return f"{prefix}{self.dlq}"


CATALOG_ORGANIZATIONS = TopicSpec(
    name="catalog.organizations.v1",
    key="organization_id",
    partitions=3,
    retention_ms=-1,
    producer="catalog",
    consumers=(),
    events=(catalog.OrganizationRegisteredV1,),
    description="Schools, campuses and partner organizations.",
)
CATALOG_CAMPAIGNS = TopicSpec(
    name="catalog.campaigns.v1",
    key="campaign_id",
    partitions=3,
    retention_ms=-1,
    producer="catalog",
    consumers=("registration", "notifications"),
    events=(
        catalog.CampaignPublishedV1,
        catalog.CampaignUpdatedV1,
        catalog.FocusDayAddedV1,
        catalog.ResourcePublishedV1,
    ),
    description="Campaigns with their focus days and resources, in order per campaign.",
)
CATALOG_SESSIONS = TopicSpec(
    name="catalog.sessions.v1",
    key="session_id",
    partitions=6,
    retention_ms=-1,
    producer="catalog",
    consumers=("registration", "notifications"),
    events=(
        catalog.SessionScheduledV1,
        catalog.SessionRescheduledV1,
        catalog.SessionCancelledV1,
        catalog.SessionCapacityChangedV1,
    ),
    description="Session lifecycle, in order per session.",
)
REGISTRATION_SUBMISSIONS = TopicSpec(
    name="registration.submissions.v1",
    key="sha256 of the registrant's lower-cased email (a person's submissions stay in order)",
    partitions=12,
    retention_ms=7 * DAY_MS,
    producer="partners",
    consumers=("registration",),
    events=(registration.RegistrationSubmittedV1,),
    description="Signed submissions from partner platforms (the partner-facing contract).",
)
REGISTRATION_OUTCOMES = TopicSpec(
    name="registration.outcomes.v1",
    key="registrant_id",
    partitions=12,
    retention_ms=30 * DAY_MS,
    producer="registration",
    consumers=("notifications",),
    events=(
        registration.SignupConfirmedV1,
        registration.SessionRegistrationConfirmedV1,
        registration.SessionRegistrationWaitlistedV1,
        registration.SessionRegistrationRejectedV1,
        registration.RegistrationCancelledV1,
        registration.WaitlistPromotedV1,
    ),
    description="An answer for every submission; ids only, readable by partners.",
)
REGISTRATION_REGISTRANTS = TopicSpec(
    name="registration.registrants.v1",
    key="registrant_id",
    partitions=12,
    retention_ms=7 * DAY_MS,
    producer="registration",
    consumers=("notifications",),
    events=(registration.RegistrantRecordedV1, registration.RegistrantErasedV1),
    description="Contact details and erasures; the platform's own services only.",
)
NOTIFICATIONS_DELIVERIES = TopicSpec(
    name="notifications.deliveries.v1",
    key="recipient_id",
    partitions=6,
    retention_ms=30 * DAY_MS,
    producer="notifications",
    consumers=(),
    events=(notifications.NotificationSentV1, notifications.NotificationFailedV1),
    description="What was sent and what failed, by id.",
)

TOPICS: tuple[TopicSpec, ...] = (
    CATALOG_ORGANIZATIONS,
    CATALOG_CAMPAIGNS,
    CATALOG_SESSIONS,
    REGISTRATION_SUBMISSIONS,
    REGISTRATION_OUTCOMES,
    REGISTRATION_REGISTRANTS,
    NOTIFICATIONS_DELIVERIES,
)


def topic_for(event: type[Event] | Event) -> TopicSpec:
    """The one topic an event type travels on."""
    cls = event if isinstance(event, type) else type(event)
    for spec in TOPICS:
        if cls in spec.events:
            return spec
    raise LookupError(f"no topic carries {cls.__name__}")


def all_topic_names(prefix: str = "") -> list[str]:
    """Every topic and DLQ twin, with an optional prefix (tests isolate themselves with one)."""
    names: list[str] = []
    for spec in TOPICS:
        names.append(spec.full_name(prefix))
        if spec.dlq:
            names.append(spec.full_dlq_name(prefix))
    return names
