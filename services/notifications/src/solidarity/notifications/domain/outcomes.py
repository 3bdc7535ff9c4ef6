"""What became of one send attempt, whatever the channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OutcomeKind = Literal["sent", "retry", "permanent", "unknown", "dropped"]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """`sent`; `retry` (4xx, connection refused); `permanent` (5xx); `unknown` (the connection
    died after the message data: it may have arrived, so it is never blindly sent again);
    `dropped` (no longer wanted: opted out, session cancelled; nothing was sent)."""

    kind: OutcomeKind
    reason: str = ""  # a code such as smtp_451; never an address

    @classmethod
    def sent(cls) -> SendOutcome:
        return cls("sent")

    @classmethod
    def retry(cls, reason: str) -> SendOutcome:
        return cls("retry", reason)

    @classmethod
    def permanent(cls, reason: str) -> SendOutcome:
        return cls("permanent", reason)

    @classmethod
    def unknown(cls, reason: str) -> SendOutcome:
        return cls("unknown", reason)

    @classmethod
    def dropped(cls, reason: str) -> SendOutcome:
        return cls("dropped", reason)


def smtp_outcome(code: int) -> SendOutcome:
    """An SMTP reply code as an outcome: 4xx passes, 5xx does not."""
    if 400 <= code < 500:
        return SendOutcome.retry(f"smtp_{code}")
    if 500 <= code < 600:
        return SendOutcome.permanent(f"smtp_{code}")
    return SendOutcome.retry(f"smtp_unexpected_{code}")


def http_outcome(status: int) -> SendOutcome:
    """A webhook answer as an outcome: 2xx done; 408, 425, 429 and 5xx retried; other 4xx final."""
    if 200 <= status < 300:
        return SendOutcome.sent()
    if status in (408, 425, 429) or status >= 500:
        return SendOutcome.retry(f"http_{status}")
    return SendOutcome.permanent(f"http_{status}")
