"""`observatoire run`: the probe daemon. APScheduler 3 (asyncio), one job per enabled
target with its own cadence and jitter, `max_instances=1`, `coalesce`, an explicit
misfire grace; one polite HTTP layer and one browser shared by every job, so politeness
holds across all targets of a host. SIGTERM/SIGINT finish the probes in flight, then
exit 0; SIGHUP reloads the targets file without losing anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from observatoire.browser import BrowserPool
from observatoire.clock import SystemClock
from observatoire.config import Target, load_config
from observatoire.db import make_engine, require_migrated
from observatoire.evidence import EvidenceStore
from observatoire.leases import release_stale
from observatoire.politeness import PolitePolicy
from observatoire.settings import Settings
from observatoire.store import sync_targets
from observatoire.sweep import run_sweep, split_probeable

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


def in_shard(target_id: str, shard: tuple[int, int]) -> bool:
    """Stable partition of targets: every target belongs to exactly one shard."""
    digest = hashlib.sha256(target_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard[1] == shard[0]


def first_delay(target_id: str, interval_s: float) -> float:
    """Spread the first runs over the first interval (at most 5 minutes), stably."""
    digest = hashlib.sha256(target_id.encode()).digest()
    return (int.from_bytes(digest[:4], "big") / 2**32) * min(interval_s, 300.0)


@dataclass
class Daemon:
    settings: Settings
    config_path: str
    shard: tuple[int, int] = (0, 1)
    simulator_url: str | None = None
    #: Testing and demos only: every target's cadence, in seconds.
    interval_override: float | None = None
    _scheduled: dict[str, datetime] = field(default_factory=dict)
    _running: set[asyncio.Task[None]] = field(default_factory=set)

    def targets(self) -> list[Target]:
        config = load_config(self.config_path, simulator_url=self.simulator_url)
        self.all_targets = config.targets
        probeable, skipped = split_probeable(config.targets)
        for target_id, why in skipped.items():
            log.info("not scheduled: %s (%s)", target_id, why)
        return [t for t in probeable if in_shard(t.id, self.shard)]

    async def run(self) -> int:
        engine = make_engine(self.settings.database_url)
        require_migrated(engine)
        stale = release_stale(engine)
        if stale:
            log.info("released %d lease(s) left by dead processes", stale)
        clock = SystemClock()
        policy = PolitePolicy(
            self.settings.user_agent, self.settings.min_delay_seconds, self.settings.timeout_seconds
        )
        browser = BrowserPool(self.settings.user_agent)
        evidence = EvidenceStore(self.settings.evidence_dir)
        scheduler = AsyncIOScheduler(timezone=UTC)
        stop = asyncio.Event()
        reload = asyncio.Event()

        def submitted(event: JobSubmissionEvent) -> None:
            self._scheduled[event.job_id] = event.scheduled_run_times[-1]

        scheduler.add_listener(submitted, EVENT_JOB_SUBMITTED)

        async def probe(target: Target) -> None:
            scheduled = self._scheduled.get(target.id)
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)  # type: ignore[arg-type]
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
                )
                log.info("probed %s: %s", target.id, dict(report.outcomes) or report.skipped)
            except Exception:  # a bug must not kill the daemon; the job runs again
                log.exception("probe of %s failed", target.id)
            finally:
                self._running.discard(task)  # type: ignore[arg-type]

        def schedule_all() -> int:
            targets = self.targets()
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
                start = now + timedelta(seconds=first_delay(t.id, seconds))
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
            return len(targets)

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload.set)
        count = schedule_all()
        scheduler.start()
        log.info("daemon started: %d targets (shard %d/%d)", count, *self.shard)
        try:
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
            scheduler.shutdown(wait=False)
            if self._running:
                log.info("finishing %d probe(s) in flight", len(self._running))
                await asyncio.gather(*list(self._running), return_exceptions=True)
            await policy.aclose()
            await browser.close()
            engine.dispose()
        log.info("daemon stopped")
        return 0
