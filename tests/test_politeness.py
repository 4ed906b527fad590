"""The shared HTTP policy: one request in flight per host, minimum delay, Retry-After,
retries only where they make sense."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import respx

from observatoire.adapters.base import Adapter, ProbeContext
from observatoire.clock import VirtualClock
from observatoire.config import Target
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.robot.politeness import PolitePolicy
from observatoire.robot.sweep import probe_target
from observatoire.simulator import RunningSimulator

UA = "observatoire/test (+https://example.org/contact)"


async def test_concurrent_sessions_never_overlap_on_one_host(simulator: RunningSimulator) -> None:
    policy = PolitePolicy(UA, 0.02, 5.0)
    url = f"{simulator.base_url}/www.herault.gouv.fr/booking/create/15259/0"

    async def one() -> None:
        session = policy.session()
        await session.get(url)
        await session.aclose()

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(8)))
    elapsed = time.monotonic() - t0
    await policy.aclose()
    report = simulator.state.conduct.report()
    assert set(report["max_in_flight"].values()) == {1}
    assert report["violations"] == []
    assert elapsed >= 0.02 * 7
    assert report["user_agents"] == [UA]


@respx.mock
async def test_retry_after_pauses_the_host() -> None:
    respx.get("https://a.example/x").respond(429, headers={"Retry-After": "1"})
    respx.get("https://a.example/y").respond(200)
    policy = PolitePolicy(UA, 0.0, 5.0)
    session = policy.session()
    await session.get("https://a.example/x")
    t0 = time.monotonic()
    await session.get("https://a.example/y")
    assert time.monotonic() - t0 >= 0.9
    await session.aclose()
    await policy.aclose()


class _Flaky(Adapter):
    name = "flaky-test"
    version = "0"

    def __init__(self, results: list[ProbeResult]) -> None:
        self.results = results
        self.calls = 0

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        self.calls += 1
        return self.results[min(self.calls, len(self.results)) - 1]

    def classify(self, page: bytes, url: str | None = None) -> ProbeResult:
        raise NotImplementedError


def _target() -> Target:
    return Target(
        "92-x",
        "92",
        "H",
        "N",
        "p",
        "P",
        "L",
        "legacy_booking",
        "http://127.0.0.1:1/x/booking/create/1",
        True,
        60,
        None,
        {},
    )


async def _probe(adapter: _Flaky):
    policy = PolitePolicy(UA, 0.0, 1.0)
    try:
        return await probe_target(
            adapter, _target(), policy, VirtualClock(datetime.now(UTC)), retry_base=0.01
        )
    finally:
        await policy.aclose()


async def test_errors_are_retried_at_most_twice() -> None:
    adapter = _Flaky([ProbeResult(Outcome.ERROR, "http:502")])
    result, _, attempts = await _probe(adapter)
    assert (result.outcome, attempts, adapter.calls) == (Outcome.ERROR, 3, 3)


async def test_recovery_on_retry_is_recorded_with_attempts() -> None:
    adapter = _Flaky([ProbeResult(Outcome.UNRECOGNIZED, "x"), ProbeResult(Outcome.NO_SLOT)])
    result, _, attempts = await _probe(adapter)
    assert (result.outcome, attempts) == (Outcome.NO_SLOT, 2)


async def test_blocked_is_never_retried() -> None:
    adapter = _Flaky([ProbeResult(Outcome.BLOCKED, "http:429")])
    result, _, attempts = await _probe(adapter)
    assert (result.outcome, attempts) == (Outcome.BLOCKED, 1)


async def test_retired_target_is_not_retried() -> None:
    adapter = _Flaky([ProbeResult(Outcome.ERROR, "target_retired")])
    _, _, attempts = await _probe(adapter)
    assert attempts == 1


@respx.mock
async def test_long_retry_after_blocks_instead_of_waiting() -> None:
    from observatoire.adapters import get_adapter

    respx.get(url__regex=r".*/0$").respond(503, headers={"Retry-After": "3600"})
    policy = PolitePolicy(UA, 0.0, 5.0)
    target = Target(
        "92-x",
        "92",
        "H",
        "N",
        "p",
        "P",
        "L",
        "legacy_booking",
        "https://b.example/booking/create/1",
        True,
        60,
        None,
        {},
    )
    clock = VirtualClock(datetime.now(UTC))
    first = await get_adapter("legacy_booking").probe(target, ProbeContext(policy.session(), clock))
    assert (first.outcome, first.detail) == (Outcome.ERROR, "http:503")
    t0 = time.monotonic()
    second = await get_adapter("legacy_booking").probe(
        target, ProbeContext(policy.session(), clock)
    )
    assert (second.outcome, second.detail) == (Outcome.BLOCKED, "host_paused")
    assert time.monotonic() - t0 < 1
    assert len(respx.calls) == 1  # the paused host got no second request
    await policy.aclose()
