"""Scenario files: which simulated sites and forms exist and how scarce their slots are."""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Demand(_M):
    """Competing demand ("other bots"): each released slot is taken by whichever bot
    reaches it first; each bot needs a delay drawn uniformly in `reaction_minutes`."""

    bots: int = Field(default=3, ge=1, le=1000)
    reaction_minutes: tuple[float, float] = (0.5, 10.0)

    @model_validator(mode="after")
    def _ordered(self) -> Demand:
        if not 0 <= self.reaction_minutes[0] <= self.reaction_minutes[1]:
            raise ValueError("reaction_minutes must be (low, high), low >= 0")
        return self


class Release(_M):
    """A weekly batch of slots published at a fixed instant (e.g. Mondays at 09:00), for
    the week that opens `lead_days[0]` days later. Without `demand`, every slot lasts
    `minutes`; with it, the other bots take each slot sooner (never later than
    `minutes`)."""

    weekday: int = Field(ge=0, le=6)  # Monday = 0
    time: str = Field(pattern=r"^\d{2}:\d{2}$")  # Europe/Paris
    minutes: int = Field(gt=0)
    lead_days: tuple[float, float] = (14.0, 45.0)
    slots: tuple[int, int] = (5, 20)
    demand: Demand | None = None


class Profile(_M):
    """How often slots exist and how far ahead the first one is."""

    #: Chance, per hour, that slots are open.
    open_probability: float = Field(ge=0, le=1)
    #: Multipliers of that chance per weekday, Monday first.
    weekday_factor: list[float] = Field(
        default_factory=lambda: [1.0] * 7, min_length=7, max_length=7
    )
    #: Days to the first offered slot, uniform between the two bounds.
    lead_days: tuple[float, float] = (1.0, 30.0)
    #: Number of slots offered over the next 60 days when open.
    slots: tuple[int, int] = (1, 6)
    #: Multipliers of the chance per hour of the day (Europe/Paris), 0 h first.
    hour_factor: list[float] = Field(
        default_factory=lambda: [1.0] * 24, min_length=24, max_length=24
    )
    #: Weekly releases: slots open during these windows whatever the chance above.
    releases: list[Release] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> Profile:
        if self.lead_days[0] > self.lead_days[1] or self.slots[0] > self.slots[1]:
            raise ValueError("bounds must be (low, high)")
        return self


class Period(_M):
    """Days relative to the scenario's anchor (negative = before it)."""

    from_day: float
    to_day: float

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.from_day >= self.to_day:
            raise ValueError("from_day must be before to_day")
        return self

    def contains(self, anchor: datetime, at: datetime) -> bool:
        return anchor + timedelta(days=self.from_day) <= at < anchor + timedelta(days=self.to_day)


class Planning(_M):
    id: int
    label: str
    profile: str
    #: Periods when this counter is not offered (the procedure cannot be selected).
    missing: list[Period] = Field(default_factory=list)


class LegacyForm(_M):
    id: int
    title: str
    plannings: list[Planning] = Field(min_length=1)
    #: The link answers "Ce lien a été désactivé définitivement".
    retired: bool = False
    #: The module shows "Cette page n'est pas disponible pour le moment".
    closed: list[Period] = Field(default_factory=list)
    #: The site answers "Service surchargé" (as the Préfecture de police's did).
    overloaded: list[Period] = Field(default_factory=list)
    #: Right after the conditions, "Il n'y a pas calendrier disponible…" (no counter
    #: open for booking).
    no_calendar: list[Period] = Field(default_factory=list)
    #: When slots exist, the module jumps straight to step 4 ("Première plage
    #: horaire libre") instead of showing the result page.
    jump_to_step4: bool = False


class LegacySite(_M):
    host: str
    prefecture: str
    #: Old eZ Publish sites serve ISO-8859-1 declared only in a `<meta charset>`.
    encoding: Literal["utf-8", "iso-8859-1"] = "utf-8"
    forms: list[LegacyForm]


FAULT_KINDS: dict[str, str] = {
    "connect_timeout": "the server never accepts the connection",
    "read_timeout": "the server accepts, then never answers",
    "connection_reset": "the connection is reset (TCP RST) before any answer",
    "http_500": "500 Internal Server Error",
    "http_502": "502 Bad Gateway, an HTML page from the reverse proxy",
    "maintenance_503": "503 maintenance page with Retry-After",
    "waf_403": "403 page from a web application firewall",
    "rate_limit_429": "429 Too Many Requests with Retry-After",
    "captcha": "a captcha page instead of the expected one",
    "waiting_room": "a virtual waiting-room page",
    "changed_layout": "the same words in a new page structure",
    "new_wording": "the no-slot message reworded",
    "truncated_body": "the body stops before its announced length",
    "redirect_loop": "redirects that never end",
    "charset_latin1_as_utf8": "ISO-8859-1 bytes labelled UTF-8",
    "charset_utf8_as_latin1": "UTF-8 bytes labelled ISO-8859-1",
    "cloudflare_block": "Cloudflare's block page (403, 'Sorry, you have been blocked')",
    "cloudflare_challenge": "Cloudflare's managed challenge (403, 'Just a moment...')",
}


