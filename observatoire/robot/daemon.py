"""`observatoire run`: the probe daemon. APScheduler 3 (asyncio), one job per enabled
target with its own cadence and jitter, `max_instances=1`, `coalesce`, an explicit
misfire grace; one polite HTTP layer and one browser shared by every job, so politeness
holds across all targets of a host. SIGTERM/SIGINT finish the probes in flight (within
`stop_grace`) and store them, then exit 0; a probe still running after the grace is
stopped and stored as `error/interrupted`. SIGHUP reloads the targets file without losing
anything. A storage failure (read-only or full data folder, database) stops the daemon
with exit 2: it never sends requests whose results it cannot keep. A daemon restarted
inside a follow-up window takes it up from the database (followup.py), its hosts'
follow-up budgets as spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from observatoire.config import Target, load_config
from observatoire.record.store import (
    StorageError,
    check_writable,
    recover_interrupted,
    sync_targets,
)
from observatoire.robot.followup import FollowupPlanner
from observatoire.robot.leases import holder_id, release_stale
from observatoire.robot.runtime import Runtime
from observatoire.robot.sweep import run_sweep, split_probeable
from observatoire.settings import Settings

log = logging.getLogger("observatoire.daemon")


def parse_shard(text: str) -> tuple[int, int]:
    """'1/3' -> (1, 3); shards are numbered from 0."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard expects i/n (e.g. 0/2), not {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text}: need 0 <= i < n")
    return index, count


