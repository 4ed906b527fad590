"""What the public pages need beyond the monthly figures: French words for codes and
months, the booking pages observed (link, platform, cadence, last look), retired links,
the gaps inside episodes, La Cimade's classes in percent and the ready-to-quote sentence.
`DETAILS_FR` is the one table of detail codes in French, for the site and the dossier.
A private applicant's captures (`counted_sql`) appear in none of these queries.

Kept apart from `site.py` so the rendering loop stays short; everything here is read from
the database in a few grouped queries (never one query per page).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import cast

import pandas as pd
from sqlalchemy import Engine, bindparam, text

from observatoire.clock import paris_date
from observatoire.db.types import UTCDateTime
from observatoire.french import MONTHS_FR
from observatoire.outcomes import VALID_OUTCOMES, sql_in
from observatoire.platforms import PLATFORMS
from observatoire.stats import CIMADE_CLASSES, MonthPeriod, counted_sql

MONTHS_SHORT = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août",
                "sept.", "oct.", "nov.", "déc.")  # fmt: skip
RETIRED = "target_retired"
#: An episode whose observations are further apart than this is "observations espacées":
#: its duration says when it was seen, not that nobody could book in between.
SPACED_GAP_DAYS = 1.0

#: Detail codes (open data) → what a reader of the site is told. Prefixes end with ":".
DETAILS_FR: dict[str, str] = {
    RETIRED: "lien désactivé par la préfecture",
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
    spec = PLATFORMS.get(str(name))
    return spec.label if spec else str(name)


def period_note(period: MonthPeriod | None) -> str:
    """'' for a complete month, 'en cours' or 'partiel : 4 j sur 30'."""
    if period is None or not period.partial:
        return ""
    if period.running:
        return f"en cours : {period.days_covered} j sur {period.days_in_month}"
    return f"partiel : {period.days_covered} j sur {period.days_in_month}"


def retired_targets(engine: Engine) -> dict[str, datetime]:
    """Targets whose last probe met a link the prefecture deactivated, with the first
    such probe since the last one that did not (the date shown: "depuis le …"). One scan
    for the deactivated probes, then the (target, time) index for the few targets found."""
    last_retired = text(
        "SELECT target_id, MAX(started_at) AS at FROM probes WHERE detail = :r "
        f"AND {counted_sql()} GROUP BY target_id"
    ).columns(at=UTCDateTime())
    last_other = text(
        "SELECT MAX(started_at) AS at FROM probes WHERE target_id = :t "
        f"AND (detail IS NULL OR detail <> :r) AND {counted_sql()}"
    ).columns(at=UTCDateTime())
    out: dict[str, datetime] = {}
    with engine.connect() as conn:
        for target_id, retired_at in conn.execute(last_retired, {"r": RETIRED}).all():
            other = conn.execute(last_other, {"t": target_id, "r": RETIRED}).scalar_one()
            if other is not None and other > retired_at:
                continue
            since = text(
                "SELECT MIN(started_at) AS first FROM probes WHERE target_id = :t "
                f"AND detail = :r AND {counted_sql()}"
                + ("" if other is None else " AND started_at > :after")
            ).columns(first=UTCDateTime())
            if other is not None:
                since = since.bindparams(bindparam("after", other, type_=UTCDateTime()))
            out[target_id] = conn.execute(since, {"t": target_id, "r": RETIRED}).scalar_one()
    return out


def observed_pages(engine: Engine) -> pd.DataFrame:
    """Every booking page with its link, platform, cadence and last look."""
    sql = text(
        "SELECT t.id AS target_id, t.department AS department, t.procedure AS procedure, "
        "t.procedure_name AS procedure_name, t.url AS url, t.platform AS platform, "
        "t.interval_minutes AS interval_minutes, t.enabled AS enabled, "
        "(SELECT MAX(p.started_at) FROM probes p WHERE p.target_id = t.id "
        f"AND {counted_sql('p')}) AS last_look "
        "FROM targets t ORDER BY t.department, t.procedure_name, t.id"
    ).columns(last_look=UTCDateTime())
    columns = [
        "target_id",
        "department",
        "procedure",
        "procedure_name",
        "url",
        "platform",
        "interval_minutes",
        "enabled",
        "last_look",
    ]
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(sql).mappings().all(), columns=columns)
    frame["platform_fr"] = [platform_fr(p) for p in frame["platform"]]
    frame["cadence"] = [
        cadence_fr(p, int(m), bool(e))
        for p, m, e in zip(
            frame["platform"], frame["interval_minutes"], frame["enabled"], strict=True
        )
    ]
    return frame


def cadence_fr(platform: str, minutes: int, enabled: bool) -> str:
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


def episode_gaps(engine: Engine, episodes: pd.DataFrame, until: datetime) -> pd.DataFrame:
    """Adds `largest_gap_days` (the longest wait between two consecutive valid probes of
    the episode, its closing probe included) and `spaced` (that gap exceeds a day) to the
    episodes shown. One query for all of them, bounded by the (target, time) index."""
    episodes = episodes.copy()
    if episodes.empty:
        episodes["largest_gap_days"] = []
        episodes["spaced"] = []
        return episodes
    gaps: dict[int, float] = {}
    for first in range(0, len(episodes), GAP_BATCH):
        gaps.update(_gaps(engine, episodes.iloc[first : first + GAP_BATCH], first, until))
    episodes["largest_gap_days"] = [gaps.get(i, 0.0) for i in range(len(episodes))]
    episodes["spaced"] = episodes["largest_gap_days"] > SPACED_GAP_DAYS
    return episodes


GAP_BATCH = 400  # episodes per query (SQLite caps a compound SELECT at 500 terms)


def _gaps(engine: Engine, part: pd.DataFrame, offset: int, until: datetime) -> dict[int, float]:
    rows = " UNION ALL ".join(
        f"SELECT {offset + i} AS eid, :t{i} AS tid, :s{i} AS s, :e{i} AS e"
        for i in range(len(part))
    )
    params = []
    for i, e in enumerate(part.itertuples()):
        end = e.end_at if e.end_at is not None and not pd.isna(e.end_at) else until
        params += [
            bindparam(f"t{i}", e.target_id),
            bindparam(f"s{i}", e.start, type_=UTCDateTime()),
            bindparam(f"e{i}", end, type_=UTCDateTime()),
        ]
    if engine.dialect.name == "sqlite":
        gap = "(julianday(started_at) - julianday(prev))"
    else:
        gap = "(EXTRACT(EPOCH FROM (started_at - prev)) / 86400.0)"
    sql = text(
        f"WITH ep AS ({rows}), x AS (SELECT ep.eid AS eid, p.started_at AS started_at, "
        "LAG(p.started_at) OVER (PARTITION BY ep.eid ORDER BY p.started_at) AS prev "
        "FROM ep JOIN probes p ON p.target_id = ep.tid AND p.started_at >= ep.s "
        f"AND p.started_at <= ep.e WHERE {sql_in('p.outcome', VALID_OUTCOMES)} "
        f"AND {counted_sql('p')}) "
        f"SELECT eid, MAX({gap}) AS gap FROM x WHERE prev IS NOT NULL GROUP BY eid"
    ).bindparams(*params)
    with engine.connect() as conn:
        return {int(r[0]): float(r[1]) for r in conn.execute(sql).all() if r[1] is not None}


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


def scope_counts(rows: pd.DataFrame) -> tuple[int, int]:
    """(departments, pages) with at least one valid probe in these rows."""
    if rows.empty:
        return (0, 0)
    return int(rows["departments_observed"].sum()), int(rows["targets_observed"].sum())


def paris_day(value: datetime | None) -> str:
    if value is None or pd.isna(value):
        return "—"
    return paris_date(value).strftime("%d/%m/%Y")