class FaultRule(_M):
    kind: str
    #: Applies to request paths starting with this (e.g. "/www.herault.gouv.fr/").
    path_prefix: str = "/"
    #: Share of matching requests that fail (deterministic given the seed).
    share: float = Field(default=1.0, ge=0, le=1)
    #: Only during this period (relative to the scenario's anchor); always if absent.
    period: Period | None = None

    @field_validator("kind")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in FAULT_KINDS:
            raise ValueError(f"unknown fault {value!r}; known: {', '.join(FAULT_KINDS)}")
        return value


class Demarche(_M):
    """A form on démarches-simplifiées: open unless in a closed or absent period."""

    slug: str
    title: str
    description: str = ""
    closed: list[Period] = Field(default_factory=list)
    absent: list[Period] = Field(default_factory=list)
    #: During `replaced`, the slug redirects to its successor's `/commencer/<slug>`.
    replaced_by: str | None = None
    replaced: list[Period] = Field(default_factory=list)


class DemarchesSite(_M):
    host: str
    demarches: list[Demarche]


class Motive(_M):
    key: str
    label: str
    profile: str
    missing: list[Period] = Field(default_factory=list)


class EAppointmentSite(_M):
    host: str
    #: The application's path segment, e.g. "eAppointmentpref94".
    app: str
    #: The entry page under element/jsp/specific/, e.g. "pref94.jsp".
    entry: str
    sitekey: str
    postal_codes: list[str]
    motives: list[Motive]
    #: The server-supplied no-slot alert of this instance; None = the Val-de-Marne text.
    no_slot_message: str | None = None


class RdvDemarche(_M):
    id: int
    title: str
    profile: str
    missing: list[Period] = Field(default_factory=list)


class RdvPrefectureSite(_M):
    """RDV-Préfecture as one browser sees it (the project's platform notes §2): which
    captcha widget, which slot-page layout, and which no-slot view it shows."""

    host: str
    demarches: list[RdvDemarche]
    #: "v2" (2025: base64 image, audio button) or "v1" (blob image, sound link "#").
    captcha: Literal["v1", "v2"] = "v2"
    #: "desktop" (one column per day) or "phone" (one expansion item per day).
    layout: Literal["desktop", "phone"] = "desktop"
    #: `nombreDeLigne`: slot rows rendered per day before "Voir plus de créneaux".
    rows: int | None = Field(default=None, ge=1)
    #: What an empty agenda shows: the empty week, the last reachable week, or no
    #: calendar at all.
    empty_view: Literal["empty_week", "last_week", "not_displayed"] = "empty_week"
    #: The "Dernière / Prochaine mise en ligne" banners (from the profile's releases).
    banners: bool = False
    #: Minutes a validated captcha keeps `/creneau/` reachable (then back to `/cgu/`).
    session_minutes: float = Field(default=30.0, gt=0)


class Scenario(_M):
    seed: int = 0
    #: The instant periods are counted from; when absent, the simulator's start time.
    anchor: datetime | None = None
    profiles: dict[str, Profile]
    legacy_sites: list[LegacySite] = Field(default_factory=list)
    demarches_sites: list[DemarchesSite] = Field(default_factory=list)
    eappointment_sites: list[EAppointmentSite] = Field(default_factory=list)
    rdv_prefecture_sites: list[RdvPrefectureSite] = Field(default_factory=list)
    faults: list[FaultRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _profiles_exist(self) -> Scenario:
        used = [
            (f"planning {p.id}", p.profile)
            for site in self.legacy_sites
            for form in site.forms
            for p in form.plannings
        ]
        used += [
            (f"motive {m.key}", m.profile) for site in self.eappointment_sites for m in site.motives
        ]
        used += [
            (f"démarche {d.id}", d.profile)
            for site in self.rdv_prefecture_sites
            for d in site.demarches
        ]
        for what, profile in used:
            if profile not in self.profiles:
                raise ValueError(f"{what}: unknown profile {profile!r}")
        hosts = [s.host for s in self.legacy_sites] + [s.host for s in self.demarches_sites]
        hosts += [s.host for s in self.eappointment_sites]
        hosts += [s.host for s in self.rdv_prefecture_sites]
        if len(hosts) != len(set(hosts)):
            raise ValueError("a simulated host is declared twice")
        return self


def load_scenario(path: Path | str | None = None) -> Scenario:
    """Load a scenario file; without a path, the bundled default."""
    if path is None:
        text = (
            resources.files("observatoire.simulator")
            .joinpath("scenarios/default.yaml")
            .read_text("utf-8")
        )
    else:
        text = Path(path).read_text("utf-8")
    return Scenario.model_validate(yaml.safe_load(text))
