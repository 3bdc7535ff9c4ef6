"""The platform's event contracts: the envelope, every cross-service event, the topic registry."""

from solidarity.shared.contracts.envelope import Envelope, Event, EventHeaders
from solidarity.shared.contracts.registry import EVENT_TYPES, event_class, event_type_name

__all__ = ["EVENT_TYPES", "Envelope", "Event", "EventHeaders", "event_class", "event_type_name"]
