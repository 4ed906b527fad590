"""The outcome taxonomy: the heart of every figure we publish.

Only `available`, `no_slot`, `procedure_missing` (and `form_open`, for request forms
where no slot can be seen) are valid observations of the booking system. The others
measure the robot's own coverage and are published as such, never dropped and never
counted as "no slot".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol


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
        return self in RETRYABLE

    @property
    def label_fr(self) -> str:
        """What a reader of the site or of a dossier is told."""
        return OUTCOMES_FR[self]


VALID_OUTCOMES = frozenset(
    {Outcome.AVAILABLE, Outcome.NO_SLOT, Outcome.PROCEDURE_MISSING, Outcome.FORM_OPEN}
)
#: Valid outcomes where a person could not book (CE 18 Feb 2022 n° 455740 counts a
#: procedure that cannot be selected as a failure to book).
NO_WAY_TO_BOOK = frozenset({Outcome.NO_SLOT, Outcome.PROCEDURE_MISSING})

#: Coverage failures worth a retry (a block must never be hammered).
RETRYABLE = frozenset({Outcome.ERROR, Outcome.UNRECOGNIZED})
#: What an operator must look at when a platform drifts, and what evidence retention
#: always keeps: the pages the robot could not read, or was refused.
ANOMALIES = frozenset({Outcome.UNRECOGNIZED, Outcome.BLOCKED})
#: The outcomes in French, for every public page and court document. Keyed by the enum,
#: whose members are also their string values, so `OUTCOMES_FR["no_slot"]` works too.
OUTCOMES_FR: dict[Outcome, str] = {
    Outcome.AVAILABLE: "créneau proposé",
    Outcome.NO_SLOT: "aucun créneau",
    Outcome.FORM_OPEN: "formulaire ouvert",
    Outcome.PROCEDURE_MISSING: "démarche impossible à sélectionner",
    Outcome.BLOCKED: "bloqué",
    Outcome.ERROR: "erreur",
    Outcome.UNRECOGNIZED: "page non reconnue",
}


def values(outcomes: Iterable[Outcome] = Outcome) -> list[str]:
    """The outcomes' values in the enum's order (a stable order for SQL, CSV and tests)."""
    chosen = set(outcomes)
    return [o.value for o in Outcome if o in chosen]


def sql_list(outcomes: Iterable[Outcome] = Outcome) -> str:
    """ "'available', 'no_slot'": the SQL literal list of these outcomes, in the enum's
    order. The values are the enum's own (no user input), so inlining them is safe and
    keeps the SQL readable in logs and EXPLAIN."""
    return ", ".join(f"'{v}'" for v in values(outcomes))


def sql_in(column: str, outcomes: Iterable[Outcome]) -> str:
    """`column IN ('a', 'b')` for these outcomes: every SQL filter on outcomes is written
    from the enum, never by hand."""
    return f"{column} IN ({sql_list(outcomes)})"


#: The CHECK constraint of `probes.outcome` (models.py; migrations keep their own copy).
OUTCOME_CHECK = sql_in("outcome", Outcome)

#: The `error` detail of a link the prefecture deactivated for good ("Ce lien a été
#: désactivé définitivement"): the adapter, the status check and the site all name it.
TARGET_RETIRED = "target_retired"

#: `error` details that are not transient: retrying cannot help.
PERMANENT_ERROR_DETAILS = frozenset({TARGET_RETIRED})


class Response(Protocol):
    """What `ProbeResult.from_response` reads of an HTTP response (httpx's, say)."""

    @property
    def status_code(self) -> int: ...

    @property
    def url(self) -> object: ...

    @property
    def content(self) -> bytes: ...


class _Counted:
    """`with_slots`' default `count`: how many slots were given."""


_COUNTED = _Counted()


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

    @classmethod
    def from_response(
        cls, outcome: Outcome, detail: str, response: Response, **fields: Any
    ) -> ProbeResult:
        """A result read on `response`: its status, final address and body kept as
        evidence (the three fields every page-reading adapter fills)."""
        return cls(
            outcome,
            detail,
            http_status=response.status_code,
            final_url=str(response.url),
            page=response.content,
            **fields,
        )

    @classmethod
    def with_slots(
        cls,
        slots: Iterable[datetime],
        detail: str = "",
        *,
        count: int | None | _Counted = _COUNTED,
        response: Response | None = None,
        **fields: Any,
    ) -> ProbeResult:
        """`available` with the slots seen: sorted, the first two kept, and `count` (by
        default how many slots were given, None for none; adapters that count only a
        window pass their own). With `response`, also its status, address and body."""
        ordered = sorted(slots)
        if response is not None:
            fields = {
                "http_status": response.status_code,
                "final_url": str(response.url),
                "page": response.content,
                **fields,
            }
        return cls(
            Outcome.AVAILABLE,
            detail,
            first_slot_at=ordered[0] if ordered else None,
            second_slot_at=ordered[1] if len(ordered) > 1 else None,
            slots_count=(len(ordered) or None) if isinstance(count, _Counted) else count,
            **fields,
        )

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


# -- La Cimade's classes ---------------------------------------------------------------
@dataclass(frozen=True)
class CimadeClass:
    """One of La Cimade's classes ("À guichets fermés"): the probes whose `slot` (the
    first or second slot offered) is at most `within_days` days after the probe (None:
    any delay). The class without a slot is the valid probes with no way to book."""

    key: str
    label_fr: str
    slot: str | None
    within_days: int | None


#: The classes, in La Cimade's order; the first that fits a probe is its class. Both the
#: Python rule (`cimade_class`, for every probe stored) and the SQL one (`cimade_case_sql`,
#: for a rebuild) are written from this table.
CIMADE: tuple[CimadeClass, ...] = (
    CimadeClass("two_dates_within_month", "au moins deux dates sur un mois", "second", 30),
    CimadeClass("one_date_within_month", "une seule date possible sous un mois", "first", 30),
    CimadeClass(
        "first_date_1_to_2_months", "première date possible entre un et deux mois", "first", 60
    ),
    CimadeClass(
        "first_date_beyond_2_months", "première date possible au-delà de 2 mois", "first", None
    ),
    CimadeClass("no_date", "pas de date disponible", None, None),
)
#: key -> French label, in La Cimade's order.
CIMADE_LABELS: dict[str, str] = {c.key: c.label_fr for c in CIMADE}
NO_DATE = next(c for c in CIMADE if c.slot is None)
#: `lead_days` of the probes without a date.
NO_DATE_DAYS = -1
_DATED = tuple(c for c in CIMADE if c.slot is not None)


def cimade_class(
    outcome: Outcome, started: datetime, first: datetime | None, second: datetime | None
) -> tuple[str, int] | None:
    """La Cimade's class and whole days to the first slot (-1: no date), or None when
    the probe does not belong in the classes (not valid, or no date observable)."""
    if outcome in NO_WAY_TO_BOOK:
        return (NO_DATE.key, NO_DATE_DAYS)
    if outcome is not Outcome.AVAILABLE or first is None:
        return None
    slots = {"first": first, "second": second}
    lead = (first - started).total_seconds() / 86400
    for c in _DATED:
        at = slots[c.slot or ""]
        if at is None:
            continue
        if c.within_days is None or (at - started).total_seconds() / 86400 <= c.within_days:
            return (c.key, int(lead // 1))
    raise AssertionError("CIMADE must end with a class without a bound")


def cimade_case_sql(outcome: str, slots: dict[str, tuple[str, str]]) -> str:
    """The SQL CASE giving a probe's class key, from the same table as `cimade_class`.
    `slots` maps "first" and "second" to (the slot's column, its days after the probe as
    an SQL expression: dialects differ)."""
    parts = [f"CASE WHEN {sql_in(outcome, NO_WAY_TO_BOOK)} THEN '{NO_DATE.key}'"]
    for c in _DATED:
        column, days = slots[c.slot or ""]
        if c.within_days is None:
            parts.append(f"ELSE '{c.key}' END")
            break
        parts.append(f"WHEN {column} IS NOT NULL AND {days} <= {c.within_days} THEN '{c.key}'")
    return " ".join(parts)


def cimade_where_sql(outcome: str, first: str) -> str:
    """The probes that belong in the classes (the `None` of `cimade_class`, negated)."""
    return (
        f"({sql_in(outcome, NO_WAY_TO_BOOK)} OR "
        f"({outcome} = '{Outcome.AVAILABLE.value}' AND {first} IS NOT NULL))"
    )
