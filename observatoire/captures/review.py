"""A person's review of the captures that wait for one: the queue, and the decision.

A capture waits (`captures.review = "pending"`) when its reading is doubtful: a page the
adapter does not recognise or that matches no target, a screenshot the OCR is unsure of,
a browser clock far from the server's, a robot probe saying the opposite within minutes.
While it waits its probe counts in no figure (`rollups.counted_sql`): a doubtful "no
slot" must not bias the published figures, and the queue keeps it visible
(`captures review`, `status`).

- `accept_capture`: a person looked and trusts the reading; the probe enters the figures
  (the rollups are updated in the same transaction, as a rebuild would compute them,
  and the release banners its page showed are recorded);
- `reject_capture`: a person looked and does not; the probe stays out for good, but
  nothing is destroyed (capture, probe and evidence stay, with the reason).

Only a pending capture can be decided: a decision is not silently overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from observatoire.captures.crosscheck import countable_probe, recheck
from observatoire.db.models import CaptureRow, Contributor
from observatoire.record.releases import admit_releases
from observatoire.record.rollups import admit_probe

#: The longest note kept with a decision (the column's size).
NOTE_MAX = 200


class ReviewError(ValueError):
    """A refused review decision, with a message for the operator."""


@dataclass(frozen=True)
class PendingCapture:
    """One line of the review queue."""

    id: int
    received_at: datetime
    pseudonym: str
    kind: str
    target_id: str | None
    outcome: str
    detail: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """What a decision did: the capture's new state, and whether its probe now counts
    in the figures (an applicant who has not opted in stays out, accepted or not)."""

    id: int
    review: str
    probe_id: int | None
    counted: bool


def pending_count(engine: Engine) -> int:
    """How many captures wait for a person."""
    with Session(engine) as session:
        return (
            session.scalar(
                select(func.count()).select_from(CaptureRow).where(CaptureRow.review == "pending")
            )
            or 0
        )


def review_queue(engine: Engine, recheck_since: datetime | None = None) -> list[PendingCapture]:
    """The captures waiting for a person, oldest first. With `recheck_since`, the
    captures received since then are first cross-checked again against the robot's
    probes stored after them (`crosscheck.recheck`, which takes a newly contradicted
    capture's probe out of the figures)."""
    if recheck_since is not None:
        with Session(engine) as session, session.begin():
            recheck(session, recheck_since)
    with Session(engine) as session:
        rows = session.execute(
            select(CaptureRow, Contributor.pseudonym)
            .join(Contributor, Contributor.id == CaptureRow.contributor_id)
            .where(CaptureRow.review == "pending")
            .order_by(CaptureRow.received_at, CaptureRow.id)
        ).all()
        return [
            PendingCapture(
                row.id,
                row.received_at,
                pseudonym,
                row.kind,
                row.target_id,
                row.outcome,
                row.detail,
                row.review_reason,
            )
            for row, pseudonym in rows
        ]


def _pending(session: Session, capture_id: int) -> CaptureRow:
    """The capture, locked for the decision (PostgreSQL: two reviewers deciding the same
    capture wait for each other; the second finds it decided)."""
    row = session.get(CaptureRow, capture_id, with_for_update=True)
    if row is None:
        raise ReviewError(f"no capture {capture_id}")
    if row.review != "pending":
        state = {"none": "never waited for review"}.get(row.review, f"already {row.review}")
        raise ReviewError(f"capture {capture_id} is not waiting for review ({state})")
    return row


def accept_capture(
    engine: Engine, capture_id: int, now: datetime, note: str | None = None
) -> Decision:
    """A person trusts the capture's reading: its probe enters the figures. Refused for
    a capture that matched no target (there is no probe to count: reject it, or add the
    target and have the page sent again)."""
    with Session(engine) as session, session.begin():
        row = _pending(session, capture_id)
        if row.probe_id is None:
            raise ReviewError(
                f"capture {capture_id} matched no target ({row.review_reason}): there is "
                "nothing to count; reject it, or add the target and send the page again"
            )
        row.review, row.reviewed_at, row.review_note = "accepted", now, _note(note)
        session.flush()  # in `counted_sql` before the target's episodes are redone
        probe = countable_probe(session, row)
        if probe is not None:
            admit_probe(session, probe)
            # The banners its page showed; no inference (see `admit_releases`).
            admit_releases(session, probe)
        return Decision(row.id, row.review, row.probe_id, probe is not None)


def reject_capture(
    engine: Engine, capture_id: int, now: datetime, reason: str | None = None
) -> Decision:
    """A person does not trust the capture's reading: its probe stays out of every
    figure for good. The capture, its probe and their evidence stay (the reason why it
    waited, and this decision's reason, beside them)."""
    with Session(engine) as session, session.begin():
        row = _pending(session, capture_id)
        row.review, row.reviewed_at, row.review_note = "rejected", now, _note(reason)
        return Decision(row.id, row.review, row.probe_id, False)


def _note(text: str | None) -> str | None:
    text = (text or "").strip()
    return text[:NOTE_MAX] or None
