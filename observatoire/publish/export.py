"""Open data: raw probes, monthly statistics, episodes and targets, as CSV (UTF-8, comma,
ISO 8601 with offsets, department codes as strings) or Parquet, described by a
Frictionless `datapackage.json` whose every column is typed and documented, with a
sha256, byte count and row count per file (and a SHA256SUMS file).

Raw probes are streamed from the database in chunks: an export never holds every probe
in memory. They carry no evidence path and no internal id, only what means something
outside: the target's slug, times, outcome and the evidence's sha256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from observatoire import __version__
from observatoire.clock import paris_midnight
from observatoire.db.models import ReleaseRow, TargetRow
from observatoire.db.types import UTCDateTime
from observatoire.platforms import PLATFORMS
from observatoire.publish.swap import PublishRefused
from observatoire.record.rollups import counted_sql
from observatoire.stats import (
    CIMADE_CLASSES,
    NO_WAY_COLUMNS,
    OUTCOME_COLUMNS,
    VALID_COLUMNS,
    StatsInput,
    monthly_stats,
)

LICENSE = {
    "name": "ODbL-1.0",
    "title": "Open Data Commons Open Database License 1.0",
    "path": "https://opendatacommons.org/licenses/odbl/1-0/",
}
CHUNK = 50_000

# name -> (Frictionless type, description)
PROBE_FIELDS: dict[str, tuple[str, str]] = {
    "target": ("string", "Target slug: department code, procedure, platform id"),
    "department": ("string", "INSEE department code, as a string ('01', '2A', '974')"),
    "procedure": ("string", "Procedure slug (see targets.csv for its name)"),
    "platform": ("string", "Booking platform family"),
    "mode": ("string", "auto (robot) or assisted (a volunteer answered a captcha)"),
    "scheduled_at": ("datetime", "When the probe was due (UTC, ISO 8601)"),
    "started_at": ("datetime", "When the probe started (UTC, ISO 8601)"),
    "finished_at": ("datetime", "When the probe ended (UTC, ISO 8601)"),
    "outcome": ("string", f"{', '.join(OUTCOME_COLUMNS[:-1])} or {OUTCOME_COLUMNS[-1]}"),
    "detail": ("string", "Why, for the robot's operator (e.g. http:503, timeout:read)"),
    "first_slot_at": ("datetime", "First offered slot (UTC), when available"),
    "second_slot_at": ("datetime", "Second offered slot (UTC), when available"),
    "slots_count": ("integer", "Slots offered over the next 60 days, when counted"),
    "http_status": ("integer", "HTTP status of the last page"),
    "requests_made": ("integer", "HTTP requests this probe sent, retries included"),
    "attempts": ("integer", "Attempts (1 + retries after error/unrecognized)"),
    "duration_ms": ("integer", "Wall time of the probe, in milliseconds"),
    "adapter": ("string", "Adapter that parsed the pages"),
    "adapter_version": ("string", "Version of that adapter's parser"),
    "robot_version": ("string", "Version of observatoire"),
    "page_sha256": ("string", "sha256 of the saved page (evidence kept by the operator)"),
    "screenshot_sha256": ("string", "sha256 of the screenshot, when a browser rendered it"),
    "followup": (
        "boolean",
        "A follow-up probe (extra look after slots were seen or a release announced); "
        "not counted in the monthly statistics",
    ),
}
#: Releases of slots (issue 17): see observatoire/record/releases.py.
RELEASE_FIELDS: dict[str, tuple[str, str]] = {
    "target": ("string", "Target slug (key of targets.csv)"),
    "published_at": (
        "datetime",
        "Publication instant (UTC); inferred: the probe that first found the slots",
    ),
    "week_start": ("string", "Monday of the week whose slots it opens (YYYY-MM-DD), if said"),
    "source": ("string", "banner (read on the page), announced (next release) or inferred"),
    "uncertainty_seconds": (
        "integer",
        "Inferred releases: seconds between the last look without slots and published_at",
    ),
    "first_seen_at": ("datetime", "First probe that saw it (UTC)"),
    "last_seen_at": ("datetime", "Last probe that saw it (UTC)"),
    "censoring": ("string", "interval, right (still visible at the last look) or missed"),
    "survival_low_seconds": (
        "number",
        "Survival longer than this (seconds from publication to the last look with slots)",
    ),
    "survival_high_seconds": (
        "number",
        "Survival at most this (to the first look without slots); empty if right-censored",
    ),
    "looks": ("integer", "Looks (available or no_slot) between it and the next release"),
}
SURVIVAL_FIELDS: dict[str, tuple[str, str]] = {
    "target": ("string", "Target slug (key of targets.csv)"),
    "month": ("string", "Calendar month of the publications, Europe/Paris, YYYY-MM"),
    "releases": ("integer", "Releases known (announced, read or inferred)"),
    "observed": ("integer", "Releases with at least one look before the next one"),
    "missed": ("integer", "Releases without any look before the next one"),
    "right_censored": ("integer", "Observed releases still visible at the last look"),
    "inferred": ("integer", "Releases inferred (platform without banners)"),
    "median_low_seconds": ("number", "Lowest median survival compatible with the looks"),
    "median_high_seconds": (
        "number",
        "Highest median survival compatible with the looks; empty when unbounded",
    ),
    **{
        f"gone_{m}min_{side}": (
            "number",
            f"{'Lowest' if side == 'low' else 'Highest'} share of observed releases gone "
            f"within {m} minutes compatible with the looks",
        )
        for m in (5, 15, 60)
        for side in ("low", "high")
    },
}
STATS_FIELDS: dict[str, tuple[str, str]] = {
    "target": ("string", "Target slug (key of targets.csv)"),
    "department": ("string", "INSEE department code"),
    "department_name": ("string", "Department name"),
    "procedure": ("string", "Procedure slug"),
    "procedure_name": ("string", "Procedure name"),
    "month": ("string", "Calendar month in Europe/Paris time, YYYY-MM"),
    "probes_expected": ("integer", "Probes the cadence called for"),
    "probes": ("integer", "Probes made (automatic and assisted)"),
    "probes_assisted": (
        "integer",
        "Probes made with a volunteer answering a captcha (irregular cadence)",
    ),
    "coverage": ("number", "(probes - probes_assisted) / probes_expected"),
    **{o: ("integer", f"Probes with outcome {o}") for o in OUTCOME_COLUMNS},
    "valid": ("integer", " + ".join(VALID_COLUMNS)),
    "no_way": ("integer", f"{' + '.join(NO_WAY_COLUMNS)}: no way to book"),
    "share_no_way": ("number", "no_way / valid (empty when no valid probe)"),
    "share_low": ("number", "Lower bound of the 95 % Wilson interval of share_no_way"),
    "share_high": ("number", "Upper bound of the 95 % Wilson interval of share_no_way"),
    "small_sample": ("boolean", "Fewer than 30 valid probes: read with care"),
    "share_low_cluster": (
        "number",
        "Lower bound of the 95 % clustered interval (Bayesian bootstrap over pages, or days "
        "below 5 pages; seeded)",
    ),
    "share_high_cluster": ("number", "Upper bound of the 95 % clustered interval"),
    "cluster_unit": ("string", "Unit resampled for the clustered interval: target or day"),
    "clusters": ("integer", "Pages or days resampled for the clustered interval"),
    "departments_observed": ("integer", "Departments with at least one valid probe"),
    "targets_observed": ("integer", "Booking pages (targets) with at least one valid probe"),
    "departments_mean_share": (
        "number",
        "Unweighted mean of the departments' share_no_way (national rows)",
    ),
    "departments_median_share": (
        "number",
        "Median of the departments' share_no_way (national rows)",
    ),
    "unrecognized_share": (
        "number",
        "unrecognized / probes (every outcome, automatic and assisted)",
    ),
    "unreliable": (
        "boolean",
        "unrecognized_share > 10 % (strictly): unrecognized pages can hide slot pages and "
        "inflate share_no_way; for a target, the target-month is unreliable",
    ),
    "target_months": ("integer", "Target-months in this row: targets with a probe in the month"),
    "unreliable_target_months": (
        "integer",
        "Target-months in this row whose unrecognized_share exceeds 10 %",
    ),
    "days_observed": ("integer", "Days (Europe/Paris) with at least one valid probe"),
    "days_without_slot": ("integer", "Observed days on which no valid probe found a way"),
    "lead_days_median": ("number", "Median days from probe to first offered slot"),
    "lead_days_p90": ("number", "90th percentile of days from probe to first offered slot"),
    "longest_episode_days": ("number", "Longest run without any slot within the month, days"),
    **{
        f"cimade_{k}": ("integer", f"Valid probes in La Cimade's class « {v} »")
        for k, v in CIMADE_CLASSES.items()
    },
}
EPISODE_FIELDS: dict[str, tuple[str, str]] = {
    "target": ("string", "Target slug"),
    "department": ("string", "INSEE department code"),
    "procedure": ("string", "Procedure slug"),
    "start": ("datetime", "First probe of the run that found no way to book (UTC)"),
    "last": ("datetime", "Last probe of the run that found no way to book (UTC)"),
    "end": ("datetime", "Next probe that found a way to book (UTC); empty if ongoing"),
    "ongoing": ("boolean", "No probe has found a way to book since start"),
    "probes": ("integer", "Valid probes in the run"),
    "duration_days": ("number", "end (or the export time) minus start, in days"),
}
TARGET_FIELDS: dict[str, tuple[str, str]] = {
    "target": ("string", "Target slug"),
    "department": ("string", "INSEE department code"),
    "department_name": ("string", "Department name"),
    "procedure": ("string", "Procedure slug"),
    "procedure_name": ("string", "Procedure name"),
    "label": ("string", "The procedure as the platform labels it"),
    "platform": ("string", "Booking platform family"),
    "url": ("string", "Public booking page probed"),
    "enabled": ("boolean", "Currently probed"),
    "interval_minutes": ("integer", "Cadence of probes"),
    "simulated": (
        "boolean",
        "The page is the built-in simulator's (demonstration), not a real one",
    ),
}
#: Closed vocabularies, declared as `enum` constraints in datapackage.json.
ENUMS: dict[str, list[str]] = {
    "outcome": list(OUTCOME_COLUMNS),
    "mode": ["auto", "assisted", "manual"],
    "platform": list(PLATFORMS),
    "cluster_unit": ["target", "day"],
    "source": ["banner", "announced", "inferred"],
    "censoring": ["interval", "right", "missed"],
}
#: French descriptions (the datapackage's `description`; the English one is kept as
#: `description_en`).
FRENCH: dict[str, str] = {
    "target": "Identifiant de la page de rendez-vous observée (clé de targets.csv)",
    "department": "Code INSEE du département, en texte ('01', '2A', '974')",
    "department_name": "Nom du département",
    "procedure": "Identifiant de la démarche (son nom : targets.csv)",
    "procedure_name": "Nom de la démarche",
    "platform": "Famille de plateforme de rendez-vous",
    "mode": "auto (robot) ou assisted (une personne bénévole a lu le captcha)",
    "scheduled_at": "Heure prévue de la consultation (UTC, ISO 8601)",
    "started_at": "Début de la consultation (UTC, ISO 8601)",
    "finished_at": "Fin de la consultation (UTC, ISO 8601)",
    "outcome": f"Résultat : {', '.join(OUTCOME_COLUMNS)}",
    "detail": "Précision technique du résultat (par exemple http:503, target_retired)",
    "first_slot_at": "Premier créneau proposé (UTC)",
    "second_slot_at": "Deuxième créneau proposé (UTC)",
    "slots_count": "Créneaux proposés sur les 60 jours suivants, quand ils sont comptés",
    "http_status": "Code HTTP de la dernière page",
    "requests_made": "Requêtes HTTP envoyées par la consultation, nouvelles tentatives comprises",
    "attempts": "Tentatives (1 + nouvelles tentatives après erreur ou page non reconnue)",
    "duration_ms": "Durée de la consultation, en millisecondes",
    "adapter": "Analyseur qui a lu les pages",
    "adapter_version": "Version de cet analyseur (texte : '1.10' n'est pas '1.1')",
    "robot_version": "Version d'observatoire",
    "page_sha256": "Empreinte sha256 de la page conservée comme preuve",
    "screenshot_sha256": "Empreinte sha256 de la capture d'écran, quand un navigateur l'a rendue",
    "month": "Mois civil, heure de Paris, AAAA-MM",
    "probes_expected": "Consultations prévues par la cadence",
    "probes": "Consultations faites (automatiques et assistées)",
    "probes_assisted": "Consultations faites avec une personne bénévole (rythme irrégulier)",
    "coverage": "(probes - probes_assisted) / probes_expected",
    **{o: f"Consultations de résultat {o}" for o in OUTCOME_COLUMNS},
    "valid": " + ".join(VALID_COLUMNS),
    "no_way": f"{' + '.join(NO_WAY_COLUMNS)} : aucune possibilité de rendez-vous",
    "share_no_way": "no_way / valid : part des consultations sans possibilité de rendez-vous",
    "share_low": "Borne basse de l'intervalle de Wilson à 95 % (consultations indépendantes)",
    "share_high": "Borne haute de l'intervalle de Wilson à 95 % (consultations indépendantes)",
    "small_sample": "Moins de 30 consultations valides : à lire avec prudence",
    "share_low_cluster": "Borne basse de l'intervalle à 95 % par page (ou par jour sous 5 "
    "pages) : bootstrap bayésien amorcé",
    "share_high_cluster": "Borne haute de l'intervalle à 95 % par page (ou par jour)",
    "cluster_unit": "Unité rééchantillonnée : target (page) ou day (jour)",
    "clusters": "Nombre de pages ou de jours rééchantillonnés",
    "departments_observed": "Départements ayant au moins une consultation valide",
    "targets_observed": "Pages de rendez-vous ayant au moins une consultation valide",
    "departments_mean_share": "Moyenne non pondérée des parts des départements (lignes nationales)",
    "departments_median_share": "Médiane des parts des départements (lignes nationales)",
    "unrecognized_share": "unrecognized / probes (tous résultats, automatiques et assistées)",
    "unreliable": "unrecognized_share > 10 % : mois peu fiable",
    "target_months": "Mois-pages de la ligne : pages consultées dans le mois",
    "unreliable_target_months": "Mois-pages de la ligne dont unrecognized_share dépasse 10 %",
    "days_observed": "Jours (heure de Paris) avec au moins une consultation valide",
    "days_without_slot": "Jours observés sans aucune consultation ayant trouvé une possibilité",
    "lead_days_median": "Délai médian, en jours, jusqu'au premier créneau proposé",
    "lead_days_p90": "90e centile du délai jusqu'au premier créneau proposé, en jours",
    "longest_episode_days": "Plus long épisode sans aucun créneau dans le mois, en jours",
    **{
        f"cimade_{k}": f"Consultations valides dans la classe de La Cimade « {v} »"
        for k, v in CIMADE_CLASSES.items()
    },
    "start": "Première consultation de l'épisode sans possibilité de rendez-vous (UTC)",
    "last": "Dernière consultation de l'épisode sans possibilité (UTC)",
    "end": "Consultation suivante qui a trouvé une possibilité (UTC) ; vide si en cours",
    "ongoing": "Aucune consultation n'a trouvé de possibilité depuis le début",
    "duration_days": "Fin (ou date de l'export) moins début, en jours",
    "label": "La démarche telle que la plateforme la nomme",
    "url": "Page publique de rendez-vous consultée",
    "enabled": "Encore consultée",
    "interval_minutes": "Cadence des consultations, en minutes",
    "simulated": "Page du simulateur intégré (démonstration), pas une vraie page",
    "followup": "Consultation de suivi (regard supplémentaire après des créneaux vus ou une "
    "mise en ligne annoncée) : hors des statistiques mensuelles",
    "published_at": "Instant de la mise en ligne (UTC) ; déduite : la consultation qui a vu "
    "les créneaux la première",
    "week_start": "Lundi de la semaine dont elle ouvre les créneaux (AAAA-MM-JJ), si indiqué",
    "source": "banner (lue sur la page), announced (annoncée) ou inferred (déduite)",
    "uncertainty_seconds": "Mises en ligne déduites : secondes entre la dernière consultation "
    "sans créneau et published_at",
    "first_seen_at": "Première consultation qui l'a vue (UTC)",
    "last_seen_at": "Dernière consultation qui l'a vue (UTC)",
    "censoring": "interval (entre deux consultations), right (encore visible à la dernière) "
    "ou missed (manquée)",
    "survival_low_seconds": "Durée de disponibilité supérieure à ceci (secondes)",
    "survival_high_seconds": "Durée de disponibilité au plus égale à ceci (secondes) ; vide "
    "si non bornée",
    "looks": "Consultations (available ou no_slot) avant la mise en ligne suivante",
    "releases": "Mises en ligne connues",
    "observed": "Mises en ligne vues par au moins une consultation avant la suivante",
    "missed": "Mises en ligne sans aucune consultation avant la suivante",
    "right_censored": "Mises en ligne encore visibles à la dernière consultation",
    "inferred": "Mises en ligne déduites (plateforme sans annonce)",
    "median_low_seconds": "Plus petite durée médiane compatible avec les consultations (s)",
    "median_high_seconds": "Plus grande durée médiane compatible (s) ; vide si non bornée",
    **{
        f"gone_{m}min_{side}": f"Part {'minimale' if side == 'low' else 'maximale'} des "
        f"mises en ligne observées parties en {m} minutes"
        for m in (5, 15, 60)
        for side in ("low", "high")
    },
}
#: Per resource: primary key and the key columns that refer to targets.csv.
PRIMARY_KEYS: dict[str, list[str]] = {
    "targets": ["target"],
    "stats_target": ["target", "month"],
    "stats_department_procedure": ["department", "procedure", "month"],
    "stats_department": ["department", "month"],
    "stats_procedure": ["procedure", "month"],
    "stats_national": ["month"],
    "episodes": ["target", "start"],
    "releases": ["target", "published_at"],
    "survival": ["target", "month"],
}
REFERS_TO_TARGETS = ("probes", "stats_target", "episodes", "releases", "survival")
TITLES_FR = {
    "probes": "Toutes les consultations, une ligne par observation",
    "stats_department": "Statistiques mensuelles par département",
    "stats_department_procedure": "Statistiques mensuelles par département et démarche",
    "stats_procedure": "Statistiques mensuelles par démarche, au niveau national",
    "stats_target": "Statistiques mensuelles par page de rendez-vous",
    "stats_national": "Statistiques mensuelles nationales",
    "episodes": "Épisodes sans aucun créneau, par page",
    "targets": "Les pages de rendez-vous observées",
    "releases": "Mises en ligne de créneaux et durée de leur disponibilité",
    "survival": "Durée de disponibilité des créneaux mis en ligne, par page et par mois",
}


#: Every file `export_all` writes (either format), and nothing else.
RESOURCES = (
    "probes",
    *(f"stats_{level}" for level in ("department", "department_procedure", "procedure")),
    "stats_target",
    "stats_national",
    "episodes",
    "releases",
    "survival",
    "targets",
)
EXPORT_FILES = frozenset(
    {f"{name}.{ext}" for name in RESOURCES for ext in ("csv", "parquet")}
    | {f".{name}.{ext}.tmp" for name in RESOURCES for ext in ("csv", "parquet")}
    | {"datapackage.json", "SHA256SUMS"}
)


def check_export_target(out: Path) -> None:
    """Raise PublishRefused unless `out` may receive an export: absent, or a folder
    holding nothing but the files an export writes. `publish` checks it before writing
    anything, so a data folder pointed at the wrong place loses no file of its own."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise PublishRefused(f"{out} exists and is not a folder: refusing to export into it")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in EXPORT_FILES)
    if foreign:
        raise PublishRefused(
            f"{out} holds files an export does not write ({', '.join(foreign[:3])}"
            f"{', …' if len(foreign) > 3 else ''}): refusing to write into it; choose a new "
            "or empty folder"
        )


