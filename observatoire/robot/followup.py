"""Follow-up probes for automatic targets (legacy, eAppointment): be there when slots
are released, politely (issue 17).

Why: an hourly probe that sees slots at 09:12 says nothing of whether they were gone at
09:14 or at 17:00. A target configured with `followup` is probed again at a short
interval for a bounded time when a regular probe sees slots, or from the instant a
release is announced. Bounds that keep this polite:

- every `every_minutes` (default 10) for `for_minutes` (default 60), and the window
  ends at the first follow-up that finds no slot (the survival is then known);
- at most `per_host_hour` (default 6) follow-up probes per host in any sliding hour,
  whatever the number of targets on it (the issue's "6 extra requests": one follow-up
  is one probe, the few requests of one look); a follow-up that would exceed it is
  skipped, never queued for later;
- every request still goes through the per-host gate (one at a time, minimum delay)
  like any probe: a follow-up is an ordinary `run_sweep` of one target;
- a follow-up never arms another window: only regular probes and announcements do, so
  a target that keeps offering slots is not probed more often for ever.

Follow-ups are stored with their `scheduled_at` and `followup = true`, and kept out of
the rollups: the outcome shares and the coverage of the regular schedule do not lean
towards the moments slots exist.

A restart does not forget a window nor refill a budget: the planner lives in memory, and
a starting daemon rebuilds it from the probes table (`FollowupPlanner.resume`): the
regular probes that armed windows, the follow-ups already done (their `scheduled_at` is
the window's instant) and those of the last hour on each host (the budget spent; an
interrupted follow-up is stored as a follow-up, so it counts too). No table of its own:
the probes are already the record of what was seen and sent.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from observatoire.clock import VirtualClock
from observatoire.config import FollowupConfig, Target
from observatoire.db.models import Probe
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.record.evidence import EvidenceStore
from observatoire.robot.browser import BrowserPool
from observatoire.robot.politeness import PolitePolicy
from observatoire.robot.sweep import SweepReport, run_sweep

#: An announced release is looked at this long after its instant (the platform's engine
#: publishes about a minute after the action).
ANNOUNCED_DELAY = timedelta(minutes=2)
#: An announcement arms a window only when the release is this close (a regular probe
#: will see later announcements again).
ANNOUNCE_HORIZON = timedelta(hours=6)
#: The per-host budget's sliding window.
BUDGET_WINDOW = timedelta(hours=1)


@dataclass
class _Window:
    target: Target
    policy: FollowupConfig
    next_at: datetime
    until: datetime


@dataclass
class FollowupPlanner:
    """Which follow-up probes are due, within each host's hourly budget. In memory, and
    rebuilt from the database when a daemon starts (`resume`)."""

    windows: dict[str, _Window] = field(default_factory=dict)
    spent: dict[str, deque[datetime]] = field(default_factory=dict)
    #: Follow-ups skipped because the host's budget was used (reported, never queued).
    skipped: int = 0

    def observe(
        self, target: Target, result: ProbeResult, now: datetime, *, followup: bool = False
    ) -> None:
        """After any probe of `target`: arm, keep or end its follow-up window."""
        policy = target.followup
        if policy is None:
            return
        window = self.windows.get(target.id)
        if followup:
            if window is not None and result.outcome is Outcome.NO_SLOT:
                del self.windows[target.id]  # the slots are gone: survival is bounded
            return
        if window is not None and window.until > now:
            return
        every = timedelta(minutes=policy.every_minutes)
        if result.outcome is Outcome.AVAILABLE:
            start = now + every
        elif (
            result.release_next_at is not None
            and now < result.release_next_at <= now + ANNOUNCE_HORIZON
        ):
            start = result.release_next_at + ANNOUNCED_DELAY
        else:
            return
        until = start + timedelta(minutes=policy.for_minutes) - every
        self.windows[target.id] = _Window(target, policy, start, until)

    def due(self, now: datetime) -> list[tuple[Target, datetime]]:
        """Follow-ups to run now, as (target, scheduled instant); each one is charged to
        its host's budget."""
        out: list[tuple[Target, datetime]] = []
        for tid, window in sorted(self.windows.items(), key=lambda kv: kv[1].next_at):
            if window.next_at > now:
                continue
            scheduled = window.next_at
            window.next_at = scheduled + timedelta(minutes=window.policy.every_minutes)
            if window.next_at > window.until:
                del self.windows[tid]
            if self._charge(window.target, window.policy, now):
                out.append((window.target, scheduled))
            else:
                self.skipped += 1
        return out

    def next_at(self) -> datetime | None:
        return min((w.next_at for w in self.windows.values()), default=None)

    def resume(self, engine: Engine, targets: Sequence[Target], now: datetime) -> None:
        """Take up where a stopped (or killed) daemon left off, from the probes table:
        each host's budget spent in the last hour, and each target's window in progress
        with its next instant. An instant missed while no daemon ran is not made up,
        except the latest one when it is less than half a step old (a restart must not
        shift the cadence, nor bring a burst of looks)."""
        if not targets:
            return
        gate_of = {t.id: t.gate_key for t in targets}
        stmt = (
            select(Probe.target_id, Probe.started_at)
            .where(
                Probe.followup.is_(True),
                Probe.target_id.in_(list(gate_of)),
                Probe.started_at > now - BUDGET_WINDOW,
            )
            .order_by(Probe.started_at)
        )
        with engine.connect() as conn:
            for target_id, started in conn.execute(stmt):
                self.spent.setdefault(gate_of[target_id], deque()).append(started)
        for target in targets:
            window = _window_in_progress(engine, target, now)
            if window is not None:
                self.windows[target.id] = window

    def _charge(self, target: Target, policy: FollowupConfig, now: datetime) -> bool:
        spent = self.spent.setdefault(target.gate_key, deque())
        while spent and spent[0] <= now - BUDGET_WINDOW:
            spent.popleft()
        if len(spent) >= policy.per_host_hour:
            return False
        spent.append(now)
        return True


