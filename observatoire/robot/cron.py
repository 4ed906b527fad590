"""`observatoire probe` as a library: probe chosen targets once (cron mode), then stop.

The daemon (`daemon.py`) runs for good; this is the one-shot run a cron job or an
operator starts. In order: the targets that may not be probed automatically are set
aside with their reason; the identification rule is checked for the hosts left (a
refused run touches neither the database nor the evidence folder); the configured
targets are written to the database; a real write to the evidence folder and the
database proves the results can be kept, before any request; the probes a dead run
left unfinished are counted, and their targets go first; then one sweep, which
SIGTERM/SIGINT end politely (no new probe starts, the ones in flight are stored).

The command line only chooses the targets, shows the progress and prints what this
module reports, so a test or a scheduler can run the same job without a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from observatoire.config import Target
from observatoire.db import DatabaseNotReady
from observatoire.outcomes import ProbeResult
from observatoire.record.store import (
    StorageError,
    check_writable,
    recover_interrupted,
    sync_targets,
)
from observatoire.robot.leases import holder_id
from observatoire.robot.runtime import Runtime
from observatoire.robot.sweep import SweepReport, run_sweep, split_probeable
from observatoire.settings import Settings

#: Told of each probe as soon as it is stored (a progress bar advances).
OnProbe = Callable[[Target, ProbeResult], None]
#: Opened once the number of probes to run is known, closed when the sweep ends.
ProgressFor = Callable[[int], AbstractContextManager[OnProbe]]


@dataclass
class CronRun:
    """What one run did: the sweep's report and how long the sweep took."""

    report: SweepReport
    seconds: float

    def summary(self) -> str:
        """'12 probes in 3.4 s (20 requests): available=2, no_slot=10'."""
        mix = ", ".join(f"{k}={v}" for k, v in sorted(self.report.outcomes.items()))
        return (
            f"{self.report.probed} probes in {self.seconds:.1f} s "
            f"({self.report.requests} requests): {mix or 'nothing'}"
        )

    def busy(self) -> str | None:
        """The targets another run was probing (leases held), if any."""
        busy = sorted(tid for tid, why in self.report.skipped.items() if why.startswith("busy"))
        if not busy:
            return None
        return (
            f"{len(busy)} target(s) skipped as busy (another run was probing them): "
            + ", ".join(busy)
        )


def skipped_lines(skipped: dict[str, str], *, one_by_one: bool) -> list[str]:
    """Why targets are not probed automatically: one line per target for targets named
    on the command line, one line per reason (with a count) for `--all`."""
    if one_by_one:
        return [f"skipped {tid}: {why}" for tid, why in skipped.items()]
    return [
        f"skipped {count} target(s): {why}"
        for why, count in sorted(Counter(skipped.values()).items())
    ]


def probe_once(
    settings: Settings,
    configured: Sequence[Target],
    chosen: Sequence[Target],
    *,
    progress: ProgressFor,
    warn: Callable[[str], None],
    each_skipped: bool = True,
) -> CronRun:
    """Probe the `chosen` targets once and store every outcome with its evidence.

    `configured` is every target of the targets file (written to the database, chosen
    or not). `warn` receives the skipped targets (one by one, or counted per reason
    when not `each_skipped`) and the interrupted probes recovered. Raises
    SettingsError (identification rule), StorageError (nothing can be kept) or
    DatabaseNotReady, each with a message for the operator."""
    probeable, skipped = split_probeable(chosen)
    for line in skipped_lines(skipped, one_by_one=each_skipped):
        warn(line)
    # The identification rule first: contact, >= 1 s between requests to a real host.
    runtime = Runtime.for_hosts(settings, [t.host for t in probeable])
    engine = runtime.engine
    if engine is None:  # database="required": from_settings raised already
        raise DatabaseNotReady("probing needs the database: run `observatoire db upgrade`")
    sync_targets(engine, configured, runtime.clock.now())
    # Before the first request: a real write to the evidence folder and the database;
    # then the probes a dead run left unfinished are counted, and their targets go first.
    check_writable(engine, runtime.evidence)
    interrupted = recover_interrupted(engine, datetime.now(UTC))
    if interrupted:
        warn(
            f"{len(interrupted)} probe(s) interrupted by a previous run stored as "
            f"error/interrupted: {', '.join(interrupted)}"
        )
        probeable.sort(key=lambda t: t.id not in interrupted)

    started = time.monotonic()
    with progress(len(probeable)) as on_probe:
        try:
            report = asyncio.run(_sweep(runtime, engine, probeable, on_probe))
        except StorageError:
            # Probes that ran but could not be stored: counted now if the database
            # still takes writes, else at the next start (their attempts stay).
            with contextlib.suppress(Exception):
                recover_interrupted(engine, datetime.now(UTC), holder=holder_id())
            raise
    return CronRun(report, time.monotonic() - started)


async def _sweep(
    runtime: Runtime, engine: Engine, targets: list[Target], on_probe: OnProbe
) -> SweepReport:
    """One sweep of `targets`; SIGTERM/SIGINT: no new probe starts, the ones in flight
    finish and are stored."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The per-host gate is shared with every robot on the database.
    async with runtime.robot() as robot:
        return await run_sweep(
            targets,
            engine=engine,
            evidence=runtime.evidence,
            policy=robot.policy,
            browser=robot.browser,
            clock=runtime.clock,
            retry_base=runtime.settings.retry_base_seconds,
            on_probe=on_probe,
            stop=stop,
        )
