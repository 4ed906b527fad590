"""Deleting a contributor's data: their captures, their manual probes, their account,
and every evidence file that no other probe or capture uses.

A person may withdraw (GDPR art. 17); an association must be able to honour it without
leaving a screenshot behind on disk. The rollups are rebuilt afterwards when the person's
captures counted in the figures, so no count keeps a trace either."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, delete, or_, select
from sqlalchemy.orm import Session

from observatoire.captures.contributors import ContributorError, find_contributor
from observatoire.db.models import CaptureRow, Contributor, Probe
from observatoire.record.evidence import EvidenceStore
from observatoire.record.releases import withdraw_releases


@dataclass(frozen=True)
class Deleted:
    pseudonym: str
    captures: int
    probes: int
    files: int


def delete_contributor(engine: Engine, evidence: EvidenceStore, key: str) -> Deleted:
    who = find_contributor(engine, key)
    if who is None:
        raise ContributorError(f"no contributor {key!r}")
    with Session(engine) as session, session.begin():
        captures = session.execute(
            select(CaptureRow.page_sha256, CaptureRow.screenshot_sha256).where(
                CaptureRow.contributor_id == who.id
            )
        ).all()
        probes = session.execute(
            select(Probe.page_sha256, Probe.screenshot_sha256).where(Probe.contributor_id == who.id)
        ).all()
        pages = {p for p, _ in [*captures, *probes] if p}
        shots = {s for _, s in [*captures, *probes] if s}
        # Their captures' releases ("mises en ligne") before their probes: none may stay.
        withdraw_releases(
            session, session.scalars(select(Probe.id).where(Probe.contributor_id == who.id)).all()
        )
        session.execute(delete(CaptureRow).where(CaptureRow.contributor_id == who.id))
        # A DELETE's result is a CursorResult (Session.execute is typed as the plainer
        # Result, which has no rowcount).
        deleted = cast(
            CursorResult[Any],
            session.execute(delete(Probe).where(Probe.contributor_id == who.id)),
        )
        n_probes = deleted.rowcount
        session.execute(delete(Contributor).where(Contributor.id == who.id))
    files = 0
    with Session(engine) as session:
        for sha, kind in [*((p, "html") for p in pages), *((s, "png") for s in shots)]:
            if _still_used(session, sha):
                continue
            path = evidence.path_for(sha, kind)
            if path.exists():
                path.unlink()
                files += 1
    if who.counted and n_probes:
        from observatoire.record.rollups import rebuild

        rebuild(engine)
    return Deleted(who.pseudonym, len(captures), n_probes, files)


def _still_used(session: Session, sha: str) -> bool:
    probe = session.scalar(
        select(Probe.id)
        .where(or_(Probe.page_sha256 == sha, Probe.screenshot_sha256 == sha))
        .limit(1)
    )
    if probe is not None:
        return True
    capture = session.scalar(
        select(CaptureRow.id)
        .where(or_(CaptureRow.page_sha256 == sha, CaptureRow.screenshot_sha256 == sha))
        .limit(1)
    )
    return capture is not None
