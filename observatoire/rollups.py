"""Pre-aggregated tables, kept up to date with every probe, so that statistics read
thousands of rows instead of millions (Uptime Kuma's lesson: pages stay fast as raw rows
grow). `rebuild()` recomputes them from `probes` (after a bulk import, or to check them).

- `probe_days`: outcome counts per target and Europe/Paris day;
- `probe_leads`: valid probes per target, month, La Cimade class and lead time (days);
- `episodes`: runs of valid probes that found no way to book, state transitions as data.
Probes are assumed to arrive in time order per target (one robot per target); `rebuild`
repairs anything else.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from observatoire.clock import PARIS
from observatoire.db.models import Episode, ProbeDay, ProbeLead
from observatoire.outcomes import NO_WAY_TO_BOOK, VALID_OUTCOMES, Outcome

COUNT_COLUMNS = [o.value for o in Outcome]
NO_DATE = -1


def cimade_class(
    outcome: Outcome, started: datetime, first: datetime | None, second: datetime | None
) -> tuple[str, int] | None:
    """La Cimade's class and whole days to the first slot (-1: no date), or None when
    the probe does not belong in the classes (not valid, or no date observable)."""
    if outcome in NO_WAY_TO_BOOK:
        return ("no_date", NO_DATE)
    if outcome is not Outcome.AVAILABLE or first is None:
        return None
    lead = (first - started).total_seconds() / 86400
    if second is not None and (second - started).total_seconds() / 86400 <= 30:
        label = "two_dates_within_month"
    elif lead <= 30:
        label = "one_date_within_month"
    elif lead <= 60:
        label = "first_date_1_to_2_months"
    else:
        label = "first_date_beyond_2_months"
    return (label, int(lead // 1))


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


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
    make = _insert(session)
    day = started.astimezone(PARIS).strftime("%Y-%m-%d")
    values = {c: 0 for c in COUNT_COLUMNS}
    values[outcome.value] = 1
    values["assisted"] = 1 if mode == "assisted" else 0
    values["manual"] = 1 if mode == "manual" else 0
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


def rebuild(engine: Engine) -> dict[str, int]:
    """Recompute every rollup from `probes`, inside the database (INSERT … SELECT): no
    probe row passes through Python."""
    from observatoire import stats

    span = stats.probe_time_range(engine)
    with engine.begin() as conn:
        for model in (ProbeDay, ProbeLead, Episode):
            conn.execute(delete(model))
        if span is not None:
            counts = ", ".join([*COUNT_COLUMNS, "assisted", "manual"])
            days = stats.paris_days(*span)
            for start in range(0, len(days), 366):
                sql, params = stats.daily_counts_sql(days[start : start + 366])
                conn.execute(
                    text(f"INSERT INTO probe_days (target_id, day, {counts}) {sql}").bindparams(
                        *params
                    )
                )
            sql, params = stats.lead_histogram_sql(engine, stats.paris_months(*span))
            conn.execute(
                text(
                    "INSERT INTO probe_leads (target_id, month, cimade, lead_days, probes) "
                    f"SELECT target_id, month, cimade, COALESCE(lead_days, {NO_DATE}), probes "
                    f"FROM ({sql}) AS h"
                ).bindparams(*params)
            )
            conn.execute(
                text(
                    "INSERT INTO episodes (target_id, start_at, last_at, end_at, probes) "
                    "SELECT target_id, start, last, end_at, probes "
                    f"FROM ({stats.EPISODES_SQL}) AS e"
                )
            )
    with engine.connect() as conn:
        return {
            name: conn.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
            for name in ("probe_days", "probe_leads", "episodes")
        }
