"""The outcome taxonomy: the heart of every figure we publish.

Only `available`, `no_slot`, `procedure_missing` (and `form_open`, for request forms
where no slot can be seen) are valid observations of the booking system. The others
measure the robot's own coverage and are published as such, never dropped and never
counted as "no slot".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class Outcome(StrEnum):
    AVAILABLE = "available"
    NO_SLOT = "no_slot"
    PROCEDURE_MISSING = "procedure_missing"
    #: A request form (démarches-simplifiées) is open: the procedure can be started, but
    #: no slot is observable (the queue is internal). Valid, and not "no way to book";
    #: never counted as `available`, which means a dated slot was offered.
    FORM_OPEN = "form_open"
    BLOCKED = "blocked"
    ERROR = "error"
    UNRECOGNIZED = "unrecognized"

    @property
    def is_valid(self) -> bool:
        """True for outcomes that observe the booking system itself."""
        return self in VALID_OUTCOMES

    @property
    def is_retryable(self) -> bool:
        """Retry transient failures only; a block must never be hammered."""
        return self in (Outcome.ERROR, Outcome.UNRECOGNIZED)


VALID_OUTCOMES = frozenset(
    {Outcome.AVAILABLE, Outcome.NO_SLOT, Outcome.PROCEDURE_MISSING, Outcome.FORM_OPEN}
)
#: Valid outcomes where a person could not book (CE 18 Feb 2022 n° 455740 counts a
#: procedure that cannot be selected as a failure to book).
NO_WAY_TO_BOOK = frozenset({Outcome.NO_SLOT, Outcome.PROCEDURE_MISSING})

#: `error` details that are not transient: retrying cannot help.
PERMANENT_ERROR_DETAILS = frozenset({"target_retired"})


@dataclass(frozen=True)
class ProbeResult:
    """What one adapter run saw. Evidence bytes travel with it until stored."""

    outcome: Outcome
    detail: str = ""
    first_slot_at: datetime | None = None
    second_slot_at: datetime | None = None
    slots_count: int | None = None
    http_status: int | None = None
    final_url: str | None = None
    page: bytes | None = field(default=None, repr=False)
    screenshot: bytes | None = field(default=None, repr=False)
    #: The platform's own message, verbatim (an eAppointment alert, say), kept with the
    #: probe so a reader can see what the classification rested on.
    platform_message: str | None = None
    #: Release banners of the RDV-Préfecture slot page: "Dernière mise en ligne … le
    #: <instant> pour des créneaux de la semaine du <week>" and "Prochaine mise en ligne …".
    release_last_at: datetime | None = None
    release_last_week: date | None = None
    release_next_at: datetime | None = None
    release_next_week: date | None = None

    def should_retry(self) -> bool:
        if not self.outcome.is_retryable:
            return False
        return self.detail not in PERMANENT_ERROR_DETAILS

    def summary(self) -> dict[str, object]:
        """A JSON-friendly view (used by `classify` and logs)."""
        return {
            "outcome": self.outcome.value,
            "detail": self.detail,
            "first_slot_at": self.first_slot_at.isoformat() if self.first_slot_at else None,
            "second_slot_at": self.second_slot_at.isoformat() if self.second_slot_at else None,
            "slots_count": self.slots_count,
            "http_status": self.http_status,
            "final_url": self.final_url,
            "platform_message": self.platform_message,
            "release_last_at": _iso(self.release_last_at),
            "release_last_week": _iso(self.release_last_week),
            "release_next_at": _iso(self.release_next_at),
            "release_next_week": _iso(self.release_next_week),
        }


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