def in_shard(key: str, shard: tuple[int, int]) -> bool:
    """Stable partition: every key belongs to exactly one shard. Targets are sharded by
    their gate key (canonical host or host_group), so one host is never probed by two
    shards."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard[1] == shard[0]


def first_delay(target_id: str, interval_s: float) -> float:
    """Spread the first runs over the first interval (at most 5 minutes), stably."""
    digest = hashlib.sha256(target_id.encode()).digest()
    return (int.from_bytes(digest[:4], "big") / 2**32) * min(interval_s, 300.0)


@dataclass
class Daemon:
    #: Built once by the caller (runtime.py): engine, evidence, clock, identity.
    runtime: Runtime
    config_path: str
    shard: tuple[int, int] = (0, 1)
    simulator_url: str | None = None
    #: Testing and demos only: every target's cadence, in seconds.
    interval_override: float | None = None
    #: Seconds the probes in flight get to finish after SIGTERM (below the 2 minutes of
    #: docker compose's stop_grace_period and systemd's TimeoutStopSec).
    stop_grace: float = 100.0
    _scheduled: dict[str, datetime] = field(default_factory=dict)
    #: The targets this daemon schedules (its shard's), as of the last (re)load.
    _targets: list[Target] = field(default_factory=list)
    _running: set[asyncio.Task[None]] = field(default_factory=set)
    _storage_error: str | None = None

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def targets(self) -> list[Target]:
        config = load_config(self.config_path, simulator_url=self.simulator_url)
        self.all_targets = config.targets
        probeable, skipped = split_probeable(config.targets)
        for target_id, why in skipped.items():
            log.info("not scheduled: %s (%s)", target_id, why)
        # A reload must not bring a real host under a loopback-only delay or no contact.
        self.runtime.check_conduct(t.host for t in probeable)
        return [t for t in probeable if in_shard(t.gate_key, self.shard)]

    async def run(self) -> int:
        runtime = self.runtime
        engine = runtime.engine
        assert engine is not None, "the daemon needs its database (Runtime database=required)"
        stale = release_stale(engine)
        if stale:
            log.info("released %d lease(s) left by dead processes", stale)
        holder = holder_id()
        evidence = runtime.evidence
        try:
            check_writable(engine, evidence)
        except StorageError as exc:
            log.error("not starting: %s", exc)
            engine.dispose()
            return 2
        interrupted = recover_interrupted(engine, datetime.now(UTC))
        if interrupted:
            log.warning(
                "%d probe(s) interrupted by a previous stop, stored as error/interrupted; "
                "probing their targets first: %s",
                len(interrupted),
                ", ".join(interrupted),
            )
        clock = runtime.clock
        # The per-host gate is shared with every process on the database.
        policy = runtime.policy()
        browser = runtime.browser()
        scheduler = AsyncIOScheduler(timezone=UTC)
        stop = asyncio.Event()
        reload = asyncio.Event()

        def submitted(event: JobSubmissionEvent) -> None:
            self._scheduled[event.job_id] = event.scheduled_run_times[-1]

        scheduler.add_listener(submitted, EVENT_JOB_SUBMITTED)

        planner = FollowupPlanner()

        async def sweep_one(target: Target, followup_at: datetime | None = None) -> None:
            followup = followup_at is not None
            scheduled = followup_at if followup else self._scheduled.get(target.id)
            try:
                report = await run_sweep(
                    [target],
                    engine=engine,
                    evidence=evidence,
                    policy=policy,
                    clock=clock,
                    retry_base=self.settings.retry_base_seconds,
                    scheduled_at=scheduled,
                    browser=browser,
                    holder=holder,
                    stop=stop,
                    followup=followup,
                    on_probe=lambda t, r: planner.observe(t, r, clock.now(), followup=followup),
                )
                log.info(
                    "probed %s%s: %s",
                    target.id,
                    " (follow-up)" if followup else "",
                    dict(report.outcomes) or report.skipped,
                )
            except StorageError as exc:  # nothing more can be kept: stop probing
                self._storage_error = str(exc)
                log.error("stopping: %s", exc)
                stop.set()
            except Exception:  # a bug must not kill the daemon; the job runs again
                log.exception("probe of %s failed", target.id)

        async def probe(target: Target) -> None:
            # The sweep runs in a task of its own, shielded from the scheduler's executor
            # (which cancels its jobs at shutdown): a probe in flight finishes and is
            # stored; only the stop grace running out cancels it.
            if stop.is_set():
                return
            task = asyncio.ensure_future(sweep_one(target))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

        def schedule_all() -> int:
            targets = self._targets = self.targets()
            policy.join_groups(self.all_targets)
            sync_targets(engine, self.all_targets, clock.now())
            wanted = {t.id for t in targets}
            for job in scheduler.get_jobs():
                if job.id not in wanted:
                    job.remove()
            now = datetime.now(UTC)
            for t in targets:
                seconds = self.interval_override or t.interval_minutes * 60.0
                trigger = IntervalTrigger(
                    seconds=seconds, jitter=min(seconds * 0.1, 300), timezone=UTC
                )
                # An interrupted target is probed at once, before the others (see
                # below); its job then keeps its cadence from there.
                delay = seconds if t.id in first else first_delay(t.id, seconds)
                start = now + timedelta(seconds=delay)
                if t.id in first:
                    redo.append(t)
                scheduler.add_job(
                    probe,
                    trigger,
                    args=[t],
                    id=t.id,
                    name=t.id,
                    replace_existing=True,
                    max_instances=1,
                    coalesce=True,
                    misfire_grace_time=max(1, int(seconds / 2)),
                    next_run_time=start,
                )
            first.clear()
            return len(targets)

        async def followups() -> None:
            # Follow-up probes (followup.py): checked every 20 s, each one an ordinary
            # sweep of one target through the per-host gate, within the host's budget.
            while not stop.is_set():
                for target, when in planner.due(clock.now()):
                    task = asyncio.ensure_future(sweep_one(target, when))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 20.0)

        # Targets whose probe was interrupted are probed first, one sweep before any
        # other job starts: alone on their host, the long probes a kill cut short (the
        # calendar walks that slots cause) get their turn back.
        first = set(interrupted)
        redo: list[Target] = []
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload.set)
        count = schedule_all()
        # The follow-up windows a previous daemon left in progress, and the budgets it
        # spent: a restart neither forgets the first nor refills the second.
        planner.resume(engine, self._targets, clock.now())
        if planner.windows:
            log.info(
                "resuming %d follow-up window(s): %s",
                len(planner.windows),
                ", ".join(
                    f"{tid} next at {w.next_at:%H:%M:%S}" for tid, w in planner.windows.items()
                ),
            )
        scheduler.start(paused=bool(redo))
        follower = asyncio.ensure_future(followups())
        log.info("daemon started: %d targets (shard %d/%d)", count, *self.shard)
        try:
            if redo:
                task = asyncio.ensure_future(self._sweep_first(redo, sweep_one))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
                await asyncio.shield(task)
                scheduler.resume()
            while not stop.is_set():
                waiter = asyncio.ensure_future(reload.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                if reload.is_set() and not stop.is_set():
                    reload.clear()
                    try:
                        log.info("configuration reloaded: %d targets", schedule_all())
                    except Exception as exc:  # a bad file keeps the running schedule
                        log.error("reload refused, keeping the current targets: %s", exc)
        finally:
            stop.set()
            scheduler.pause()  # no new job; the running ones go on
            await follower
            code = await self._finish_in_flight(engine, holder)
            scheduler.shutdown(wait=False)
            await policy.aclose()
            await browser.close()
            engine.dispose()
        if self._storage_error:
            log.error("daemon stopped: %s", self._storage_error)
            return 2
        log.info("daemon stopped")
        return code

    @staticmethod
    async def _sweep_first(
        targets: list[Target], sweep_one: Callable[[Target], Awaitable[None]]
    ) -> None:
        """The interrupted targets, each host's one after another, hosts concurrently."""
        by_host: dict[str, list[Target]] = {}
        for t in targets:
            by_host.setdefault(t.gate_key, []).append(t)

        async def host(ts: list[Target]) -> None:
            for t in ts:
                await sweep_one(t)

        await asyncio.gather(*(host(ts) for ts in by_host.values()))

    async def _finish_in_flight(self, engine: Engine, holder: str) -> int:
        """Let the probes in flight finish and be stored, within the grace; stop the
        rest and store them as `error/interrupted` (with this process's attempts left
        behind), so everything started is stored or counted. 0, or 1 if not."""
        running = list(self._running)
        if running:
            log.info("finishing %d probe(s) in flight", len(running))
            _, late = await asyncio.wait(running, timeout=self.stop_grace)
            if late:
                log.warning(
                    "%d probe(s) still running after %.0f s: stopped", len(late), self.stop_grace
                )
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        try:
            counted = recover_interrupted(engine, datetime.now(UTC), holder=holder)
        except Exception:  # noqa: BLE001 - the exit code says it
            log.exception("could not record the interrupted probes")
            return 1
        if counted:
            log.warning("stored %d interrupted probe(s): %s", len(counted), ", ".join(counted))
        return 0
