"""Clocks. The demo and the simulator share a virtual clock so months pass in minutes.

Only timestamps and the simulator's availability follow the clock; politeness delays
are always real time, so a virtual clock can never make the robot faster on a real host.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


# -- the Paris calendar: every day and month of a figure is a Europe/Paris one ----------
def paris_date(when: datetime) -> date:
    """The Europe/Paris calendar day of an instant."""
    return when.astimezone(PARIS).date()


def paris_month(when: datetime) -> str:
    """The Europe/Paris calendar month of an instant, "YYYY-MM"."""
    return when.astimezone(PARIS).strftime("%Y-%m")


def paris_midnight(day: date) -> datetime:
    """The UTC instant a Europe/Paris day starts (DST included)."""
    return datetime.combine(day, time(0, 0), PARIS).astimezone(UTC)


def paris_day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a Europe/Paris day in UTC: 23 or 25 hours at DST changes."""
    return paris_midnight(day), paris_midnight(day + timedelta(days=1))


def paris_month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """[start, end) of a Europe/Paris calendar month in UTC."""
    nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return paris_midnight(date(year, month, 1)), paris_midnight(nxt)


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """A settable clock, safe to share between the robot and the simulator's threads."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("VirtualClock.set needs a timezone-aware datetime")
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now = self._now + delta
