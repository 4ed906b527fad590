"""Pre-aggregated tables, kept up to date with every probe, so that statistics read
thousands of rows instead of millions (Uptime Kuma's lesson: pages stay fast as raw rows
grow). `rebuild()` recomputes them from `probes` (after a bulk import, or to check them).

- `probe_days`: outcome counts per target and Europe/Paris day;
- `probe_leads`: valid probes per target, month, La Cimade class and lead time (days);
- `episodes`: runs of valid probes that found no way to book, state transitions as data.
Probes are assumed to arrive in time order per target (one robot per target); `rebuild`
repairs anything else.

Both ways fold in the same probes (`in_rollups_sql` says which): neither follow-up
probes (extra looks, kept out so regular figures stay unbiased), nor the captures of an
applicant who has not opted in, nor a capture waiting for a person's review or rejected
by one. Live saving decides the same in `store.save_probe` and in the capture reception,
and a capture's review moves its probe in (`admit_probe`) or out (`withdraw_probe`), so
a rebuild gives exactly the rollups kept live.

The rebuild SQL lives here, with the Paris-calendar spans it joins on; `stats` reads the
rollups and imports these pieces from here (this module stays free of pandas: the robot
imports it to store every probe).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any

from sqlalchemy import Engine, Select, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from observatoire.clock import paris_date, paris_day_bounds, paris_month, paris_month_bounds
from observatoire.db.models import CaptureRow, Episode, Probe, ProbeDay, ProbeLead
from observatoire.db.types import UTCDateTime
from observatoire.outcomes import (
    NO_DATE_DAYS,
    NO_WAY_TO_BOOK,
    VALID_OUTCOMES,
    Outcome,
    cimade_case_sql,
    cimade_class,
    cimade_where_sql,
    sql_list,
    values,
)

COUNT_COLUMNS = values(Outcome)
#: Kept for the callers that named it here: the lead of a probe without a date.
NO_DATE = NO_DATE_DAYS


# -- Paris-calendar spans, joined in SQL ------------------------------------------------
@dataclass(frozen=True)
class Span:
    label: str  # "2026-03" or "2026-03-29"
    start: datetime  # UTC
    end: datetime  # UTC, exclusive


def paris_months(first: datetime, last: datetime) -> list[Span]:
    """Every Europe/Paris calendar month touching [first, last]."""
    day = paris_date(first)
    year, month = day.year, day.month
    end_label = paris_month(last)
    months: list[Span] = []
    while True:
        label = f"{year:04d}-{month:02d}"
        months.append(Span(label, *paris_month_bounds(year, month)))
        if label >= end_label:
            return months
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def paris_days(first: datetime, last: datetime) -> list[Span]:
    """Every Europe/Paris day touching [first, last] (23 or 25 hours at DST changes)."""
    day: date = paris_date(first)
    end_day = paris_date(last)
    days = []
    while day <= end_day:
        days.append(Span(day.isoformat(), *paris_day_bounds(day)))
        day += timedelta(days=1)
    return days


def probe_time_range(engine: Engine) -> tuple[datetime, datetime] | None:
    """First and last start of the probes that count (`counted_sql`): the span of the
    published figures (their last day, the months shown, the probes expected), which a
    private capture or one held back by its review must not stretch."""
    with engine.connect() as conn:
        row = conn.execute(
            select(func.min(Probe.started_at), func.max(Probe.started_at)).where(
                text(counted_sql("probes"))
            )
        ).one()
    if row[0] is None:
        return None
    return row[0], row[1]


def spans_cte(name: str, spans: list[Span]) -> tuple[str, list[BindParameter[object]]]:
    """A CTE `name(label, s, e)` of these spans, and its bound parameters."""
    rows = " UNION ALL ".join(
        f"SELECT :{name}l{i} AS label, :{name}s{i} AS s, :{name}e{i} AS e"
        for i in range(len(spans))
    )
    params: list[BindParameter[object]] = []
    for i, span in enumerate(spans):
        params += [
            bindparam(f"{name}l{i}", span.label),
            bindparam(f"{name}s{i}", span.start, type_=UTCDateTime()),
            bindparam(f"{name}e{i}", span.end, type_=UTCDateTime()),
        ]
    return f"{name} AS ({rows})", params


def days_between(engine: Engine, later: str, earlier: str) -> str:
    """Days from `earlier` to `later` (SQL expressions), as a fraction, in this dialect."""
    if engine.dialect.name == "sqlite":
        return f"(julianday({later}) - julianday({earlier}))"
    return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400.0)"


# -- which probes count ----------------------------------------------------------------
#: Review states of a capture whose probe stays out of every figure: a doubtful reading
#: (OCR unsure, the browser's clock off, contradicted by the robot) must not pass for a
#: "no slot" while it waits, nor ever once a person rejected it (the evidence stays).
HELD_BACK = ("pending", "rejected")


def counted_sql(alias: str = "") -> str:
    """The probes that may enter the figures and any public file: all but the captures
    of an applicant who has not opted in (issue 21: those serve only their own dossier)
    and the captures held back by their review (`HELD_BACK`).

    Without `alias` the query must read `probes` under its own name (the capture test
    names `probes.id`). The capture test is uncorrelated (one set of ids, hashed or
    indexed once) and the robot's probes, without a contributor, skip both tests."""
    column = f"{alias}.contributor_id" if alias else "contributor_id"
    probe_id = f"{alias}.id" if alias else "probes.id"
    held = ", ".join(f"'{state}'" for state in HELD_BACK)
    return (
        f"({column} IS NULL OR ({column} IN (SELECT id FROM contributors "
        "WHERE role = 'volunteer' OR opted_in) "
        f"AND {probe_id} NOT IN (SELECT probe_id FROM captures "
        f"WHERE probe_id IS NOT NULL AND review IN ({held}))))"
    )


