"""The booking platform families we know, and what a target on each must provide.

Kept apart from the adapters so the config can be validated (and historical targets
kept) even for a platform whose adapter is not installed or not yet written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LegacyBookingOptions(_Options):
    #: The counter ("guichet", radio `planning`) to choose on step 1. Needed to read
    #: the week calendar; when a form has several counters and none is given, the
    #: first one offered is used and the probe detail says so.
    planning: int | None = Field(default=None, gt=0)
    #: How far ahead to read the week calendar when slots exist.
    calendar_days: int = Field(default=60, ge=7, le=120)


class RdvPrefectureOptions(_Options):
    pass


#: The Val-de-Marne eAppointment no-slot alert, with the site's own typos
#: (platforms.md §3). The text is sent by the server, so it differs between instances:
#: a target on another instance lists its own in `no_slot_messages`.
EAPPOINTMENT_NO_SLOT_DEFAULT = (
    "Aucun rendez-vous n'est possible pour les motifs selectionnnés ou le créneau "
    "horaire séléctionné.",
)


class EAppointmentOptions(_Options):
    postal_code: str | None = Field(default=None, pattern=r"^\d{5}$")
    motive: str | None = None
    #: The instance's no-slot alert texts, compared exactly after folding spaces and
    #: apostrophes — never fuzzily: a reworded alert must be read by a person first.
    no_slot_messages: list[Annotated[str, Field(min_length=10)]] = Field(
        default_factory=lambda: list(EAPPOINTMENT_NO_SLOT_DEFAULT), min_length=1
    )


class DemarchesSimplifieesOptions(_Options):
    pass


#: Fields the robot must never fill: it never submits personal data.
PERSONAL_FIELD = re.compile(
    r"nom|name|pr[ée]nom|mail|t[ée]l|phone|naissance|birth|adresse|address|passe?port|"
    r"agdref|[ée]tranger|nationalit|sexe|gender|iban|password|mot.?de.?passe",
    re.I,
)
ATTRIBUTE_NAMES = re.compile(r"\b(name|id|type|class|for)\s*[*^$|~]?=", re.I)


def looks_personal(identifier: str) -> bool:
    """True when a selector, field name, id or label designates personal data."""
    return bool(PERSONAL_FIELD.search(ATTRIBUTE_NAMES.sub(" ", identifier)))


ACTIONS = ("goto", "click", "check", "select", "fill", "wait_for")


class ScriptStep(_Options):
    """One step: exactly one action. `select` and `fill` take `value`; `fill` only for
    non-personal fields (postal code, a search box)."""

    goto: str | None = None
    click: str | None = None
    check: str | None = None
    select: str | None = None
    fill: str | None = None
    wait_for: str | None = None
    value: str | None = None
    timeout_s: float = Field(default=20.0, gt=0, le=120)

    @model_validator(mode="after")
    def _one_action(self) -> ScriptStep:
        chosen = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(chosen) != 1:
            raise ValueError(f"a step needs exactly one of {', '.join(ACTIONS)}")
        if chosen[0] in ("select", "fill") and self.value is None:
            raise ValueError(f"`{chosen[0]}` needs a `value`")
        if self.fill is not None and looks_personal(self.fill):
            raise ValueError(
                f"refusing to fill {self.fill!r}: the robot never submits personal data"
            )
        if self.value and re.search(r"@|\+?\d[\d .-]{8,}", self.value):
            raise ValueError("this value looks like personal data (e-mail or phone number)")
        return self

    @property
    def action(self) -> str:
        return next(a for a in ACTIONS if getattr(self, a) is not None)


class ExpectRule(_Options):
    """When `text` is seen (on the final page, or in a JavaScript alert if `in_dialog`),
    the probe ends with `outcome`. Rules are tried in order."""

    text: str = Field(min_length=3)
    outcome: Literal["available", "no_slot", "procedure_missing"]
    in_dialog: bool = False


class ScriptedOptions(_Options):
    steps: list[ScriptStep] = Field(min_length=1)
    expect: list[ExpectRule] = Field(min_length=1)
    #: Elements whose text holds an offered slot ("mardi 12 mai 2026 à 09:30").
    slot_selector: str | None = None


@dataclass(frozen=True)
class PlatformSpec:
    name: str
    label: str
    url_pattern: re.Pattern[str]
    url_hint: str
    options: type[_Options]
    #: A captcha precedes availability: never probed automatically, only assisted.
    captcha_first: bool = False


PLATFORMS: dict[str, PlatformSpec] = {
    spec.name: spec
    for spec in (
        PlatformSpec(
            "legacy_booking",
            "Module de réservation des sites de préfecture",
            re.compile(r"^https?://[^/]+(/.*)?/booking/create/\d+/?$"),
            "https://www.<département>.gouv.fr/booking/create/<formId>",
            LegacyBookingOptions,
        ),
        PlatformSpec(
            "rdv_prefecture",
            "RDV-Préfecture (plateforme nationale)",
            re.compile(r"^https?://[^/]+(/.*)?/rdvpref/reservation/demarche/\d+/?$"),
            "https://www.rdv-prefecture.interieur.gouv.fr/rdvpref/reservation/demarche/<id>/",
            RdvPrefectureOptions,
            captcha_first=True,
        ),
        PlatformSpec(
            "eappointment",
            "eAppointment",
            re.compile(r"^https?://[^/]+(/.*)?/eAppointment[^/]*/.+"),
            "https://rdv-etrangers-94.interieur.gouv.fr/eAppointmentpref94/…",
            EAppointmentOptions,
        ),
        PlatformSpec(
            "demarches_simplifiees",
            "Démarches simplifiées / démarche numérique",
            re.compile(r"^https?://[^/]+(/.*)?/commencer/[A-Za-z0-9_-]+/?$"),
            "https://www.demarches-simplifiees.fr/commencer/<slug>",
            DemarchesSimplifieesOptions,
        ),
        PlatformSpec(
            "scripted",
            "Site décrit par des étapes",
            re.compile(r"^https?://[^/]+.*$"),
            "any http(s) URL",
            ScriptedOptions,
        ),
    )
}