def _window_in_progress(engine: Engine, target: Target, now: datetime) -> _Window | None:
    """The follow-up window of `target` at `now` as the live planner would hold it: its
    recent automatic probes replayed through `observe` (which regular probe armed a
    window, which follow-up found the slots gone), then its next instant after the last
    follow-up done. Far enough back for a window armed by an announcement six hours
    ahead, and for the window before it that could have kept it from being armed."""
    policy = target.followup
    if policy is None:
        return None
    every = timedelta(minutes=policy.every_minutes)
    reach = ANNOUNCE_HORIZON + ANNOUNCED_DELAY + timedelta(minutes=policy.for_minutes)
    stmt = (
        select(
            Probe.finished_at,
            Probe.scheduled_at,
            Probe.outcome,
            Probe.release_next_at,
            Probe.followup,
        )
        .where(
            Probe.target_id == target.id,
            Probe.mode == "auto",
            Probe.started_at > now - 2 * reach,
            Probe.started_at <= now,
        )
        .order_by(Probe.finished_at, Probe.id)
    )
    replay = FollowupPlanner()
    last_done: datetime | None = None
    with engine.connect() as conn:
        for finished, scheduled, outcome, release_next_at, followup in conn.execute(stmt):
            before = replay.windows.get(target.id)
            if before is not None and _last_instant(before) < finished:
                # The live planner drops a window at its last instant (`due`).
                del replay.windows[target.id]
                before = None
            result = ProbeResult(Outcome(outcome), release_next_at=release_next_at)
            replay.observe(target, result, finished, followup=followup)
            window = replay.windows.get(target.id)
            if window is not before:
                last_done = None  # a new window (or none any more)
            elif followup and window is not None and scheduled is not None:
                last_done = scheduled if last_done is None else max(last_done, scheduled)
    window = replay.windows.get(target.id)
    if window is None:
        return None
    next_at = window.next_at if last_done is None else last_done + every
    if next_at > window.until:
        return None  # its last follow-up is done
    if next_at <= now:
        # Instants missed while no daemon ran: the latest is taken now if it is less
        # than half a step old, else the next one waits for its time; the others are
        # not made up (looks stay about a step apart, no burst after a restart).
        latest = next_at + every * ((min(now, window.until) - next_at) // every)
        next_at = latest if now - latest <= every / 2 else latest + every
        if next_at > window.until:
            return None
    return _Window(target, policy, next_at, window.until)


def _last_instant(window: _Window) -> datetime:
    """The last follow-up instant of a window that has not moved on yet."""
    every = timedelta(minutes=window.policy.every_minutes)
    return window.next_at + every * ((window.until - window.next_at) // every)


def phase(target_id: str, interval: timedelta) -> timedelta:
    """A stable offset of a target's regular probes within its interval (as the
    daemon's jitter spreads them), so regular looks do not all fall on the hour."""
    digest = hashlib.sha256(target_id.encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:4], "big") % int(interval.total_seconds()))


