"""Monthly statistics. SQL does the grouping (one row per group × month × outcome comes
back, never one per probe); pandas only shapes that small result.

Months are calendar months in Europe/Paris: their UTC bounds are computed here (DST
included) and joined in SQL, so SQLite and PostgreSQL give identical figures.

Definitions (published on the site's methodology page):
- valid probes: `available`, `no_slot`, `procedure_missing`;
- share with no way to book: (`no_slot` + `procedure_missing`) / valid, with a 95 %
  Wilson score interval;
- `blocked`, `error`, `unrecognized` are counted and published as coverage, never
  folded into the share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd
from sqlalchemy import Engine, bindparam, func, select, text

from observatoire.clock import PARIS
from observatoire.db.models import Probe
from observatoire.db.types import UTCDateTime
from observatoire.outcomes import NO_WAY_TO_BOOK, VALID_OUTCOMES, Outcome

OUTCOME_COLUMNS = [o.value for o in Outcome]
LEVELS = {
    "department": ["department", "department_name"],
    "department_procedure": ["department", "department_name", "procedure", "procedure_name"],
    "target": ["target_id", "department", "procedure"],
    "national": [],
}
SMALL_SAMPLE = 30


@dataclass(frozen=True)
class Month:
    label: str  # "2026-03"
    start: datetime  # UTC
    end: datetime  # UTC, exclusive


def month_of(when: datetime) -> str:
    return when.astimezone(PARIS).strftime("%Y-%m")


def paris_months(first: datetime, last: datetime) -> list[Month]:
    """Every Europe/Paris calendar month touching [first, last]."""
    local = first.astimezone(PARIS)
    year, month = local.year, local.month
    end_label = month_of(last)
    months: list[Month] = []
    while True:
        start = datetime(year, month, 1, tzinfo=PARIS)
        ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
        end = datetime(ny, nm, 1, tzinfo=PARIS)
        label = f"{year:04d}-{month:02d}"
        months.append(Month(label, start.astimezone(UTC), end.astimezone(UTC)))
        if label >= end_label:
            return months
        year, month = ny, nm


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion; (nan, nan) when n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def probe_time_range(engine: Engine) -> tuple[datetime, datetime] | None:
    with engine.connect() as conn:
        row = conn.execute(select(func.min(Probe.started_at), func.max(Probe.started_at))).one()
    if row[0] is None:
        return None
    return row[0], row[1]


def outcome_counts(engine: Engine, level: str, months: list[Month]) -> pd.DataFrame:
    """Long table: the level's keys, month, outcome, probes (count)."""
    keys = LEVELS[level]
    columns = {
        "target_id": "p.target_id",
        "department": "t.department",
        "department_name": "t.department_name",
        "procedure": "t.procedure",
        "procedure_name": "t.procedure_name",
    }
    select_keys = "".join(f"{columns[k]} AS {k}, " for k in keys)
    group_keys = "".join(f"{columns[k]}, " for k in keys)
    values = " UNION ALL ".join(
        f"SELECT :m{i} AS month, :s{i} AS m_start, :e{i} AS m_end" for i in range(len(months))
    )
    sql = text(
        f"WITH months AS ({values}) "
        f"SELECT {select_keys}m.month AS month, p.outcome AS outcome, COUNT(*) AS probes "
        "FROM probes p JOIN targets t ON t.id = p.target_id "
        "JOIN months m ON p.started_at >= m.m_start AND p.started_at < m.m_end "
        f"GROUP BY {group_keys}m.month, p.outcome"
    )
    params = []
    for i, m in enumerate(months):
        params += [
            bindparam(f"m{i}", m.label),
            bindparam(f"s{i}", m.start, type_=UTCDateTime()),
            bindparam(f"e{i}", m.end, type_=UTCDateTime()),
        ]
    sql = sql.bindparams(*params)
    with engine.connect() as conn:
        rows = conn.execute(sql).mappings().all()
    return pd.DataFrame(rows, columns=[*keys, "month", "outcome", "probes"])


def monthly_stats(engine: Engine, level: str = "department") -> pd.DataFrame:
    """One row per (level keys, month): counts per outcome, valid probes, the share with
    no way to book and its 95 % interval, and a small-sample flag."""
    keys = LEVELS[level]
    span = probe_time_range(engine)
    base_columns = [
        *keys,
        "month",
        *OUTCOME_COLUMNS,
        "probes",
        "valid",
        "no_way",
        "share_no_way",
        "share_low",
        "share_high",
        "small_sample",
    ]
    if span is None:
        return pd.DataFrame(columns=base_columns)
    long = outcome_counts(engine, level, paris_months(*span))
    if long.empty:
        return pd.DataFrame(columns=base_columns)
    index = [*keys, "month"]
    wide = long.pivot_table(
        index=index, columns="outcome", values="probes", aggfunc="sum", fill_value=0
    )
    wide = wide.reindex(columns=OUTCOME_COLUMNS, fill_value=0).reset_index()
    wide.columns.name = None
    wide["probes"] = wide[OUTCOME_COLUMNS].sum(axis=1)
    wide["valid"] = wide[[o.value for o in VALID_OUTCOMES]].sum(axis=1)
    wide["no_way"] = wide[[o.value for o in NO_WAY_TO_BOOK]].sum(axis=1)
    shares = [
        (nw / v if v else math.nan, *wilson(int(nw), int(v)))
        for nw, v in zip(wide["no_way"], wide["valid"], strict=True)
    ]
    wide["share_no_way"] = [s[0] for s in shares]
    wide["share_low"] = [s[1] for s in shares]
    wide["share_high"] = [s[2] for s in shares]
    wide["small_sample"] = wide["valid"] < SMALL_SAMPLE
    return wide[base_columns].sort_values(index).reset_index(drop=True)


def last_complete_month(now: datetime) -> str:
    local = now.astimezone(PARIS)
    first = date(local.year, local.month, 1)
    year, month = (first.year - 1, 12) if first.month == 1 else (first.year, first.month - 1)
    return f"{year:04d}-{month:02d}"
