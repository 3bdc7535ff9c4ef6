"""Every event type the platform knows, by (type, version), for parsing what arrives."""

from __future__ import annotations

from solidarity.shared.contracts.envelope import Envelope, Event
from solidarity.shared.contracts.events import catalog, notifications, registration

ALL_EVENTS: tuple[type[Event], ...] = (
    catalog.OrganizationRegisteredV1,
    catalog.CampaignPublishedV1,
    catalog.CampaignUpdatedV1,
    catalog.FocusDayAddedV1,
    catalog.SessionScheduledV1,
    catalog.SessionRescheduledV1,
    catalog.SessionCancelledV1,
    catalog.SessionCapacityChangedV1,
    catalog.ResourcePublishedV1,
    registration.RegistrationSubmittedV1,
    registration.SignupConfirmedV1,
    registration.SessionRegistrationConfirmedV1,
    registration.SessionRegistrationWaitlistedV1,
    registration.SessionRegistrationRejectedV1,
    registration.RegistrationCancelledV1,
    registration.WaitlistPromotedV1,
    registration.RegistrantRecordedV1,
    registration.RegistrantErasedV1,
    notifications.NotificationSentV1,
    notifications.NotificationFailedV1,
)

EVENT_TYPES: dict[tuple[str, int], type[Event]] = {
    (cls.event_type, cls.schema_version): cls for cls in ALL_EVENTS
}


class UnknownEventTypeError(ValueError):
    """An envelope names a type or version this build does not know."""


def event_type_name(cls: type[Event]) -> str:
    return f"{cls.event_type}V{cls.schema_version}"


def event_class(event_type: str, schema_version: int) -> type[Event]:
    try:
        return EVENT_TYPES[(event_type, schema_version)]
    except KeyError:
        raise UnknownEventTypeError(f"unknown event type {event_type} v{schema_version}") from None


def parse_event(envelope: Envelope) -> Event:
    """The typed event inside an envelope; raises ValueError when it does not validate."""
    cls = event_class(envelope.event_type, envelope.schema_version)
    return cls.model_validate(envelope.payload)
