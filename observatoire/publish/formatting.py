"""Values turned into French text for the public pages, and the Jinja environment that
renders them: numbers and percentages with French separators, months and dates in
Europe/Paris, detail codes, platform names and probing cadences in words.

Nothing here reads the database. The site, the evidence dossier, the status table, the
volunteer's page and the capture pages all format through this module, so a figure reads
the same wherever it appears. `DETAILS_FR` is the one table of detail codes in French.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import cast

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from observatoire.clock import PARIS, paris_date
from observatoire.french import MONTHS_FR
from observatoire.outcomes import OUTCOMES_FR, TARGET_RETIRED
from observatoire.platforms import PLATFORMS
from observatoire.stats import CIMADE_CLASSES, MonthPeriod

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

MONTHS_SHORT = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août",
                "sept.", "oct.", "nov.", "déc.")  # fmt: skip

#: Detail codes (open data) → what a reader of the site is told. Prefixes end with ":".
DETAILS_FR: dict[str, str] = {
    TARGET_RETIRED: "lien désactivé par la préfecture",
    "http:": "réponse HTTP",
    "timeout:": "délai de réponse dépassé",
    "network:": "erreur réseau",
    "contrary_sign:": "un signe contraire sur la page",
    "form_closed": "formulaire fermé",
    "procedure_unavailable": "démarche non proposée",
    "motive_not_offered": "motif non proposé",
    "no_motive_offered": "aucun motif proposé",
    "host_paused": "le site a demandé de patienter",
    "captcha_first": "captcha avant toute réponse",
    "captcha": "captcha",
    "browser_unavailable": "navigateur indisponible",
    "calendar_not_displayed": "calendrier vide",
    "empty_week": "semaine sans créneau",
    "last_week": "dernière semaine sans créneau",
    "undated_slots": "créneaux sans date lisible",
    "other_site": "page d'un autre site",
    "landing_page": "page d'accueil au lieu de la démarche",
    "postal_code_needed": "code postal demandé",
    "waf": "pare-feu",
    "waiting_room": "salle d'attente virtuelle",
    "rate_limited": "trop de requêtes (429)",
    "maintenance": "page de maintenance",
    # Codes a court document also meets (they were a second table in the dossier).
    "counter_not_offered": "le guichet de la démarche n'est pas proposé",
    "no_counter_offered": "aucun guichet proposé",
    "form_absent": "la démarche n'existe plus sur le site",
    "form_open": "formulaire ouvert",
    "module_closed": "module de rendez-vous fermé",
    "overloaded": "service surchargé",
    "first_free_slot_offered": "première plage libre proposée",
    "other_demarche": "page d'une autre démarche",
    "personal_data_page": "page de saisie des données personnelles",
    "calendar_empty": "calendrier sans plage lisible",
    "no_slot_message_out_of_place": "message d'absence de créneau hors de sa place",
    "no_slot_message_hidden": "message d'absence de créneau masqué",
    "no_slot_messages_disagree": "messages contradictoires",
    "no_slot_message_and_slots": "message d'absence de créneau et créneaux à la fois",
    "page_data_disagrees:": "données de la page contradictoires",
    "conditions_page": "page des conditions inattendue",
    "result_page": "page de résultat non reconnue",
    "planning_unknown": "guichet non reconnu",
    "empty_page": "page vide",
    "unparseable_page": "page illisible",
    "captcha_page": "captcha",
    "no_answer_to_captcha": "captcha sans réponse",
    "contradicted_by_probe": "contredit par une autre observation",
}


# -- Numbers ---------------------------------------------------------------------------
def percent(value: float | None, digits: int = 0) -> str:
    """0.625 -> '62 %' (narrow no-break space before the sign); '—' when unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text_ = f"{100 * value:.{digits}f}".replace(".", ",")
    return f"{text_}\u202f%"


def number(value: float | None, digits: int = 0) -> str:
    """12345.5 -> '12 346' (narrow no-break space between thousands, decimal comma)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}".replace(",", "\u202f").replace(".", ",")


def with_cimade_percent(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Adds, per row, La Cimade's five classes as shares of its classed probes
    (`cimade_total`, `cimade_pct_<class>`), the way "À guichets fermés" tables them."""
    for r in rows:
        counts = {c: int(cast(float, r.get(f"cimade_{c}", 0) or 0)) for c in CIMADE_CLASSES}
        total = sum(counts.values())
        r["cimade_total"] = total
        for c, n in counts.items():
            r[f"cimade_pct_{c}"] = n / total if total else math.nan
    return rows


