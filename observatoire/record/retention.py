"""Evidence retention: every probe's page and screenshot are kept for a window
(OBSERVATOIRE_EVIDENCE_RETENTION_DAYS, 90 by default); beyond it, only what a dossier
or an audit needs stays: state changes, anomalies (`unrecognized`, `blocked`) and the
first probe of each target on each Paris day. Storage stays bounded while a lawyer can
still show, day by day, that the platform offered nothing.

Rows are never deleted: a pruned probe keeps its outcome and times, and its evidence
columns become empty *before* the files go, so no row ever points at a missing file.
Files are content-addressed and may be shared by several probes: a file is deleted only
when no kept probe refers to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from observatoire.clock import paris_date
from observatoire.db.models import Probe
from observatoire.outcomes import ANOMALIES
from observatoire.record.evidence import EvidenceStore

BATCH = 5000


@dataclass
class PruneReport:
    examined: int = 0
    kept_old: int = 0
    pruned_probes: int = 0
    files_deleted: int = 0
    bytes_freed: int = 0


def prune_evidence(
    engine: Engine, store: EvidenceStore, now: datetime, days: int, *, dry_run: bool = False
) -> PruneReport:
    report = PruneReport()
    cutoff = now - timedelta(days=days)
    kept: set[str] = set()
    dropped: dict[int, tuple[str | None, str | None]] = {}
    previous: dict[str, str] = {}
    first_of_day: set[tuple[str, str]] = set()
    stmt = select(
        Probe.id,
        Probe.target_id,
        Probe.started_at,
        Probe.outcome,
        Probe.page_sha256,
        Probe.screenshot_sha256,
    ).order_by(Probe.target_id, Probe.started_at, Probe.id)
    with engine.connect() as conn:
        for pid, target, started, outcome, page, shot in conn.execution_options(
            yield_per=BATCH
        ).execute(stmt):
            report.examined += 1
            changed = previous.get(target) != outcome
            previous[target] = outcome
            day = (target, paris_date(started).isoformat())
            first = day not in first_of_day
            first_of_day.add(day)
            hashes = [h for h in (page, shot) if h]
            if started >= cutoff or outcome in ANOMALIES or changed or first:
                kept.update(hashes)
                if started < cutoff:
                    report.kept_old += 1
            elif hashes:
                dropped[pid] = (page, shot)
    report.pruned_probes = len(dropped)
    doomed = {h for pair in dropped.values() for h in pair if h} - kept
    if dry_run:
        report.files_deleted = len(doomed)
        return report
    ids = list(dropped)
    for start in range(0, len(ids), BATCH):
        with engine.begin() as conn:
            conn.execute(
                update(Probe)
                .where(Probe.id.in_(ids[start : start + BATCH]))
                .values(page_sha256=None, screenshot_sha256=None)
            )
    for digest in doomed:
        for kind in ("html", "png"):
            path = store.path_for(digest, kind)
            if path.exists():
                report.bytes_freed += path.stat().st_size
                path.unlink()
                report.files_deleted += 1
    return report
