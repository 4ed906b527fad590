"""Deterministic availability: a pure function of (seed, counter, virtual hour), plus
release batches: slots published at fixed instants and taken by competing demand.

Replaying a scenario with the same seed and clock gives the same slots, so tests and
benchmarks can compare what the robot recorded with what the simulator intended.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from observatoire.clock import PARIS
from observatoire.simulator.scenario import Profile, Release

HORIZON_DAYS = 120


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) from the parts, stable across runs and machines."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class SlotState:
    open: bool
    slots: tuple[datetime, ...]  # timezone-aware, Europe/Paris, sorted

    @property
    def first(self) -> datetime | None:
        return self.slots[0] if self.slots else None


@dataclass(frozen=True)
class Batch:
    """One published batch of slots and its ground truth: when each slot was taken by
    the competing demand, hence how long the batch truly survived."""

    key: str
    published_at: datetime  # Europe/Paris, on the minute
    week_start: date  # the week whose slots it opens ("semaine du …")
    #: (slot, instant it is taken), sorted by slot.
    slots: tuple[tuple[datetime, datetime], ...]

    @property
    def gone_at(self) -> datetime:
        """When the last slot of the batch was taken: the page shows none from then."""
        return max(taken for _, taken in self.slots)

    @property
    def survival_seconds(self) -> float:
        return (self.gone_at - self.published_at).total_seconds()

    def live(self, at: datetime) -> tuple[datetime, ...]:
        return tuple(sorted(slot for slot, taken in self.slots if self.published_at <= at < taken))

    def truth(self) -> dict[str, object]:
        """JSON-friendly ground truth (the `/_sim/releases` hook)."""
        return {
            "key": self.key,
            "published_at": self.published_at.isoformat(),
            "week_start": self.week_start.isoformat(),
            "slots": len(self.slots),
            "gone_at": self.gone_at.isoformat(),
            "survival_seconds": self.survival_seconds,
            "slot_survival_seconds": [
                (taken - self.published_at).total_seconds() for _, taken in self.slots
            ],
        }


def release_instant(release: Release, day: date) -> datetime:
    hh, mm = map(int, release.time.split(":"))
    return datetime.combine(day, time(hh, mm), PARIS)


def week_opened(release: Release, published: datetime) -> date:
    """The Monday of the week whose slots a release opens (as its banner says)."""
    opened = (published + timedelta(days=release.lead_days[0])).date()
    return opened - timedelta(days=opened.weekday())


def make_batch(seed: int, key: str, release: Release, published: datetime) -> Batch:
    """The batch a release publishes at `published`: its slots in the announced week
    (weekdays, 09:00-15:30) and, for each, when the competing demand takes it."""
    stamp = published.isoformat()
    week = week_opened(release, published)
    low, high = release.slots
    count = max(1, low + int(unit(seed, key, stamp, "count") * (high - low + 1)))
    cap = timedelta(minutes=release.minutes)
    slots: dict[datetime, datetime] = {}
    for index in range(count):
        day = week + timedelta(days=int(unit(seed, key, stamp, "day", index) * 5))
        minute = int(unit(seed, key, stamp, "minute", index) * 14) * 30
        slot = datetime.combine(day, time(9, 0), PARIS) + timedelta(minutes=minute)
        taken = cap
        if release.demand is not None:
            r_low, r_high = release.demand.reaction_minutes
            fastest = min(
                r_low + unit(seed, key, stamp, "bot", bot, index) * (r_high - r_low)
                for bot in range(release.demand.bots)
            )
            # Whole seconds, as a server would log them.
            taken = min(cap, timedelta(seconds=max(1, round(fastest * 60))))
        if slot not in slots:
            slots[slot] = published + taken
    return Batch(key, published, week, tuple(sorted(slots.items())))


def batches_between(
    seed: int, key: str, profile: Profile, start: datetime, end: datetime
) -> list[Batch]:
    """Every batch published in [start, end), in time order: the ground truth."""
    out = []
    day = start.astimezone(PARIS).date() - timedelta(days=1)
    last = end.astimezone(PARIS).date()
    while day <= last:
        for release in profile.releases:
            if day.weekday() == release.weekday:
                at = release_instant(release, day)
                if start <= at < end:
                    out.append(make_batch(seed, key, release, at))
        day += timedelta(days=1)
    return sorted(out, key=lambda b: b.published_at)


def _live_batch(seed: int, key: str, profile: Profile, local: datetime) -> tuple[datetime, ...]:
    """The slots of the batches still not taken at `local` (batches of the last week
    and today: a batch outlives its `minutes` cap never)."""
    live: list[datetime] = []
    longest = max((r.minutes for r in profile.releases), default=0)
    for batch in batches_between(
        seed, key, profile, local - timedelta(minutes=longest), local + timedelta(seconds=1)
    ):
        live.extend(batch.live(local))
    return tuple(sorted(set(live)))


def slot_state(seed: int, key: str, at: datetime, profile: Profile) -> SlotState:
    hour = int(at.timestamp() // 3600)
    local = at.astimezone(PARIS)
    if profile.releases:
        live = _live_batch(seed, key, profile, local)
        if live:
            return SlotState(True, live)
    chance = (
        profile.open_probability
        * profile.weekday_factor[local.weekday()]
        * profile.hour_factor[local.hour]
    )
    if unit(seed, key, hour, "open") >= chance:
        return SlotState(False, ())
    lead_bounds, count_bounds = profile.lead_days, profile.slots
    low, high = lead_bounds
    lead = low + unit(seed, key, hour, "lead") * (high - low)
    count_low, count_high = count_bounds
    count = count_low + int(unit(seed, key, hour, "count") * (count_high - count_low + 1))
    slots: list[datetime] = []
    day = local.date() + timedelta(days=max(1, round(lead)))
    for index in range(max(1, count)):
        while day.weekday() >= 5:  # counters are closed at weekends
            day += timedelta(days=1)
        minute = int(unit(seed, key, hour, "minute", index) * 14) * 30  # 09:00–15:30
        slot = datetime.combine(day, time(9, 0), PARIS) + timedelta(minutes=minute)
        if slot.astimezone(UTC) - at > timedelta(days=HORIZON_DAYS):
            break
        slots.append(slot)
        day += timedelta(days=int(unit(seed, key, hour, "gap", index) * 4))
    return SlotState(True, tuple(sorted(set(slots))))
