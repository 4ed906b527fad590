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
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine, text

from observatoire import __version__
from observatoire.clock import PARIS
from observatoire.db.types import UTCDateTime
from observatoire.stats import CIMADE_CLASSES, OUTCOME_COLUMNS, StatsInput, monthly_stats

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
    "outcome": (
        "string",
        "available, no_slot, procedure_missing, form_open, blocked, error or unrecognized",
    ),
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
}
STATS_FIELDS: dict[str, tuple[str, str]] = {
    "target_id": ("string", "Target slug"),
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
    "valid": ("integer", "available + no_slot + procedure_missing + form_open"),
    "no_way": ("integer", "no_slot + procedure_missing: no way to book"),
    "share_no_way": ("number", "no_way / valid (empty when no valid probe)"),
    "share_low": ("number", "Lower bound of the 95 % Wilson interval of share_no_way"),
    "share_high": ("number", "Upper bound of the 95 % Wilson interval of share_no_way"),
    "small_sample": ("boolean", "Fewer than 30 valid probes: read with care"),
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
}


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
        lo = (
            datetime.combine(self.since, datetime.min.time(), PARIS).astimezone(UTC)
            if self.since
            else None
        )
        hi = None
        if self.until:
            nxt = date.fromordinal(self.until.toordinal() + 1)
            hi = datetime.combine(nxt, datetime.min.time(), PARIS).astimezone(UTC)
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
    where = ["1 = 1"]
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
        "p.page_sha256 AS page_sha256, p.screenshot_sha256 AS screenshot_sha256 "
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
        "datetime": pa.string(),
    }
    return pa.schema([(name, kinds[kind]) for name, (kind, _) in fields.items()])


def _normalise(frame: pd.DataFrame, fields: dict[str, tuple[str, str]]) -> pd.DataFrame:
    frame = frame.reindex(columns=list(fields)).copy()
    for name, (kind, _) in fields.items():
        col = frame[name]
        if kind == "integer":
            frame[name] = pd.to_numeric(col, errors="coerce").round().astype("Int64")
        elif kind == "number":
            frame[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif kind == "boolean":
            frame[name] = col.astype("boolean")
        elif kind == "datetime":
            if len(col) and not isinstance(col.dropna().iloc[0] if col.notna().any() else "", str):
                frame[name] = iso_utc(col)
        else:
            frame[name] = col.astype("string")
    return frame


class _Writer:
    """Writes chunks to CSV or Parquet, counting rows."""

    def __init__(self, path: Path, fields: dict[str, tuple[str, str]], fmt: str) -> None:
        self.path, self.fields, self.fmt, self.rows = path, fields, fmt, 0
        self.tmp = path.with_name(f".{path.name}.tmp")
        self._parquet: pq.ParquetWriter | None = None
        self._header = True

    def write(self, frame: pd.DataFrame) -> None:
        frame = _normalise(frame, self.fields)
        self.rows += len(frame)
        if self.fmt == "csv":
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
) -> list[ExportedFile]:
    """Write every table and `datapackage.json` into `out`; returns the files written."""
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

    targets = _targets_table(engine)
    if flt.department:
        targets = targets[targets["department"] == flt.department]
    writer = _Writer(out / f"targets.{ext}", TARGET_FIELDS, fmt)
    writer.write(targets)
    files.append((writer.close(), "targets", "The booking pages probed", TARGET_FIELDS))

    _write_datapackage(out, files, fmt, flt)
    (out / "SHA256SUMS").write_text(
        "".join(f"{f.sha256}  {f.path.name}\n" for f, *_ in files), encoding="utf-8"
    )
    return [f for f, *_ in files]


def _targets_table(engine: Engine) -> pd.DataFrame:
    sql = text(
        "SELECT id AS target, department, department_name, procedure, procedure_name, label, "
        "platform, url, enabled, interval_minutes FROM targets ORDER BY id"
    )
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(sql).mappings().all(), columns=list(TARGET_FIELDS))


def _write_datapackage(out: Path, files: list, fmt: str, flt: ExportFilter) -> None:  # type: ignore[type-arg]
    resources = []
    for f, name, title, fields in files:
        schema_fields = []
        for field_name, (kind, description) in fields.items():
            field: dict[str, object] = {
                "name": field_name,
                "type": kind,
                "description": description,
            }
            if kind == "datetime":
                field["format"] = "any"
            schema_fields.append(field)
        resource: dict[str, object] = {
            "name": name,
            "title": title,
            "path": f.path.name,
            "format": fmt,
            "mediatype": "text/csv" if fmt == "csv" else "application/vnd.apache.parquet",
            "bytes": f.bytes,
            "hash": f"sha256:{f.sha256}",
            "stats": {"rows": f.rows},
            "schema": {"fields": schema_fields, "missingValues": [""]},
        }
        if fmt == "csv":
            resource["encoding"] = "utf-8"
            resource["dialect"] = {"delimiter": ",", "header": True}
        resources.append(resource)
    package = {
        "name": "observatoire-prefectures",
        "title": "Observatoire de l'accès aux préfectures — consultations et statistiques",
        "description": "Probes of prefectures' online appointment booking pages for residence "
        "permits, by an identified robot that never books, and the monthly "
        "statistics built from them. Definitions: methodology page of the site.",
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