@dataclass(frozen=True)
class ExportedFile:
    path: Path
    rows: int
    sha256: str
    bytes: int


@dataclass(frozen=True)
class ExportFilter:
    since: date | None = None  # first day included (Europe/Paris)
    until: date | None = None  # last day included (Europe/Paris)
    department: str | None = None

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        lo = paris_midnight(self.since) if self.since else None
        hi = paris_midnight(self.until + timedelta(days=1)) if self.until else None
        return lo, hi

    def months(self) -> tuple[str | None, str | None]:
        return (
            self.since.strftime("%Y-%m") if self.since else None,
            self.until.strftime("%Y-%m") if self.until else None,
        )


def iso_utc(column: pd.Series) -> pd.Series:
    """Database times (naive-UTC text from SQLite, aware datetimes from PostgreSQL) as
    ISO 8601 with an explicit UTC offset, vectorised."""
    parsed = pd.to_datetime(column, utc=True, format="mixed")
    text_ = parsed.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return text_.where(parsed.notna(), None)


def _probe_chunks(engine: Engine, flt: ExportFilter) -> Iterator[pd.DataFrame]:
    # A private applicant's captures serve only their own dossier: never open data.
    where = [counted_sql("p")]
    params: dict[str, object] = {}
    lo, hi = flt.bounds()
    if lo:
        where.append("p.started_at >= :lo")
        params["lo"] = UTCDateTime().process_bind_param(lo, engine.dialect)
    if hi:
        where.append("p.started_at < :hi")
        params["hi"] = UTCDateTime().process_bind_param(hi, engine.dialect)
    if flt.department:
        where.append("t.department = :dep")
        params["dep"] = flt.department
    sql = text(
        "SELECT p.target_id AS target, t.department AS department, t.procedure AS procedure, "
        "t.platform AS platform, p.mode AS mode, p.scheduled_at AS scheduled_at, "
        "p.started_at AS started_at, p.finished_at AS finished_at, p.outcome AS outcome, "
        "p.detail AS detail, p.first_slot_at AS first_slot_at, "
        "p.second_slot_at AS second_slot_at, p.slots_count AS slots_count, "
        "p.http_status AS http_status, p.requests_made AS requests_made, "
        "p.attempts AS attempts, p.duration_ms AS duration_ms, p.adapter AS adapter, "
        "p.adapter_version AS adapter_version, p.robot_version AS robot_version, "
        "p.page_sha256 AS page_sha256, p.screenshot_sha256 AS screenshot_sha256, "
        "p.followup AS followup "
        "FROM probes p JOIN targets t ON t.id = p.target_id "
        f"WHERE {' AND '.join(where)} ORDER BY p.started_at, p.id"
    )
    with engine.connect().execution_options(stream_results=True, yield_per=CHUNK) as conn:
        result = conn.execute(sql, params)
        while True:
            rows = result.fetchmany(CHUNK)
            if not rows:
                return
            frame = pd.DataFrame.from_records(rows, columns=list(PROBE_FIELDS))
            for col in (
                "scheduled_at",
                "started_at",
                "finished_at",
                "first_slot_at",
                "second_slot_at",
            ):
                frame[col] = iso_utc(frame[col])
            yield frame