@dataclass
class DriveReport:
    regular: SweepReport = field(default_factory=SweepReport)
    followups: SweepReport = field(default_factory=SweepReport)
    skipped_followups: int = 0


async def drive(
    targets: Sequence[Target],
    *,
    start: datetime,
    end: datetime,
    clock: VirtualClock,
    engine: Engine,
    evidence: EvidenceStore,
    policy: PolitePolicy,
    browser: BrowserPool | None = None,
    planner: FollowupPlanner | None = None,
) -> DriveReport:
    """Walk a virtual clock from `start` to `end`, running each target's regular probes
    (every `interval_minutes`, at a stable phase) and the follow-ups they arm, in time
    order. For the demo, the benchmark and the tests on the simulator: the daemon does
    the same on the real clock (daemon.py)."""
    planner = planner or FollowupPlanner()
    report = DriveReport()
    regular_next = {
        t.id: start + phase(t.id, timedelta(minutes=t.interval_minutes)) for t in targets
    }
    by_id = {t.id: t for t in targets}

    async def look(target: Target, scheduled: datetime, followup: bool) -> SweepReport:
        return await run_sweep(
            [target],
            engine=engine,
            evidence=evidence,
            policy=policy,
            clock=clock,
            retry_base=0.0,
            scheduled_at=scheduled,
            browser=browser,
            followup=followup,
            on_probe=lambda t, r: planner.observe(t, r, clock.now(), followup=followup),
        )

    while True:
        upcoming = min(regular_next.values(), default=end)
        follow = planner.next_at()
        at = min(upcoming, follow) if follow is not None else upcoming
        if at >= end:
            break
        clock.set(max(at, clock.now()))
        now = clock.now()
        for target, scheduled in planner.due(now):
            _add(report.followups, await look(target, scheduled, followup=True))
        due = [by_id[tid] for tid, when in regular_next.items() if when <= now]
        for target in due:
            scheduled = regular_next[target.id]
            regular_next[target.id] = scheduled + timedelta(minutes=target.interval_minutes)
            _add(report.regular, await look(target, scheduled, followup=False))
    report.skipped_followups = planner.skipped
    return report


def _add(total: SweepReport, part: SweepReport) -> None:
    total.probed += part.probed
    total.requests += part.requests
    total.outcomes.update(part.outcomes)
    total.skipped.update(part.skipped)


def drive_month(
    targets: Sequence[Target],
    *,
    start: datetime,
    end: datetime,
    clock: VirtualClock,
    engine: Engine,
    evidence: EvidenceStore,
    user_agent: str,
) -> DriveReport:
    """Run `drive` to completion with an HTTP policy of its own, closed afterwards. The
    clock is virtual, so the policy waits no minimum delay (the simulator's conduct
    checker still sees one request at a time). Used by the benchmark and the tests that
    replay a simulated month, so the two cannot drift apart."""

    async def go() -> DriveReport:
        policy = PolitePolicy(user_agent, 0.0, 10.0)
        try:
            return await drive(
                targets,
                start=start,
                end=end,
                clock=clock,
                engine=engine,
                evidence=evidence,
                policy=policy,
            )
        finally:
            await policy.aclose()

    return asyncio.run(go())
