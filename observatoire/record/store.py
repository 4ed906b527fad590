"""Writing targets and probes. One transaction per probe: a crash never loses a
completed probe and never leaves half a row.

A probe in flight is not lost silently either: `start_attempt` writes a `probe_attempts`
row before the probe's first request, and `save_probe` deletes it in the transaction
that stores the probe. A row left behind by a dead process (kill -9, power cut, a full
disk) becomes an `error` probe with detail `interrupted` on the next start
(`recover_interrupted`), so coverage counts the loss. Losing them silently biased the
figures: the probes in flight are the longest ones, the legacy probes that walk a
calendar because slots exist.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from observatoire import __version__
from observatoire.config import Target
from observatoire.db.models import Lease, Probe, ProbeAttempt, TargetRow
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.record.evidence import EvidenceStore
from observatoire.record.releases import record_releases
from observatoire.record.rollups import record_probe


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
    #: The `probe_attempts` row written when the probe started (see `start_attempt`),
    #: deleted in the transaction that stores the probe.
    attempt_id: int | None = None
    #: A follow-up probe (an extra look after slots were seen or a release announced):
    #: stored and marked, but kept out of the rollups so regular figures stay unbiased.
    followup: bool = False
    #: Manual captures only: the contributor who sent it (`contributors.id`).
    contributor_id: int | None = None


def probe_row(record: ProbeRecord, page_sha: str | None, shot_sha: str | None) -> Probe:
    """The `probes` row of a record whose evidence is stored: one mapping from a result
    to its columns, for the robot's probes and for people's captures alike."""
    result = record.result
    return Probe(
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
        contributor_id=record.contributor_id,
        final_url=result.final_url,
        page_sha256=page_sha,
        screenshot_sha256=shot_sha,
        platform_message=result.platform_message,
        release_last_at=result.release_last_at,
        release_last_week=result.release_last_week,
        release_next_at=result.release_next_at,
        release_next_week=result.release_next_week,
        followup=record.followup,
    )


class StorageError(RuntimeError):
    """The robot cannot write its evidence or its database: it must stop probing (every
    further request would be sent for nothing) and say which folder or database."""


#: A probe takes seconds, minutes at worst: an attempt older than this, from a holder we
#: cannot check (another machine), is taken as abandoned.
ATTEMPT_LEASE = timedelta(hours=1)
INTERRUPTED = "interrupted"
_PROCESS_STARTED = datetime.now(UTC)


def start_attempt(
    engine: Engine,
    target_id: str,
    holder: str,
    started_at: datetime,
    adapter: str,
    adapter_version: str,
    scheduled_at: datetime | None = None,
    mode: str = "auto",
    followup: bool = False,
) -> int:
    """Record that a probe starts, before its first request. Returns the row's id.

    `mode` and `followup` are those of the probe to come: an interrupted assisted
    observation is counted as assisted, an interrupted follow-up as a follow-up (out of
    the rollups, and charged to its host's follow-up budget after a restart)."""
    with engine.begin() as conn:
        return start_attempt_in(
            conn,
            target_id,
            holder,
            started_at,
            adapter,
            adapter_version,
            scheduled_at=scheduled_at,
            mode=mode,
            followup=followup,
        )


def start_attempt_in(
    conn: Connection,
    target_id: str,
    holder: str,
    started_at: datetime,
    adapter: str,
    adapter_version: str,
    scheduled_at: datetime | None = None,
    mode: str = "auto",
    followup: bool = False,
) -> int:
    """`start_attempt` inside the caller's transaction: the sweep writes the attempt in
    the transaction that takes the target's lease."""
    values = {
        "target_id": target_id,
        "holder": holder,
        "scheduled_at": scheduled_at,
        "started_at": started_at,
        "adapter": adapter,
        "adapter_version": adapter_version,
        "mode": mode,
        "followup": followup,
    }
    return int(
        conn.execute(insert(ProbeAttempt).values(values).returning(ProbeAttempt.id)).scalar_one()
    )


def _holder_dead(holder: str, started_at: datetime, now: datetime, lease: timedelta) -> bool:
    """Same machine: its process is gone. Another machine (or a pid we cannot read):
    the attempt is older than a generous lease."""
    name, _, pid = holder.rpartition(":")
    if now - started_at > lease:
        return True
    if name != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        # Our own pid: ours if started since this process did, else a previous process
        # that had the same pid (a container restarted: the daemon is pid 1 again).
        return started_at < _PROCESS_STARTED
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover_interrupted(
    engine: Engine,
    now: datetime,
    *,
    holder: str | None = None,
    lease: timedelta = ATTEMPT_LEASE,
    attempt_id: int | None = None,
    mode: str | None = None,
) -> list[str]:
    """Turn unfinished attempts into `error/interrupted` probes (with the attempt's
    start time, folded into the rollups like any probe unless it was a follow-up) and
    return their target ids, oldest first, so the caller probes those targets first.

    Without `holder`: the attempts of dead holders (run at every start). With `holder`:
    that holder's own attempts (a stopping process whose probes outlived the grace).
    With `attempt_id`: that attempt only, whoever holds it (an assisted observation
    whose step failed in a running `assist`). With `mode`: only attempts of that mode
    (`assist` counts the assisted ones and leaves the robot's to `run` and `probe`, which
    probe their targets first). Each attempt is claimed by deleting its row in the
    transaction that inserts the probe, so two processes starting together never count
    one attempt twice."""
    stmt = select(ProbeAttempt).order_by(ProbeAttempt.started_at)
    if attempt_id is not None:
        stmt = stmt.where(ProbeAttempt.id == attempt_id)
    if mode is not None:
        stmt = stmt.where(ProbeAttempt.mode == mode)
    with Session(engine) as session:
        candidates = [
            (r.id, r.target_id, r.holder, r.started_at, r.scheduled_at, r.adapter)
            + (r.adapter_version, r.mode, r.followup)
            for r in session.scalars(stmt)
        ]
    recovered: list[str] = []
    for row_id, target_id, who, started, scheduled, adapter, version, kind, followup in candidates:
        chosen_by = "id" if attempt_id is not None else "holder" if holder else "death"
        if chosen_by == "holder" and who != holder:
            continue
        if chosen_by == "death" and not _holder_dead(who, started, now, lease):
            continue
        with Session(engine) as session, session.begin():
            # A DELETE's result is a CursorResult (Session.execute is typed as the plainer
            # Result, which has no rowcount).
            claimed = cast(
                CursorResult[Any],
                session.execute(delete(ProbeAttempt).where(ProbeAttempt.id == row_id)),
            )
            if claimed.rowcount != 1:
                continue  # another process recovered it first
            session.add(
                Probe(
                    target_id=target_id,
                    scheduled_at=scheduled,
                    started_at=started,
                    finished_at=max(started, min(now, started + lease)),
                    outcome=Outcome.ERROR.value,
                    detail=INTERRUPTED,
                    requests_made=0,
                    attempts=1,
                    duration_ms=0,
                    adapter=adapter,
                    adapter_version=version,
                    robot_version=__version__,
                    mode=kind,
                    followup=followup,
                )
            )
            session.flush()
            if not followup:  # as save_probe: follow-ups stay out of the rollups
                record_probe(session, target_id, started, Outcome.ERROR, None, None, kind)
        recovered.append(target_id)
    return list(dict.fromkeys(recovered))


def drop_attempt(engine: Engine, attempt_id: int) -> None:
    """Forget an attempt without storing a probe: an assisted observation its volunteer
    abandoned before any page that says something about slots was read (see
    assist/observation.py for why that records nothing)."""
    with Session(engine) as session, session.begin():
        session.execute(delete(ProbeAttempt).where(ProbeAttempt.id == attempt_id))


def check_writable(engine: Engine, evidence: EvidenceStore) -> None:
    """A real write to the evidence folder and to the database, before the first
    request: a read-only or full data folder must stop the robot with a clear message,
    not let it send requests whose results cannot be kept."""
    root = Path(evidence.root)
    probe_file = root / f".write-check-{uuid.uuid4().hex}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        with probe_file.open("wb") as fh:
            fh.write(b"observatoire write check\n" * 64)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise StorageError(
            f"cannot write the evidence folder {root}: {exc.strerror or exc}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe_file.unlink(missing_ok=True)
    key = f"write-check-{uuid.uuid4().hex}"
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Lease).values(
                    target_id=key, holder="write-check", expires_at=datetime.now(UTC)
                )
            )
        with engine.begin() as conn:
            conn.execute(delete(Lease).where(Lease.target_id == key))
    except SQLAlchemyError as exc:
        raise StorageError(
            f"cannot write the database {engine.url!r}: {getattr(exc, 'orig', exc)}"
        ) from None