def held_back_probes() -> Select[int | None]:
    """The ids of the probes whose capture its review holds back (`HELD_BACK`), for
    ORM queries: `Probe.id.not_in(held_back_probes())` (counted_sql's capture test)."""
    return select(CaptureRow.probe_id).where(
        CaptureRow.probe_id.is_not(None), CaptureRow.review.in_(HELD_BACK)
    )


def in_rollups_sql(alias: str = "") -> str:
    """The probes the rollups fold in: counted ones, follow-ups excepted (the same rule
    as `store.save_probe`, which skips `record_probe` for a follow-up)."""
    followup = f"{alias}.followup" if alias else "followup"
    return f"{counted_sql(alias)} AND NOT {followup}"


# -- the rebuild's SQL ------------------------------------------------------------------
def daily_counts_sql(chunk: list[Span]) -> tuple[str, list[BindParameter[object]]]:
    """SELECT target_id, day, <outcome counts>, assisted over raw probes, for these days."""
    cte, params = spans_cte("d", chunk)
    sums = (
        ", ".join(
            f"SUM(CASE WHEN p.outcome = '{o}' THEN 1 ELSE 0 END) AS {o}" for o in COUNT_COLUMNS
        )
        + ", SUM(CASE WHEN p.mode = 'assisted' THEN 1 ELSE 0 END) AS assisted"
        + ", SUM(CASE WHEN p.mode = 'manual' THEN 1 ELSE 0 END) AS manual"
    )
    return (
        f"WITH {cte} SELECT p.target_id AS target_id, d.label AS day, {sums} "
        "FROM d JOIN probes p ON p.started_at >= d.s AND p.started_at < d.e "
        f"WHERE {in_rollups_sql('p')} "
        "GROUP BY d.label, p.target_id",
        params,
    )


def lead_histogram_sql(
    engine: Engine, months: list[Span]
) -> tuple[str, list[BindParameter[object]]]:
    """Per target, month, La Cimade class and whole days to the first slot: probes."""
    cte, params = spans_cte("m", months)
    first = days_between(engine, "p.first_slot_at", "p.started_at")
    second = days_between(engine, "p.second_slot_at", "p.started_at")
    case = cimade_case_sql(
        "p.outcome", {"first": ("p.first_slot_at", first), "second": ("p.second_slot_at", second)}
    )
    sql = (
        f"WITH {cte}, c AS (SELECT p.target_id AS target_id, m.label AS month, "
        f"{case} AS cimade, "
        f"CASE WHEN p.first_slot_at IS NULL THEN NULL ELSE CAST(FLOOR({first}) AS INTEGER) END "
        "AS lead_days FROM m JOIN probes p ON p.started_at >= m.s AND p.started_at < m.e "
        f"WHERE {in_rollups_sql('p')} AND {cimade_where_sql('p.outcome', 'p.first_slot_at')}) "
        "SELECT target_id, month, cimade, lead_days, COUNT(*) AS probes FROM c "
        "GROUP BY target_id, month, cimade, lead_days"
    )
    return sql, params


