"""Which captcha-gated targets a volunteer should observe next.

A target is due once its interval has passed since its last probe (whatever the
outcome: the minimum interval per target is a rule of conduct, not a figure). Targets
never probed come first, then the most overdue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from observatoire.adapters import registry
from observatoire.config import Target
from observatoire.db.models import Probe
from observatoire.platforms import PLATFORMS


@dataclass(frozen=True)
class QueueEntry:
    target: Target
    last_probe_at: datetime | None
    #: When the target's interval allows the next probe (None: never probed).
    due_at: datetime | None

    def is_due(self, now: datetime) -> bool:
        return self.due_at is None or self.due_at <= now

    def overdue(self, now: datetime) -> timedelta | None:
        """How late the target is (None when it has never been observed)."""
        return None if self.due_at is None else now - self.due_at


def assisted_targets(targets: Sequence[Target]) -> list[Target]:
    """Enabled targets that only a volunteer can observe (captcha first, adapter known)."""
    adapters = registry()
    return [
        t
        for t in targets
        if t.enabled and PLATFORMS[t.platform].captcha_first and t.platform in adapters
    ]


def assist_queue(engine: Engine, targets: Sequence[Target], now: datetime) -> list[QueueEntry]:
    """Every assisted target, due ones first (never probed, then most overdue), then the
    others by the time they become due."""
    chosen = assisted_targets(targets)
    if not chosen:
        return []
    stmt = (
        select(Probe.target_id, func.max(Probe.started_at))
        .where(Probe.target_id.in_([t.id for t in chosen]))
        .group_by(Probe.target_id)
    )
    with engine.connect() as conn:
        last = {tid: when for tid, when in conn.execute(stmt)}
    entries = []
    for t in chosen:
        when = last.get(t.id)
        due = when + timedelta(minutes=t.interval_minutes) if when is not None else None
        entries.append(QueueEntry(t, when, due))

    def order(entry: QueueEntry) -> tuple[int, datetime, str]:
        return (0 if entry.due_at is None else 1, entry.due_at or now, entry.target.id)

    return sorted(entries, key=order)
