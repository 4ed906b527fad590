"""Deterministic availability: a pure function of (seed, counter, virtual hour).

Replaying a scenario with the same seed and clock gives the same slots, so tests and
benchmarks can compare what the robot recorded with what the simulator intended.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

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


def _in_release(profile: Profile, local: datetime) -> Release | None:
    for release in profile.releases:
        if local.weekday() != release.weekday:
            continue
        hh, mm = map(int, release.time.split(":"))
        start = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if start <= local < start + timedelta(minutes=release.minutes):
            return release
    return None


def slot_state(seed: int, key: str, at: datetime, profile: Profile) -> SlotState:
    hour = int(at.timestamp() // 3600)
    local = at.astimezone(PARIS)
    release = _in_release(profile, local)
    if release is not None:
        lead_bounds, count_bounds = release.lead_days, release.slots
    else:
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