_VALID = sql_list(VALID_OUTCOMES)
_OPENED = sql_list(VALID_OUTCOMES - NO_WAY_TO_BOOK)


#: From the valid probes `v` (target, time, whether it found a way to book): the runs
#: without one, each ended by the next probe that found one.
_EPISODE_RUNS = (
    "g AS (SELECT target_id, started_at, opened, SUM(opened) OVER (PARTITION BY target_id "
    "ORDER BY started_at ROWS UNBOUNDED PRECEDING) AS run FROM v), "
    "closed AS (SELECT target_id, run, MIN(started_at) AS start, MAX(started_at) AS last, "
    "COUNT(*) AS probes FROM g WHERE opened = 0 GROUP BY target_id, run), "
    "reopen AS (SELECT target_id, run, started_at AS reopened FROM g WHERE opened = 1) "
    "SELECT c.target_id AS target_id, c.start AS start, c.last AS last, "
    "r.reopened AS end_at, c.probes AS probes FROM closed c LEFT JOIN reopen r "
    "ON r.target_id = c.target_id AND r.run = c.run + 1"
)


def episodes_sql(one_target: bool = False) -> str:
    """Runs of valid probes finding no way to book, per target, from raw probes; with
    `one_target`, those of the target bound as `:target` only."""
    only = " AND target_id = :target" if one_target else ""
    return (
        f"WITH v AS (SELECT target_id, started_at, CASE WHEN outcome IN ({_OPENED}) THEN 1 "
        f"ELSE 0 END AS opened FROM probes WHERE outcome IN ({_VALID}) AND {in_rollups_sql()}"
        f"{only}), {_EPISODE_RUNS}"
    )


#: Runs of valid probes finding no way to book, per target, from raw probes.
EPISODES_SQL = episodes_sql()
_INSERT_EPISODES = (
    "INSERT INTO episodes (target_id, start_at, last_at, end_at, probes) "
    "SELECT target_id, start, last, end_at, probes FROM ({}) AS e"
)


# -- live folding ------------------------------------------------------------------------
def _insert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _day_values(outcome: Outcome, mode: str) -> dict[str, int]:
    """One probe's share of its `probe_days` row."""
    values = {c: 0 for c in COUNT_COLUMNS}
    values[outcome.value] = 1
    values["assisted"] = 1 if mode == "assisted" else 0
    values["manual"] = 1 if mode == "manual" else 0
    return values


def record_probe(
    session: Session,
    target_id: str,
    started: datetime,
    outcome: Outcome,
    first: datetime | None,
    second: datetime | None,
    mode: str,
) -> None:
    """Fold one probe into the rollups, inside the caller's transaction."""
    _count_probe(session, target_id, started, outcome, first, second, mode)
    if outcome in VALID_OUTCOMES:
        current = session.scalars(
            select(Episode)
            .where(Episode.target_id == target_id, Episode.end_at.is_(None))
            .order_by(Episode.start_at.desc())
            .limit(1)
        ).first()
        if outcome in NO_WAY_TO_BOOK:
            if current is None:
                session.add(
                    Episode(
                        target_id=target_id,
                        start_at=started,
                        last_at=started,
                        end_at=None,
                        probes=1,
                    )
                )
            else:
                current.last_at = max(current.last_at, started)
                current.probes += 1
        elif current is not None:
            current.end_at = started


def _count_probe(
    session: Session,
    target_id: str,
    started: datetime,
    outcome: Outcome,
    first: datetime | None,
    second: datetime | None,
    mode: str,
) -> None:
    """Add one probe to its `probe_days` row and its `probe_leads` bucket (both sums:
    the order probes arrive in does not matter)."""
    make = _insert(session)
    day = paris_date(started).isoformat()
    values = _day_values(outcome, mode)
    table = ProbeDay.__table__
    stmt = make(table).values(target_id=target_id, day=day, **values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["target_id", "day"],
            set_={c: table.c[c] + stmt.excluded[c] for c in [*COUNT_COLUMNS, "assisted", "manual"]},
        )
    )
    classified = cimade_class(outcome, started, first, second)
    if classified is not None:
        leads = ProbeLead.__table__
        stmt = make(leads).values(
            target_id=target_id,
            month=day[:7],
            cimade=classified[0],
            lead_days=classified[1],
            probes=1,
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["target_id", "month", "cimade", "lead_days"],
                set_={"probes": leads.c.probes + 1},
            )
        )