# -- Months and dates (Europe/Paris) ---------------------------------------------------
def month_fr(label: str | None) -> str:
    """'2026-03' -> 'mars 2026'."""
    if not label:
        return "—"
    year, month = label.split("-")[:2]
    return f"{MONTHS_FR[int(month) - 1]} {year}"


def month_short(label: str | None) -> str:
    """'2026-10' -> 'oct. 2026'."""
    if not label:
        return "—"
    year, month = label.split("-")[:2]
    return f"{MONTHS_SHORT[int(month) - 1]} {year}"


def de_month(label: str) -> str:
    """'2026-10' -> "d’octobre 2026", '2026-03' -> 'de mars 2026' (French elision, with
    the typographic apostrophe, which also survives HTML and XML escaping unchanged)."""
    year, month = label.split("-")[:2]
    name = MONTHS_FR[int(month) - 1]
    return f"d’{name} {year}" if name[0] in "aeiouy" else f"de {name} {year}"


def period_note(period: MonthPeriod | None) -> str:
    """'' for a complete month, 'en cours' or 'partiel : 4 j sur 30'."""
    if period is None or not period.partial:
        return ""
    if period.running:
        return f"en cours : {period.days_covered} j sur {period.days_in_month}"
    return f"partiel : {period.days_covered} j sur {period.days_in_month}"


def paris_time(value: datetime | None) -> str:
    """'26/11/2026 à 13:05', Paris time; '—' when unknown (None, NaN or NaT)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "—"
    return value.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


def paris_day(value: datetime | None) -> str:
    """'26/11/2026', the Paris day; '—' when unknown."""
    if value is None or pd.isna(value):
        return "—"
    return paris_date(value).strftime("%d/%m/%Y")


# -- Codes and names -------------------------------------------------------------------
def detail_fr(code: object) -> str:
    """A detail code in French ("" when there is none); an unknown code is named as such
    rather than shown raw."""
    if not isinstance(code, str) or not code:
        return ""
    if code in DETAILS_FR:
        return DETAILS_FR[code]
    head, _, rest = code.partition(":")
    if code.startswith("http:") and rest.isdigit():
        return f"réponse HTTP {rest}"
    for key, label in DETAILS_FR.items():
        if key.endswith(":") and code.startswith(key):
            return label
        if head == key or code.startswith(key):
            return label
    return "cas particulier (voir les données ouvertes)"


def platform_fr(name: object) -> str:
    """A platform's label from the registry (its code when the registry does not know it)."""
    spec = PLATFORMS.get(str(name))
    return spec.label if spec else str(name)


def cadence_fr(platform: str, minutes: int, enabled: bool) -> str:
    """How often a booking page is looked at, as the site says it."""
    if not enabled:
        return "n'est plus consultée"
    spec = PLATFORMS.get(platform)
    if spec is not None and spec.captcha_first:
        return "lors des permanences de bénévoles (un captcha précède la réponse)"
    if minutes % 1440 == 0:
        days = minutes // 1440
        return "une fois par jour" if days == 1 else f"tous les {days} jours"
    if minutes % 60 == 0:
        hours = minutes // 60
        return "toutes les heures" if hours == 1 else f"toutes les {hours} heures"
    return f"toutes les {minutes} minutes"


# -- Templates -------------------------------------------------------------------------
def environment() -> Environment:
    """The Jinja environment of every French page (site, dossier, volunteer and capture
    pages): autoescaped, strict about missing values, with the filters above. The site
    replaces `month_note` with one that knows its months' periods."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "xml"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        percent=percent,
        paris_time=paris_time,
        month_fr=month_fr,
        number=number,
        outcome_fr=lambda o: OUTCOMES_FR.get(o, o),
        month_short=month_short,
        de_month=de_month,
        detail_fr=detail_fr,
        platform_fr=platform_fr,
        paris_day=paris_day,
        month_note=lambda _m: "",
    )
    return env
