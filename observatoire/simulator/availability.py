"""Deterministic availability: a pure function of (seed, counter, virtual hour).

Replaying a scenario with the same seed and clock gives the same slots, so tests and
benchmarks can compare what the robot recorded with what the simulator intended.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from observatoire.clock import PARIS
from observatoire.simulator.scenario import Profile

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


def slot_state(seed: int, key: str, at: datetime, profile: Profile) -> SlotState:
    hour = int(at.timestamp() // 3600)
    local = at.astimezone(PARIS)
    chance = profile.open_probability * profile.weekday_factor[local.weekday()]
    if unit(seed, key, hour, "open") >= chance:
        return SlotState(False, ())
    low, high = profile.lead_days
    lead = low + unit(seed, key, hour, "lead") * (high - low)
    count_low, count_high = profile.slots
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