def admit_probe(session: Session, probe: Probe) -> None:
    """Fold a probe stored earlier into the rollups, now that it counts (a capture a
    reviewer accepted). Its time may lie before the target's latest probes, so the
    target's episodes are recomputed from its probes instead of extended: the caller
    has already flushed the change that makes the probe count."""
    _count_probe(
        session,
        probe.target_id,
        probe.started_at,
        Outcome(probe.outcome),
        probe.first_slot_at,
        probe.second_slot_at,
        probe.mode,
    )
    redo_episodes(session, probe.target_id)


def withdraw_probe(session: Session, probe: Probe) -> None:
    """Take a folded probe back out of the rollups, now that it no longer counts (a
    capture a later robot probe contradicts waits for review again). A day or a lead
    bucket left empty disappears, as a rebuild would not write it; the target's
    episodes are recomputed. The caller has already flushed the change that takes the
    probe out of `in_rollups_sql`."""
    outcome = Outcome(probe.outcome)
    day = paris_date(probe.started_at).isoformat()
    values = _day_values(outcome, probe.mode)
    here = (ProbeDay.target_id == probe.target_id) & (ProbeDay.day == day)
    column: dict[str, Any] = {c: getattr(ProbeDay, c) for c in values}
    session.execute(
        update(ProbeDay)
        .where(here)
        .values({column[c]: column[c] - n for c, n in values.items() if n})
    )
    left = reduce(operator.add, (column[c] for c in COUNT_COLUMNS))
    session.execute(delete(ProbeDay).where(here, left <= 0))
    classified = cimade_class(outcome, probe.started_at, probe.first_slot_at, probe.second_slot_at)
    if classified is not None:
        bucket = (
            (ProbeLead.target_id == probe.target_id)
            & (ProbeLead.month == day[:7])
            & (ProbeLead.cimade == classified[0])
            & (ProbeLead.lead_days == classified[1])
        )
        session.execute(update(ProbeLead).where(bucket).values(probes=ProbeLead.probes - 1))
        session.execute(delete(ProbeLead).where(bucket, ProbeLead.probes <= 0))
    redo_episodes(session, probe.target_id)


def redo_episodes(session: Session, target_id: str) -> None:
    """Recompute one target's episodes from its probes (what `rebuild` does for all),
    inside the caller's transaction."""
    session.flush()
    session.execute(delete(Episode).where(Episode.target_id == target_id))
    session.execute(
        text(_INSERT_EPISODES.format(episodes_sql(one_target=True))), {"target": target_id}
    )


def rebuild(engine: Engine) -> dict[str, int]:
    """Recompute every rollup from `probes`, inside the database (INSERT … SELECT): no
    probe row passes through Python."""
    span = probe_time_range(engine)
    with engine.begin() as conn:
        for model in (ProbeDay, ProbeLead, Episode):
            conn.execute(delete(model))
        if span is not None:
            counts = ", ".join([*COUNT_COLUMNS, "assisted", "manual"])
            days = paris_days(*span)
            for start in range(0, len(days), 366):
                sql, params = daily_counts_sql(days[start : start + 366])
                conn.execute(
                    text(f"INSERT INTO probe_days (target_id, day, {counts}) {sql}").bindparams(
                        *params
                    )
                )
            sql, params = lead_histogram_sql(engine, paris_months(*span))
            conn.execute(
                text(
                    "INSERT INTO probe_leads (target_id, month, cimade, lead_days, probes) "
                    f"SELECT target_id, month, cimade, COALESCE(lead_days, {NO_DATE}), probes "
                    f"FROM ({sql}) AS h"
                ).bindparams(*params)
            )
            conn.execute(text(_INSERT_EPISODES.format(EPISODES_SQL)))
    with engine.connect() as conn:
        return {
            name: conn.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
            for name in ("probe_days", "probe_leads", "episodes")
        }
