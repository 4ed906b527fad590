"""Health of the robot, for `observatoire status` and monitoring: what needs a human."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Engine, text

from observatoire.config import Target
from observatoire.db.types import UTCDateTime
from observatoire.site import paris_time
from observatoire.sweep import split_probeable

#: An adapter's error+unrecognized share over 24 h above this, and this much above its
#: share over the 7 days before, means the site probably changed.
JUMP_SHARE = 0.5
JUMP_DELTA = 0.3


@dataclass
class HealthReport:
    rows: list[dict[str, str]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"ok": not self.flags, "flags": self.flags, "targets": self.rows}


def check_health(engine: Engine, targets: list[Target], now: datetime) -> HealthReport:
    since = now - timedelta(days=8)
    sql = (
        text(
            "SELECT target_id, adapter, outcome, started_at FROM probes WHERE started_at >= :since"
        )
        .bindparams(since=UTCDateTime().process_bind_param(since, engine.dialect))
        .columns(started_at=UTCDateTime())
    )
    last_sql = text(
        "SELECT p.target_id AS target_id, p.started_at AS started_at, p.outcome AS outcome "
        "FROM probes p JOIN (SELECT target_id, MAX(started_at) AS m FROM probes "
        "GROUP BY target_id) l ON l.target_id = p.target_id AND l.m = p.started_at"
    ).columns(started_at=UTCDateTime())
    with engine.connect() as conn:
        recent = pd.DataFrame(
            conn.execute(sql).mappings().all(),
            columns=["target_id", "adapter", "outcome", "started_at"],
        )
        last = {r["target_id"]: r for r in conn.execute(last_sql).mappings().all()}
    report = HealthReport()
    probeable, _ = split_probeable(targets)
    day = recent[recent["started_at"] >= now - timedelta(days=1)] if len(recent) else recent
    for t in targets:
        mine = day[day["target_id"] == t.id] if len(day) else day
        mix = (
            ", ".join(f"{k}={v}" for k, v in sorted(mine["outcome"].value_counts().items()))
            if len(mine)
            else "—"
        )
        seen = last.get(t.id)
        flag = ""
        if t in probeable:
            limit = timedelta(minutes=3 * t.interval_minutes)
            if seen is None or now - seen["started_at"] > limit:
                flag = "not probed for 3 cadences"
                report.flags.append(f"{t.id}: {flag}")
        report.rows.append(
            {
                "target": t.id,
                "last": paris_time(seen["started_at"]) if seen else "never",
                "outcome": seen["outcome"] if seen else "—",
                "mix": mix,
                "flag": flag,
            }
        )
    if len(recent):
        bad = recent["outcome"].isin(["error", "unrecognized"])
        recent = recent.assign(bad=bad, last_day=recent["started_at"] >= now - timedelta(days=1))
        for adapter, part in recent.groupby("adapter"):
            today = part[part["last_day"]]
            before = part[~part["last_day"]]
            if len(today) < 5:
                continue
            share = today["bad"].mean()
            baseline = before["bad"].mean() if len(before) else 0.0
            if share > JUMP_SHARE and share - baseline > JUMP_DELTA:
                report.flags.append(
                    f"adapter {adapter}: {share:.0%} error/unrecognized in 24 h (was "
                    f"{baseline:.0%}): the site probably changed; check with `classify`"
                )
    return report
