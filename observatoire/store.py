"""Writing targets and probes. One transaction per probe: a crash loses at most the
probe in flight, never a completed one, and never leaves half a row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from observatoire import __version__
from observatoire.config import Target
from observatoire.db.models import Probe, TargetRow
from observatoire.evidence import EvidenceStore
from observatoire.outcomes import ProbeResult
from observatoire.rollups import record_probe


def sync_targets(engine: Engine, targets: Iterable[Target], now: datetime) -> None:
    """Insert or update the configured targets. Targets no longer configured keep
    their rows (and history); only their `enabled` flag changes when listed.

    Several processes may start together on one database (shards, an `assist` beside
    the daemon): when another one inserted the same target first, we try again and
    find its row."""
    targets = list(targets)
    for attempt in range(3):
        try:
            _sync_targets(engine, targets, now)
            return
        except IntegrityError:
            if attempt == 2:
                raise


def _sync_targets(engine: Engine, targets: list[Target], now: datetime) -> None:
    with Session(engine) as session, session.begin():
        existing = {row.id: row for row in session.scalars(select(TargetRow))}
        for t in targets:
            row = existing.get(t.id)
            values = dict(
                department=t.department,
                department_name=t.department_name,
                prefecture=t.prefecture,
                procedure=t.procedure,
                procedure_name=t.procedure_name,
                label=t.label,
                platform=t.platform,
                url=t.url,
                site=t.site,
                options=t.options,
                interval_minutes=t.interval_minutes,
                enabled=t.enabled,
                config_hash=t.config_hash,
            )
            if row is None:
                session.add(TargetRow(id=t.id, created_at=now, updated_at=now, **values))
            elif any(getattr(row, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(row, k, v)
                row.updated_at = now


@dataclass(frozen=True)
class ProbeRecord:
    target_id: str
    scheduled_at: datetime | None
    started_at: datetime
    finished_at: datetime
    result: ProbeResult
    requests_made: int
    attempts: int
    duration_ms: int
    adapter: str
    adapter_version: str
    mode: str = "auto"
    #: Assisted probes only: the volunteer's pseudonym.
    volunteer: str | None = None


def save_probe(engine: Engine, evidence: EvidenceStore, record: ProbeRecord) -> int:
    """Evidence to disk first, then the row: no row ever points at a missing file."""
    result = record.result
    page_sha = evidence.put(result.page, "html") if result.page else None
    shot_sha = evidence.put(result.screenshot, "png") if result.screenshot else None
    row = Probe(
        target_id=record.target_id,
        scheduled_at=record.scheduled_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        outcome=result.outcome.value,
        detail=result.detail[:200],
        first_slot_at=result.first_slot_at,
        second_slot_at=result.second_slot_at,
        slots_count=result.slots_count,
        http_status=result.http_status,
        requests_made=record.requests_made,
        attempts=record.attempts,
        duration_ms=record.duration_ms,
        adapter=record.adapter,
        adapter_version=record.adapter_version,
        robot_version=__version__,
        mode=record.mode,
        volunteer=record.volunteer,
        final_url=result.final_url,
        page_sha256=page_sha,
        screenshot_sha256=shot_sha,
        platform_message=result.platform_message,
        release_last_at=result.release_last_at,
        release_last_week=result.release_last_week,
        release_next_at=result.release_next_at,
        release_next_week=result.release_next_week,
    )
    with Session(engine) as session, session.begin():
        session.add(row)
        session.flush()
        record_probe(
            session,
            record.target_id,
            record.started_at,
            result.outcome,
            result.first_slot_at,
            result.second_slot_at,
            record.mode,
        )
        return row.id
