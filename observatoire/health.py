"""Health of the robot, for `observatoire status` and monitoring: what needs a human."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd
from rich.table import Table
from sqlalchemy import Engine, text

from observatoire.captures.review import pending_count
from observatoire.config import Target
from observatoire.db.types import UTCDateTime
from observatoire.outcomes import RETRYABLE, TARGET_RETIRED, Outcome, values
from observatoire.publish.formatting import paris_time
from observatoire.robot.sweep import split_probeable

#: An adapter's error+unrecognized share over 24 h above this, and this much above its
#: share over the 7 days before, means the site probably changed.
JUMP_SHARE = 0.5
JUMP_DELTA = 0.3
#: A target whose last N probes all say the same bad thing needs a human: N by default.
LAST_N = 5
#: Version of the `status --json` document (docs/operator.md, "`status --json`"). Alert
#: scripts and monitors parse it: adding a field keeps the version, renaming, removing
#: or changing the meaning of one bumps it.
STATUS_SCHEMA = "observatoire.status"
STATUS_SCHEMA_VERSION = 1
#: The kinds of finding, stable names for scripts (the messages are for people).
KINDS = (
    "not_probed",
    "retired",
    Outcome.UNRECOGNIZED.value,
    Outcome.BLOCKED.value,
    "adapter_jump",
)


@dataclass(frozen=True)
class Finding:
    """One thing that needs a human: a stable `kind` for scripts, the target or adapter
    it concerns, and the sentence `status` prints."""

    kind: str
    message: str
    target: str | None = None
    adapter: str | None = None

    @property
    def line(self) -> str:
        """What `status` prints: "target: message" (an adapter's message names it)."""
        return f"{self.target}: {self.message}" if self.target else self.message


@dataclass
class HealthReport:
    rows: list[dict[str, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    checked_at: datetime | None = None
    last_n: int = LAST_N
    #: UTC instants of each row's last probe, for the JSON document.
    last_at: dict[str, datetime] = field(default_factory=dict)
    #: People's captures waiting for review (`captures review`): out of every figure
    #: until a person decides. Shown, not a finding: the queue waits for the reviewers'
    #: next round, it does not make the robot unhealthy.
    captures_pending: int = 0

    @property
    def notes(self) -> list[str]:
        """Lines `status` prints for the operator beside the table (no exit code)."""
        if not self.captures_pending:
            return []
        return [
            f"{self.captures_pending} capture(s) waiting for review, out of the figures "
            "until accepted: observatoire captures review"
        ]

    @property
    def flags(self) -> list[str]:
        """The findings as the lines `status` prints (and `flags` in its JSON)."""
        return [f.line for f in self.findings]

    def table(self) -> Table:
        """The per-target table `status` prints for a person at a terminal."""
        table = Table("target", "last probe (Paris)", "outcome", "24 h mix", "flag")
        for row in self.rows:
            table.add_row(row["target"], row["last"], row["outcome"], row["mix"], row["flag"])
        return table

    def as_dict(self) -> dict[str, object]:
        """The `status --json` document, schema STATUS_SCHEMA_VERSION (documented in
        docs/operator.md): alerting reads `ok` and `findings[].kind`."""
        return {
            "schema": STATUS_SCHEMA,
            "schema_version": STATUS_SCHEMA_VERSION,
            "checked_at": _iso(self.checked_at),
            "ok": not self.findings,
            "last_n": self.last_n,
            "flags": self.flags,
            "findings": [
                {"kind": f.kind, "target": f.target, "adapter": f.adapter, "message": f.message}
                for f in self.findings
            ],
            "targets": [
                {**row, "last_at": _iso(self.last_at.get(row["target"]))} for row in self.rows
            ],
            "captures_pending": self.captures_pending,
        }


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z") if when else None


def last_probes(engine: Engine, n: int) -> dict[str, list[tuple[str, str]]]:
    """Per target, the (outcome, detail) of its last `n` probes, newest first: one
    window-function query, whatever the number of probes."""
    sql = text(
        "SELECT target_id, outcome, detail FROM (SELECT target_id, outcome, detail, "
        "ROW_NUMBER() OVER (PARTITION BY target_id ORDER BY started_at DESC, id DESC) AS r "
        "FROM probes) AS ranked WHERE r <= :n ORDER BY target_id, r"
    )
    found: dict[str, list[tuple[str, str]]] = {}
    with engine.connect() as conn:
        for row in conn.execute(sql, {"n": n}):
            found.setdefault(row.target_id, []).append((row.outcome, row.detail or ""))
    return found


def streak_finding(last: list[tuple[str, str]], n: int, adapter: str) -> tuple[str, str] | None:
    """(kind, message) when a target's last `n` probes (newest first) need a human, or
    None. Each message says what the operator should do about it.

    A retired link is permanent (never retried): the newest probe alone is a verdict.
    Other streaks need `n` probes alike (fewer probes: no verdict yet)."""
    retired = [outcome == Outcome.ERROR and detail == TARGET_RETIRED for outcome, detail in last]
    advice = "a finding: note it, then disable the target or find its new page"
    if len(last) >= n and all(retired):
        return "retired", f"last {n} probes: link retired ({TARGET_RETIRED}); {advice}"
    if retired[:1] == [True]:
        return "retired", f"last probe: link retired ({TARGET_RETIRED}); {advice}"
    if len(last) < n:
        return None
    if all(outcome == Outcome.UNRECOGNIZED for outcome, _ in last):
        return Outcome.UNRECOGNIZED.value, (
            f"last {n} probes all unrecognized: the page probably changed; see "
            f"`observatoire unrecognized --adapter {adapter}`"
        )
    if all(outcome == Outcome.BLOCKED for outcome, _ in last):
        return Outcome.BLOCKED.value, (
            f"last {n} probes all blocked: captcha, firewall or rate limit; check politeness"
        )
    return None


def streak_flag(last: list[tuple[str, str]], n: int, adapter: str) -> str:
    """The message of streak_finding, or ""."""
    found = streak_finding(last, n, adapter)
    return found[1] if found else ""


def check_health(
    engine: Engine, targets: list[Target], now: datetime, last_n: int = LAST_N
) -> HealthReport:
    """Per target, the last probe and the last 24 h; flags what needs a human: a target
    not probed for 3 cadences, an enabled target whose last `last_n` probes are all
    unrecognized, all retired links or all blocked, and an adapter whose error and
    unrecognized share jumped. Counts the captures waiting for review."""
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
    streaks = last_probes(engine, last_n)
    report = HealthReport(checked_at=now, last_n=last_n, captures_pending=pending_count(engine))
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
        found: list[Finding] = []
        if t in probeable:
            limit = timedelta(minutes=3 * t.interval_minutes)
            if seen is None or now - seen["started_at"] > limit:
                found.append(Finding("not_probed", "not probed for 3 cadences", t.id, t.platform))
        if t.enabled:  # captcha-first targets too: their volunteers' probes count
            streak = streak_finding(streaks.get(t.id, []), last_n, t.platform)
            if streak:
                found.append(Finding(streak[0], streak[1], t.id, t.platform))
        report.findings.extend(found)
        if seen is not None:
            report.last_at[t.id] = seen["started_at"]
        flag = "; ".join(f.message for f in found)
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
        bad = recent["outcome"].isin(values(RETRYABLE))
        recent = recent.assign(bad=bad, last_day=recent["started_at"] >= now - timedelta(days=1))
        for adapter, part in recent.groupby("adapter"):
            today = part[part["last_day"]]
            before = part[~part["last_day"]]
            if len(today) < 5:
                continue
            share = today["bad"].mean()
            baseline = before["bad"].mean() if len(before) else 0.0
            if share > JUMP_SHARE and share - baseline > JUMP_DELTA:
                report.findings.append(
                    Finding(
                        "adapter_jump",
                        f"adapter {adapter}: {share:.0%} error/unrecognized in 24 h (was "
                        f"{baseline:.0%}): the site probably changed; check with `classify`",
                        adapter=str(adapter),
                    )
                )
    return report