def _arrow_schema(fields: dict[str, tuple[str, str]]) -> pa.Schema:
    kinds = {
        "string": pa.string(),
        "integer": pa.int64(),
        "number": pa.float64(),
        "boolean": pa.bool_(),
        "datetime": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([(name, kinds[kind]) for name, (kind, _) in fields.items()])


def _normalise(
    frame: pd.DataFrame, fields: dict[str, tuple[str, str]], fmt: str = "csv"
) -> pd.DataFrame:
    """Each column in its declared type: CSV gets ISO 8601 text for times, Parquet real
    UTC timestamps (and nullable integers, booleans and strings either way)."""
    frame = frame.reindex(columns=list(fields)).copy()
    for name, (kind, _) in fields.items():
        col = frame[name]
        if kind == "integer":
            frame[name] = pd.to_numeric(col, errors="coerce").round().astype("Int64")
        elif kind == "number":
            frame[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif kind == "boolean":
            frame[name] = col.astype("boolean")
        elif kind == "datetime" and fmt == "parquet":
            frame[name] = pd.to_datetime(col, utc=True, format="ISO8601").astype(
                "datetime64[us, UTC]"
            )
        elif kind == "datetime":
            if len(col) and not isinstance(col.dropna().iloc[0] if col.notna().any() else "", str):
                frame[name] = iso_utc(col)
        else:
            frame[name] = col.astype("string")
    return frame


#: Cells a spreadsheet would read as a formula (CSV injection): OWASP's list.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame, fields: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Text cells starting like a formula get a leading single quote, the standard
    neutralisation, so a page title scraped from a hostile site cannot run in the
    spreadsheet of whoever opens the CSV. Numeric columns are never touched: a negative
    number is data."""
    for name, (kind, _) in fields.items():
        if kind != "string" or name not in frame:
            continue
        col = frame[name]
        risky = col.notna() & col.astype("string").str.startswith(FORMULA_LEADS).fillna(False)
        if risky.any():
            frame[name] = col.where(~risky, "'" + col.astype("string"))
    return frame


class _Writer:
    """Writes chunks to CSV or Parquet, counting rows."""

    def __init__(self, path: Path, fields: dict[str, tuple[str, str]], fmt: str) -> None:
        self.path, self.fields, self.fmt, self.rows = path, fields, fmt, 0
        self.tmp = path.with_name(f".{path.name}.tmp")
        self._parquet: pq.ParquetWriter | None = None
        self._header = True

    def write(self, frame: pd.DataFrame) -> None:
        frame = _normalise(frame, self.fields, self.fmt)
        self.rows += len(frame)
        if self.fmt == "csv":
            frame = neutralise_formulas(frame, self.fields)
            frame.to_csv(
                self.tmp,
                mode="w" if self._header else "a",
                header=self._header,
                index=False,
                encoding="utf-8",
                float_format="%.6g",
                lineterminator="\n",
            )
            self._header = False
        else:
            table = pa.Table.from_pandas(
                frame, schema=_arrow_schema(self.fields), preserve_index=False
            )
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.tmp, table.schema)
            self._parquet.write_table(table)

    def close(self) -> ExportedFile:
        if self.fmt == "csv" and self._header:
            self.write(pd.DataFrame(columns=list(self.fields)))
        if self.fmt == "parquet":
            if self._parquet is None:
                self.write(pd.DataFrame(columns=list(self.fields)))
            assert self._parquet is not None
            self._parquet.close()
        self.tmp.replace(self.path)
        digest = hashlib.sha256()
        with self.path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return ExportedFile(self.path, self.rows, digest.hexdigest(), self.path.stat().st_size)


def export_all(
    engine: Engine,
    out: Path,
    fmt: str = "csv",
    flt: ExportFilter | None = None,
    data: StatsInput | None = None,
    levels: dict[str, pd.DataFrame] | None = None,
    simulated: bool | None = None,
) -> list[ExportedFile]:
    """Write every table and `datapackage.json` into `out`; returns the files written.
    `simulated` flags the package (None: true when a target lives on loopback, i.e. is
    the built-in simulator's)."""
    if fmt not in ("csv", "parquet"):
        raise ValueError("format must be csv or parquet")
    flt = flt or ExportFilter()
    out.mkdir(parents=True, exist_ok=True)
    ext = fmt
    files: list[tuple[ExportedFile, str, str, dict[str, tuple[str, str]]]] = []

    writer = _Writer(out / f"probes.{ext}", PROBE_FIELDS, fmt)
    for chunk in _probe_chunks(engine, flt):
        writer.write(chunk)
    files.append((writer.close(), "probes", "Every probe: one row per observation", PROBE_FIELDS))

    data = data or StatsInput.load(engine)
    first_month, last_month = flt.months()
    for level, title in (
        ("department", "Monthly statistics per department"),
        ("department_procedure", "Monthly statistics per department and procedure"),
        ("procedure", "Monthly statistics per procedure, all departments"),
        ("target", "Monthly statistics per target"),
        ("national", "Monthly statistics, all targets"),
    ):
        frame = (levels or {}).get(level)
        if frame is None:
            frame = monthly_stats(engine, level, data)
        if first_month:
            frame = frame[frame["month"] >= first_month]
        if last_month:
            frame = frame[frame["month"] <= last_month]
        if flt.department and "department" in frame:
            frame = frame[frame["department"] == flt.department]
        frame = frame.rename(columns={"target_id": "target"})
        fields = {k: v for k, v in STATS_FIELDS.items() if k in frame.columns}
        writer = _Writer(out / f"stats_{level}.{ext}", fields, fmt)
        writer.write(frame)
        files.append((writer.close(), f"stats_{level}", title, fields))

    meta = data.targets.set_index("target_id") if not data.targets.empty else None
    eps = data.episodes.copy()
    if not eps.empty and meta is not None:
        eps = eps.join(meta[["department", "procedure"]], on="target_id")
        lo, hi = flt.bounds()
        if lo is not None:
            eps = eps[[e is None or pd.isna(e) or e >= lo for e in eps["end_at"]]]
        if hi is not None:
            eps = eps[eps["start"] < hi]
        if flt.department:
            eps = eps[eps["department"] == flt.department]
        eps = eps.rename(columns={"target_id": "target", "end_at": "end"})
    writer = _Writer(out / f"episodes.{ext}", EPISODE_FIELDS, fmt)
    writer.write(eps if not eps.empty else pd.DataFrame(columns=list(EPISODE_FIELDS)))
    files.append(
        (writer.close(), "episodes", "Runs of probes without any slot, per target", EPISODE_FIELDS)
    )

    files += _release_files(engine, out, fmt, flt)

    targets = _targets_table(engine)
    if flt.department:
        targets = targets[targets["department"] == flt.department]
    writer = _Writer(out / f"targets.{ext}", TARGET_FIELDS, fmt)
    writer.write(targets)
    files.append((writer.close(), "targets", "The booking pages probed", TARGET_FIELDS))

    if simulated is None:
        simulated = bool(targets["simulated"].any()) if len(targets) else False
    _write_datapackage(out, files, fmt, flt, simulated)
    (out / "SHA256SUMS").write_text(
        "".join(f"{f.sha256}  {f.path.name}\n" for f, *_ in files), encoding="utf-8"
    )
    for path in [f.path for f, *_ in files] + [out / "datapackage.json", out / "SHA256SUMS"]:
        path.chmod(0o644)  # open data: world-readable whatever the umask
    return [f for f, *_ in files]


def _release_files(
    engine: Engine, out: Path, fmt: str, flt: ExportFilter
) -> list[tuple[ExportedFile, str, str, dict[str, tuple[str, str]]]]:
    """`releases` (one row per release, with its survival interval) and `survival` (the
    bound-method summaries per target and month): see observatoire/record/releases.py."""
    from observatoire.record import releases as rel

    now = datetime.now(UTC)
    items = rel.survivals(engine, now)
    with Session(engine) as session:
        rows = session.scalars(select(ReleaseRow).where(ReleaseRow.published_at <= now)).all()
        seen = {(r.target_id, r.published_at): (r.first_seen_at, r.last_seen_at) for r in rows}
        deps = dict(session.execute(select(TargetRow.id, TargetRow.department)).all())
    lo, hi = flt.bounds()
    items = [
        s
        for s in items
        if (lo is None or s.published_at >= lo)
        and (hi is None or s.published_at < hi)
        and (not flt.department or deps.get(s.target_id) == flt.department)
    ]
    frame = pd.DataFrame(
        [
            {
                "target": s.target_id,
                "published_at": s.published_at,
                "week_start": s.week_start.isoformat() if s.week_start else None,
                "source": s.source,
                "uncertainty_seconds": s.uncertainty_seconds,
                "first_seen_at": seen.get((s.target_id, s.published_at), (None, None))[0],
                "last_seen_at": seen.get((s.target_id, s.published_at), (None, None))[1],
                "censoring": s.censoring,
                "survival_low_seconds": s.low,
                "survival_high_seconds": s.high,
                "looks": s.looks,
            }
            for s in items
        ],
        columns=list(RELEASE_FIELDS),
    )
    for col in ("published_at", "first_seen_at", "last_seen_at"):
        frame[col] = iso_utc(frame[col])
    writer = _Writer(out / f"releases.{fmt}", RELEASE_FIELDS, fmt)
    writer.write(frame)
    done = [(writer.close(), "releases", "Releases of slots and their survival", RELEASE_FIELDS)]
    summary = pd.DataFrame(
        [
            {
                "target": s.target_id,
                "month": s.month,
                "releases": s.releases,
                "observed": s.observed,
                "missed": s.missed,
                "right_censored": s.right_censored,
                "inferred": s.inferred,
                "median_low_seconds": s.median_low,
                "median_high_seconds": s.median_high,
                **{
                    f"gone_{m}min_{side}": s.gone[m][i] if m in s.gone else None
                    for m in (5, 15, 60)
                    for i, side in enumerate(("low", "high"))
                },
            }
            for s in rel.summarize(items)
        ],
        columns=list(SURVIVAL_FIELDS),
    )
    writer = _Writer(out / f"survival.{fmt}", SURVIVAL_FIELDS, fmt)
    writer.write(summary)
    done.append(
        (writer.close(), "survival", "Survival of released slots per target", SURVIVAL_FIELDS)
    )
    return done


def _targets_table(engine: Engine) -> pd.DataFrame:
    sql = text(
        "SELECT id AS target, department, department_name, procedure, procedure_name, label, "
        "platform, url, enabled, interval_minutes FROM targets ORDER BY id"
    )
    columns = [c for c in TARGET_FIELDS if c != "simulated"]
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(sql).mappings().all(), columns=columns)
    frame["simulated"] = [_on_loopback(u) for u in frame["url"]]
    return frame


def _on_loopback(url: object) -> bool:
    """The built-in simulator only ever listens on loopback: a target there is simulated."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(str(url)).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _write_datapackage(
    out: Path,
    files: list[tuple[ExportedFile, str, str, dict[str, tuple[str, str]]]],
    fmt: str,
    flt: ExportFilter,
    simulated: bool = False,
) -> None:
    resources = []
    for f, name, title, fields in files:
        schema_fields = []
        for field_name, (kind, description) in fields.items():
            field: dict[str, object] = {
                "name": field_name,
                "type": kind,
                "description": FRENCH.get(field_name, description),
                "description_en": description,
            }
            if kind == "datetime":
                field["format"] = "any"
            if field_name in ENUMS:
                field["constraints"] = {"enum": ENUMS[field_name]}
            schema_fields.append(field)
        schema: dict[str, object] = {"fields": schema_fields, "missingValues": [""]}
        if name in PRIMARY_KEYS:
            schema["primaryKey"] = PRIMARY_KEYS[name]
        if name in REFERS_TO_TARGETS:
            schema["foreignKeys"] = [
                {"fields": ["target"], "reference": {"resource": "targets", "fields": ["target"]}}
            ]
        resource: dict[str, object] = {
            "name": name,
            "title": TITLES_FR.get(name, title),
            "title_en": title,
            "path": f.path.name,
            "format": fmt,
            "mediatype": "text/csv" if fmt == "csv" else "application/vnd.apache.parquet",
            "stats": {"rows": f.rows},
            # Always given here; the standard `bytes` and `hash` are declared for CSV only,
            # since Frictionless cannot measure a Parquet file it reads through Arrow.
            "sha256": f.sha256,
            "size": f.bytes,
            "schema": schema,
        }
        if fmt == "csv":
            resource["bytes"] = f.bytes
            resource["hash"] = f"sha256:{f.sha256}"
            resource["encoding"] = "utf-8"
            resource["dialect"] = {"delimiter": ",", "header": True}
        resources.append(resource)
    package = {
        "name": "observatoire-prefectures",
        "title": "Observatoire de l'accès aux préfectures — consultations et statistiques",
        "description": "Consultations des pages de prise de rendez-vous en ligne des "
        "préfectures pour les titres de séjour, par un robot identifié qui ne réserve jamais, "
        "et les statistiques mensuelles qui en sont tirées. Définitions : page « Méthode » du "
        "site. Dans les fichiers CSV, une cellule de texte qui commencerait par =, +, -, @, "
        "une tabulation ou un retour chariot est précédée d'une apostrophe (') pour qu'un "
        "tableur ne l'exécute pas comme une formule ; les colonnes numériques ne sont jamais "
        "modifiées."
        + (" DONNÉES SIMULÉES : démonstration, aucune préfecture réelle." if simulated else ""),
        "description_en": "Probes of prefectures' online appointment booking pages for "
        "residence permits, by an identified robot that never books, and the monthly "
        "statistics built from them. Definitions: methodology page of the site. In the CSV "
        "files, a text cell that would start with =, +, -, @, a tab or a carriage return is "
        "prefixed with a single quote (') so that a spreadsheet does not run it as a formula; "
        "numeric columns are never altered.",
        "simulated": simulated,
        "version": __version__,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "licenses": [LICENSE],
        "sources": [{"title": f"observatoire {__version__}, probes of public booking pages"}],
        "filters": {
            "from": flt.since.isoformat() if flt.since else None,
            "to": flt.until.isoformat() if flt.until else None,
            "department": flt.department,
        },
        "resources": resources,
    }
    (out / "datapackage.json").write_text(
        json.dumps(package, ensure_ascii=False, indent=2), encoding="utf-8"
    )
