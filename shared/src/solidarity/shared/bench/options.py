"""What a bench run does: sizes, shares and switches (the `solidarity bench` options)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_REGISTRATIONS = 100_000
QUICK_REGISTRATIONS = 10_000


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """One run's settings. `quick()` is what CI runs."""

    registrations: int = DEFAULT_REGISTRATIONS
    quick: bool = False
    partners: int = 3
    schools: int = 2_000
    seed: int = 2023
    campaign: str = "glsen-solidarity-week-2023"
    # The burst: a flood (all at once) measures capacity; then, once everything has drained,
    # a steady stage at a share of the flood's rate measures latency under a sustainable load.
    steady_share: float = 0.1  # of the registrations
    steady_utilisation: float = 0.5  # of the flood's decided/s
    steady_rate: float | None = None  # submissions/s; overrides steady_utilisation
    invitation_share: float = 0.3  # of people who consent to invitations
    raw_messages: int | None = None  # broker pipe, PostgreSQL and bare pipeline sizes
    raw_mails: int | None = None  # the SMTP raw limit's size
    # An experiment: suspend the notifications service while the flood is decided, to see the
    # registration service without it on the machine (the bare pipeline ran alone too).
    hold_notifications: bool = False
    fanout: bool = True
    scaling: bool = True
    scaling_registrations: int | None = None  # default: the same as the burst
    profile: tuple[str, ...] = ()
    # Extra SOLIDARITY_* settings for every service process (to try a setting, e.g.
    # SOLIDARITY_SENDER_BATCH_SIZE=200); the stack's own settings cannot be overridden.
    service_env: tuple[tuple[str, str], ...] = ()
    results_dir: Path = Path("bench-results")
    json_path: Path | None = None
    data_dir: Path | None = None
    keep_data: bool = False
    # A wait gives up after this long without progress (answers, mail); there is no other limit.
    stall_s: float = 120.0
    # A partner's answer timeout: answers stopped for this long with at most `resend_limit`
    # submissions unanswered, those are traced (where did each stop?) and sent again once, as
    # a partner does (the same submission id: the platform answers it once). What is still
    # unanswered after that is lost.
    resend_after_s: float = 20.0
    resend_limit: int = 100
    # Quick mode: a wall-clock budget for the mail to settle after the answers are in.
    mail_budget_s: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def quick_run(cls, **changes: object) -> BenchOptions:
        """About 10,000 registrations, raw limits on small samples, no fan-out, no scaling:
        under a minute of measuring, for CI, which checks only that nothing is lost or doubled."""
        values: dict[str, object] = {
            "registrations": QUICK_REGISTRATIONS,
            "quick": True,
            "raw_messages": 10_000,
            "raw_mails": 500,
            "fanout": False,
            "scaling": False,
            "stall_s": 45.0,
            "mail_budget_s": 8.0,
        }
        values.update(changes)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def flood_count(self) -> int:
        return self.registrations - self.steady_count

    @property
    def steady_count(self) -> int:
        return int(self.registrations * self.steady_share)

    @property
    def raw_message_count(self) -> int:
        return self.raw_messages or max(20_000, min(self.registrations, 100_000))

    @property
    def raw_mail_count(self) -> int:
        return self.raw_mails or 3_000

    @property
    def scaling_count(self) -> int:
        return self.scaling_registrations or self.registrations
