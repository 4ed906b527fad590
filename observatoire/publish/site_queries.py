"""What the public pages read from the database beyond the monthly figures (`stats`): the
latest probes with their evidence, the booking pages observed, retired links, the gaps
inside episodes, the robot's own load and the adapter versions.

A private applicant's captures appear in none of these queries (`counted_sql`). Each one
runs a few grouped queries for the whole site, never one query per page.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, bindparam, func, select, text

from observatoire.db.models import Probe
from observatoire.db.types import UTCDateTime
from observatoire.outcomes import TARGET_RETIRED, VALID_OUTCOMES, sql_in
from observatoire.publish.formatting import cadence_fr, platform_fr
from observatoire.record.rollups import counted_sql, paris_months, probe_time_range, spans_cte

#: An episode whose observations are further apart than this is "observations espacées":
#: its duration says when it was seen, not that nobody could book in between.
SPACED_GAP_DAYS = 1.0
GAP_BATCH = 400  # episodes per query (SQLite caps a compound SELECT at 500 terms)


def probe_totals(engine: Engine) -> tuple[datetime | None, int]:
    """The time of the last probe and the number of probes, shown on every page."""
    with engine.connect() as conn:
        last_probe = conn.execute(
            select(func.max(Probe.started_at)).where(text(counted_sql()))
        ).scalar()
        total = conn.execute(text(f"SELECT COUNT(*) FROM probes WHERE {counted_sql()}")).scalar()
    return last_probe, total or 0


def latest_probes(engine: Engine, per_department: int = 3) -> pd.DataFrame:
    """The last probes of each department that left a screenshot or a page."""
    sql = text(
        "SELECT t.department AS department, p.target_id AS target_id, p.started_at AS started_at, "
        "p.outcome AS outcome, p.detail AS detail, p.mode AS mode, p.page_sha256 AS page_sha256, "
        "p.screenshot_sha256 AS screenshot_sha256 FROM probes p JOIN targets t "
        "ON t.id = p.target_id WHERE p.id IN (SELECT MAX(q.id) FROM probes q "
        f"WHERE {counted_sql('q')} GROUP BY q.target_id) ORDER BY p.started_at DESC"
    ).columns(started_at=UTCDateTime())
    with engine.connect() as conn:
        frame = pd.DataFrame(
            conn.execute(sql).mappings().all(),
            columns=[
                "department",
                "target_id",
                "started_at",
                "outcome",
                "detail",
                "mode",
                "page_sha256",
                "screenshot_sha256",
            ],
        )
    return frame.groupby("department").head(per_department) if len(frame) else frame


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
        for target_id, retired_at in conn.execute(last_retired, {"r": TARGET_RETIRED}).all():
            other = conn.execute(last_other, {"t": target_id, "r": TARGET_RETIRED}).scalar_one()
            if other is not None and other > retired_at:
                continue
            since = text(
                "SELECT MIN(started_at) AS first FROM probes WHERE target_id = :t "
                f"AND detail = :r AND {counted_sql()}"
                + ("" if other is None else " AND started_at > :after")
            ).columns(first=UTCDateTime())
            if other is not None:
                since = since.bindparams(bindparam("after", other, type_=UTCDateTime()))
            out[target_id] = conn.execute(since, {"t": target_id, "r": TARGET_RETIRED}).scalar_one()
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


def episode_gaps(engine: Engine, episodes: pd.DataFrame, until: datetime) -> pd.DataFrame:
    """Adds `largest_gap_days` (the longest wait between two consecutive valid probes of
    the episode, its closing probe included) and `spaced` (that gap exceeds a day) to the
    episodes shown. One query per `GAP_BATCH` episodes, bounded by the (target, time) index."""
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


def _gaps(engine: Engine, part: pd.DataFrame, offset: int, until: datetime) -> dict[int, float]:
    """Largest gap in days per episode of `part`, keyed by its position in the whole list."""
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


def transparency(engine: Engine) -> pd.DataFrame:
    """The robot's own load per platform and month: probes and requests sent."""
    span = probe_time_range(engine)
    if span is None:
        return pd.DataFrame(columns=["platform", "month", "probes", "requests", "most"])
    months = paris_months(*span)
    cte, params = spans_cte("m", months)
    sql = text(
        f"WITH {cte} SELECT t.platform AS platform, m.label AS month, COUNT(*) AS probes, "
        "SUM(p.requests_made) AS requests, MAX(p.requests_made) AS most FROM m "
        "JOIN probes p ON p.started_at >= m.s AND p.started_at < m.e "
        f"JOIN targets t ON t.id = p.target_id WHERE {counted_sql('p')} "
        "GROUP BY t.platform, m.label "
        "ORDER BY m.label DESC, t.platform"
    ).bindparams(*params)
    with engine.connect() as conn:
        data = conn.execute(sql).mappings().all()
    return pd.DataFrame(data, columns=["platform", "month", "probes", "requests", "most"])


def adapter_versions(engine: Engine) -> list[dict[str, object]]:
    """Each adapter version with its number of probes and first and last use."""
    sql = text(
        "SELECT adapter, adapter_version, COUNT(*) AS probes, MIN(started_at) AS first, "
        f"MAX(started_at) AS last FROM probes WHERE {counted_sql()} "
        "GROUP BY adapter, adapter_version "
        "ORDER BY adapter, adapter_version"
    ).columns(first=UTCDateTime(), last=UTCDateTime())
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sql).mappings().all()]