def save_probe(
    engine: Engine,
    evidence: EvidenceStore,
    record: ProbeRecord,
    *,
    lease_holder: str | None = None,
) -> int:
    """Evidence to disk first, then the row: no row ever points at a missing file.
    The row, its rollups and the deletion of its `probe_attempts` row commit together,
    and with them the release of the target's lease when `lease_holder` holds it (the
    sweep's last write for a target is then this one transaction).
    A failed write raises StorageError naming the folder or the database."""
    result = record.result
    try:
        page_sha = evidence.put(result.page, "html") if result.page else None
        shot_sha = evidence.put(result.screenshot, "png") if result.screenshot else None
    except OSError as exc:
        raise StorageError(
            f"cannot write evidence in {evidence.root}: {exc.strerror or exc}"
        ) from exc
    row = probe_row(record, page_sha, shot_sha)
    try:
        with Session(engine) as session, session.begin():
            session.add(row)
            session.flush()
            if not record.followup:
                record_probe(
                    session,
                    record.target_id,
                    record.started_at,
                    result.outcome,
                    result.first_slot_at,
                    result.second_slot_at,
                    record.mode,
                )
            # The releases this probe saw (banners) or reveals (slots after no_slot),
            # in the same transaction as the probe.
            record_releases(session, row, result)
            if record.attempt_id is not None:
                session.execute(delete(ProbeAttempt).where(ProbeAttempt.id == record.attempt_id))
            if lease_holder is not None:
                session.execute(
                    delete(Lease).where(
                        Lease.target_id == record.target_id, Lease.holder == lease_holder
                    )
                )
            return row.id
    except SQLAlchemyError as exc:
        if isinstance(exc, IntegrityError):
            raise
        raise StorageError(
            f"cannot write the database {engine.url!r}: {getattr(exc, 'orig', exc)}"
        ) from exc


def probed_since_in(conn: Connection, target_id: str, since: datetime) -> bool:
    """Whether a regular (not follow-up) probe of the target started after `since`:
    another process's run that overlapped ours got there first. Inside the caller's
    transaction (the sweep's claim)."""
    from sqlalchemy import exists

    found = exists().where(
        Probe.target_id == target_id, Probe.started_at > since, Probe.followup.is_(False)
    )
    return bool(conn.execute(select(found)).scalar())
