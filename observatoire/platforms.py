"""The booking platform families we know, and what a target on each must provide.

Kept apart from the adapters so the config can be validated (and historical targets
kept) even for a platform whose adapter is not installed or not yet written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class EAppointmentOptions(_Options):
    postal_code: str | None = Field(default=None, pattern=r"^\d{5}$")
    motive: str | None = None


class DemarchesSimplifieesOptions(_Options):
    pass


class ScriptedOptions(_Options):
    steps: list[dict[str, Any]] = Field(default_factory=list)


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
            re.compile(r"^https?://[^/]+/eAppointment[^/]*/.+"),
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
