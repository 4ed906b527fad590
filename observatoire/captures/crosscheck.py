"""Cross-checks between a person's capture and the robot's own observations.

A capture saying "no slot" a few minutes after the robot (or an assisted observation)
saw slots on the same page — or the reverse — may be honest (slots go in minutes) or
forged. Either way it must stand out for a person to look at, never blend into the
figures unnoticed: a capture flagged here waits for review (`captures.review`), and its
probe leaves the figures until a person accepts it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from observatoire.db.models import CaptureRow, Contributor, Probe
from observatoire.outcomes import NO_WAY_TO_BOOK, Outcome
from observatoire.record.releases import withdraw_releases
from observatoire.record.rollups import withdraw_probe

WINDOW = timedelta(minutes=10)
_NO_WAY = [o.value for o in NO_WAY_TO_BOOK]


def contradicting_probes(
    session: Session, target_id: str, at: datetime, outcome: str, window: timedelta = WINDOW
) -> list[int]:
    """Ids of robot or assisted probes of the same target within `window` of `at` whose
    outcome says the opposite (slots vs no way to book)."""
    if outcome == Outcome.AVAILABLE.value:
        opposite = _NO_WAY
    elif outcome in _NO_WAY:
        opposite = [Outcome.AVAILABLE.value]
    else:
        return []
    return list(
        session.scalars(
            select(Probe.id)
            .where(
                Probe.target_id == target_id,
                Probe.mode.in_(("auto", "assisted")),
                Probe.started_at >= at - window,
                Probe.started_at <= at + window,
                Probe.outcome.in_(opposite),
            )
            .order_by(Probe.started_at)
        )
    )


def reason_for(ids: list[int]) -> str:
    shown = ", ".join(f"#{i}" for i in ids[:5])
    return f"contradicted_by_probe:{shown}"[:200]


def countable_probe(session: Session, row: CaptureRow) -> Probe | None:
    """The capture's probe when it can enter the figures, its review aside: there is
    one (the page matched a target) and its contributor's captures count (a volunteer,
    or an applicant who opted in). The rollups fold it in exactly when, in addition, the
    capture is not held back by its review (`rollups.HELD_BACK`)."""
    if row.probe_id is None:
        return None
    who = session.get(Contributor, row.contributor_id)
    if who is None or not (who.role == "volunteer" or who.opted_in):
        return None
    probe = session.get(Probe, row.probe_id)
    return probe if probe is not None and not probe.followup else None


def recheck(session: Session, since: datetime, window: timedelta = WINDOW) -> int:
    """Flag captures received since `since` that a robot probe stored *after* them now
    contradicts: each waits for review, and its probe, counted so far, leaves the
    rollups in the same transaction. Returns how many were flagged."""
    flagged = 0
    rows = session.scalars(
        select(CaptureRow).where(
            CaptureRow.received_at >= since,
            CaptureRow.review == "none",
            CaptureRow.target_id.is_not(None),
        )
    ).all()
    for row in rows:
        assert row.target_id is not None
        ids = contradicting_probes(session, row.target_id, row.received_at, row.outcome, window)
        if ids:
            row.review, row.review_reason = "pending", reason_for(ids)
            session.flush()  # out of `counted_sql` before the rollups are redone
            probe = countable_probe(session, row)
            if probe is not None:
                withdraw_probe(session, probe)
                withdraw_releases(session, [probe.id])
            flagged += 1
    return flagged
