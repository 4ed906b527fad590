"""Probe a set of targets once: the unit of work of cron mode, the daemon and the demo.

Targets are grouped by host; hosts are probed concurrently, each host's targets one
after another, and the policy layer guarantees one request in flight per host anyway.
Each probe is stored as soon as it completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from observatoire.adapters import Adapter, ProbeContext, get_adapter
from observatoire.clock import Clock
from observatoire.config import Target
from observatoire.outcomes import ProbeResult
from observatoire.platforms import PLATFORMS
from observatoire.record.evidence import EvidenceStore
from observatoire.record.store import (
    ProbeRecord,
    StorageError,
    probed_since_in,
    save_probe,
    start_attempt_in,
)
from observatoire.robot.browser import BrowserPool
from observatoire.robot.leases import acquire_in, holder_id, release
from observatoire.robot.politeness import PolitePolicy


class _JustProbed(Exception):
    """Inside the claim's transaction: an overlapping run probed the target meanwhile."""


MAX_ATTEMPTS = 3  # the first try and at most 2 retries
RETRY_FACTORS = (1.0, 3.0)  # growing waits, in units of retry_base_seconds


@dataclass
class SweepReport:
    probed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: dict[str, str] = field(default_factory=dict)  # target id -> reason
    requests: int = 0


def split_probeable(targets: Sequence[Target]) -> tuple[list[Target], dict[str, str]]:
    """Targets this robot may probe automatically now, and why the others are skipped."""
    ok: list[Target] = []
    skipped: dict[str, str] = {}
    for t in targets:
        if not t.enabled:
            skipped[t.id] = "disabled"
        elif t.platform not in PLATFORMS:
            skipped[t.id] = f"no adapter for {t.platform} in this version"
        elif PLATFORMS[t.platform].captcha_first:
            skipped[t.id] = "captcha first: waits for a volunteer (observatoire assist)"
        else:
            ok.append(t)
    return ok, skipped


async def probe_target(
    adapter: Adapter,
    target: Target,
    policy: PolitePolicy,
    clock: Clock,
    retry_base: float,
    browser: BrowserPool | None = None,
    stop: asyncio.Event | None = None,
) -> tuple[ProbeResult, int, int]:
    """Probe with retries for error/unrecognized only. Returns (result, requests, attempts).
    Once `stop` is set (SIGTERM) no retry starts: the result in hand is stored."""
    requests = 0
    attempt = 0
    while True:
        attempt += 1
        session = policy.session()
        try:
            context = ProbeContext(http=session, clock=clock, browser=browser)
            result = await adapter.probe(target, context)
        finally:
            requests += session.requests_made
            await session.aclose()
        if attempt >= MAX_ATTEMPTS or not result.should_retry() or (stop and stop.is_set()):
            return result, requests, attempt
        await asyncio.sleep(retry_base * RETRY_FACTORS[attempt - 1])


async def run_sweep(
    targets: Sequence[Target],
    *,
    engine: Engine,
    evidence: EvidenceStore,
    policy: PolitePolicy,
    clock: Clock,
    retry_base: float,
    scheduled_at: datetime | None = None,
    on_probe: Callable[[Target, ProbeResult], None] | None = None,
    browser: BrowserPool | None = None,
    holder: str | None = None,
    stop: asyncio.Event | None = None,
    followup: bool = False,
) -> SweepReport:
    """Probe `targets` once. A browser is started only if a browser adapter needs one
    (and closed at the end unless the caller passed its own).

    Each probe is written as started (`probe_attempts`) before its first request. Once
    `stop` is set, no new probe starts and the ones in flight finish and are stored.
    When a write fails, no new probe starts either, and StorageError is raised at the
    end: requests whose results cannot be kept are not sent.

    `followup` marks the probes as follow-ups (followup.py): stored with
    `followup = true`, outside the rollups."""
    report = SweepReport()
    probeable, report.skipped = split_probeable(targets)
    own_browser = browser is None and any(
        PLATFORMS[t.platform].transport == "browser" for t in probeable
    )
    if own_browser:
        browser = BrowserPool(policy.user_agent)
    policy.join_groups(probeable)
    by_host: dict[str, list[Target]] = defaultdict(list)
    for t in probeable:  # one worker per gate: `LOCALHOST:80` and `127.0.0.1` are one
        by_host[t.gate_key].append(t)

    holder = holder or holder_id()
    sweep_started = clock.now()

    storage_failure: list[StorageError] = []

    def claim(target: Target, adapter: Adapter, started: datetime) -> int | str:
        """One transaction before the first request: take the target's lease, check
        that no overlapping run has just probed it, and write the attempt row. Returns
        the attempt's id, or why the target is skipped."""
        try:
            with engine.begin() as conn:
                # Another run (an overlapping cron job, another shard) may be on it.
                if not acquire_in(conn, target.id, holder, datetime.now(UTC)):
                    return "busy: being probed by another run"
                if not followup and probed_since_in(conn, target.id, sweep_started):
                    # Two overlapping `probe --all`: the other one probed it while we
                    # waited for the lease; a second look now would be a duplicate.
                    raise _JustProbed  # rolls back the lease we just took
                return start_attempt_in(
                    conn,
                    target.id,
                    holder,
                    started,
                    adapter.name,
                    adapter.version,
                    scheduled_at=scheduled_at or started,
                    followup=followup,
                )
        except _JustProbed:
            return "busy: just probed by another run"
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot write the database {engine.url!r}: {getattr(exc, 'orig', exc)}"
            ) from exc

    async def host_worker(host_targets: list[Target]) -> None:
        for target in host_targets:
            if storage_failure or (stop is not None and stop.is_set()):
                break
            adapter = get_adapter(target.platform)
            started = clock.now()
            try:
                claimed = claim(target, adapter, started)
            except StorageError as exc:
                storage_failure.append(exc)
                break
            if isinstance(claimed, str):  # busy: nothing of ours is held
                report.skipped[target.id] = claimed
                continue
            stored = False
            try:
                await probe_and_store(target, adapter, started, claimed)
                stored = True
            except StorageError as exc:
                storage_failure.append(exc)
            finally:
                if not stored:  # no probe transaction released the lease: free it
                    with contextlib.suppress(SQLAlchemyError):
                        release(engine, target.id, holder)

    async def probe_and_store(
        target: Target, adapter: Adapter, started: datetime, attempt_id: int
    ) -> None:
        """Probe one claimed target and store the probe, which releases its lease."""
        t0 = time.monotonic()
        result, requests, attempts = await probe_target(
            adapter, target, policy, clock, retry_base, browser, stop
        )
        duration_ms = int((time.monotonic() - t0) * 1000)
        record = ProbeRecord(
            target_id=target.id,
            scheduled_at=scheduled_at or started,
            started_at=started,
            finished_at=max(clock.now(), started),
            result=result,
            requests_made=requests,
            attempts=attempts,
            duration_ms=duration_ms,
            adapter=adapter.name,
            adapter_version=adapter.version,
            attempt_id=attempt_id,
            followup=followup,
        )
        save_probe(engine, evidence, record, lease_holder=holder)
        report.probed += 1
        report.requests += requests
        report.outcomes[result.outcome.value] += 1
        if on_probe is not None:
            on_probe(target, result)

    try:
        await asyncio.gather(*(host_worker(ts) for ts in by_host.values()))
    finally:
        if own_browser and browser is not None:
            await browser.close()
    if storage_failure:
        raise storage_failure[0]
    return report
