"""Which captcha-gated targets a volunteer should observe next.

A target is due once its interval has passed since its last probe (whatever the
outcome: the minimum interval per target is a rule of conduct, not a figure). Targets
never probed come first, then the most overdue.

Releases (issue 17): a target whose platform announced a release ("Prochaine mise en
ligne …") within the next `IMMINENT` comes first, soonest release first, with a
countdown; from the announced instant it is due again for `RELEASE_WINDOW`, whatever
its interval, because that is the moment a look tells the most (each look is still a
volunteer's click).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from observatoire.config import Target
from observatoire.db.models import Probe
from observatoire.platforms import PLATFORMS
from observatoire.record.releases import announced

#: A release announced within this much time puts its target at the top, with a
#: countdown.
IMMINENT = timedelta(hours=3)
#: How long after an announced release its target stays on top (slots may remain).
RELEASE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class QueueEntry:
    target: Target
    last_probe_at: datetime | None
    #: When the target's interval allows the next probe (None: never probed).
    due_at: datetime | None
    #: The next release its platform announced (or the one just past, within
    #: RELEASE_WINDOW), if any.
    release_at: datetime | None = None

    def release_in(self, now: datetime) -> timedelta | None:
        """Time to the announced release (negative: it happened that long ago)."""
        return None if self.release_at is None else self.release_at - now

    def imminent(self, now: datetime) -> bool:
        left = self.release_in(now)
        return left is not None and -RELEASE_WINDOW <= left <= IMMINENT

    def is_due(self, now: datetime) -> bool:
        return self.due_at is None or self.due_at <= now

    def overdue(self, now: datetime) -> timedelta | None:
        """How late the target is (None when it has never been observed)."""
        return None if self.due_at is None else now - self.due_at


def assisted_targets(targets: Sequence[Target]) -> list[Target]:
    """Enabled targets that only a volunteer can observe (captcha first, adapter known)."""
    return [
        t
        for t in targets
        if t.enabled and t.platform in PLATFORMS and PLATFORMS[t.platform].captcha_first
    ]


def assist_queue(engine: Engine, targets: Sequence[Target], now: datetime) -> list[QueueEntry]:
    """Every assisted target, due ones first (never probed, then most overdue), then the
    others by the time they become due."""
    chosen = assisted_targets(targets)
    if not chosen:
        return []
    ids = {t.id for t in chosen}
    releases: dict[str, datetime] = {}
    for item in announced(engine, now, horizon=IMMINENT, past=RELEASE_WINDOW):
        if item.target_id in ids:
            releases.setdefault(item.target_id, item.published_at)
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
        release = releases.get(t.id)
        if due is not None and release is not None and (when is None or when < release):
            # Not yet looked at since the release: due from the announced instant.
            due = min(due, release)
        entries.append(QueueEntry(t, when, due, release))

    def order(entry: QueueEntry) -> tuple[int, datetime, str]:
        if entry.imminent(now) and entry.release_at is not None:
            return (0, entry.release_at, entry.target.id)
        return (1 if entry.due_at is None else 2, entry.due_at or now, entry.target.id)

    return sorted(entries, key=order)
