"""Every fault the simulator can inject, against every registered platform, compared
with the truth the same target shows without the fault. A fault that hides the truth
must never produce `no_slot` or `available`; one that leaves it visible must produce the
truth or `unrecognized`, never the opposite state.

The rows come from the registry: each platform's targets are in
`tests/fixtures/<platform>/faults.yaml` (a platform without one fails the registry
test). A captcha-first platform's row runs the assisted flow's first step, as
`observatoire assist` does, up to the captcha."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from observatoire.adapters import ProbeContext, get_adapter
from observatoire.adapters.assisted import AssistedAdapter
from observatoire.assist.observation import AssistServices, Observation, State
from observatoire.clock import VirtualClock
from observatoire.config import Target, load_config
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.platforms import PLATFORMS
from observatoire.record.evidence import EvidenceStore
from observatoire.record.store import sync_targets
from observatoire.robot.browser import BrowserPool
from observatoire.robot.politeness import PolitePolicy
from observatoire.simulator import RunningSimulator
from observatoire.simulator.faults import TRUTH_VISIBLE
from observatoire.simulator.scenario import FAULT_KINDS

from .conftest import DEMO_CONFIG, need_chromium

FIXTURES = Path(__file__).parent / "fixtures"

# What each fault must become, when it hides the truth.
EXPECTED = {
    "connect_timeout": (Outcome.ERROR, "timeout:connect"),
    "read_timeout": (Outcome.ERROR, "timeout:read"),
    "connection_reset": (Outcome.ERROR, None),
    "http_500": (Outcome.ERROR, "http:500"),
    "http_502": (Outcome.ERROR, "http:502"),
    "maintenance_503": (Outcome.ERROR, "http:503"),
    "waf_403": (Outcome.BLOCKED, "http:403"),
    "rate_limit_429": (Outcome.BLOCKED, "http:429"),
    "captcha": (Outcome.BLOCKED, "captcha"),
    "waiting_room": (Outcome.BLOCKED, "waiting_room"),
    "cloudflare_block": (Outcome.BLOCKED, "cloudflare_block"),
    "cloudflare_challenge": (Outcome.BLOCKED, "cloudflare_challenge"),
    "truncated_body": (Outcome.ERROR, None),
    "redirect_loop": (Outcome.ERROR, "redirect_loop"),
}


def test_the_matrix_covers_every_fault() -> None:
    assert set(EXPECTED) | TRUTH_VISIBLE | {"new_wording"} == set(FAULT_KINDS)


def _policy() -> PolitePolicy:
    # A fresh policy each time: a Retry-After pause must not leak into the next case.
    return PolitePolicy("observatoire/test (+https://example.org)", 0.0, 1.0)


async def _probe(
    sim: RunningSimulator,
    clock: VirtualClock,
    target: Target | str,
    browser: BrowserPool | None = None,
) -> ProbeResult:
    if isinstance(target, str):
        target = load_config(DEMO_CONFIG, simulator_url=sim.base_url).target(target)
    policy = _policy()
    session = policy.session()
    try:
        return await get_adapter(target.platform).probe(
            target, ProbeContext(session, clock, browser)
        )
    finally:
        await session.aclose()
        await policy.aclose()


#: Targets whose fault-free truth was checked in this run (see test_platform_under_fault).
CHECKED_TRUTHS: set[str] = set()


def fault_rows() -> list[tuple[str, str]]:
    """(platform, fault) for every registered platform and every fault."""
    return [(name, fault) for name in sorted(PLATFORMS) for fault in sorted(FAULT_KINDS)]


def load_fault_targets(name: str) -> dict[str, Any]:
    path = FIXTURES / name / "faults.yaml"
    return yaml.safe_load(path.read_text("utf-8")) if path.exists() else {}


def _targets(name: str, sim: RunningSimulator) -> list[tuple[Target, str]]:
    """The platform's fault targets (demo targets by id, or described in full) and the
    truth each shows without a fault."""
    config = load_config(DEMO_CONFIG, simulator_url=sim.base_url)
    rows = []
    for entry in load_fault_targets(name)["targets"]:
        if "id" in entry:
            target = config.target(entry["id"])
        else:
            spec = entry["target"]
            url = spec["url"].replace("{simulator}", sim.base_url)
            options = PLATFORMS[name].options.model_validate(spec["options"]).model_dump()
            target = replace(
                config.targets[0], id=spec["id"], platform=name, url=url, options=options
            )
        assert target.platform == name, (target.id, target.platform)
        rows.append((target, str(entry["truth"])))
    return rows


def _site_prefix(target_url: str) -> str:
    return "/" + target_url.split("/", 3)[3].split("/")[0] + "/"


@pytest.fixture(scope="module")
def assist_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One database for the assisted rows (observations store what they record)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('faults') / 'assist.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


async def _assisted(
    sim: RunningSimulator,
    clock: VirtualClock,
    target: Target,
    browser: BrowserPool,
    engine: Engine,
    evidence: EvidenceStore,
) -> ProbeResult | None:
    """The assisted flow's first step, as `assist` runs it: None when the volunteer is
    shown the captcha, else the result it recorded."""
    sync_targets(engine, [target], clock.now())
    policy = _policy()
    services = AssistServices(engine, evidence, policy, browser, clock)
    observation = Observation(services, target, "benevole-test")
    try:
        await observation.start()
        if observation.state is State.CAPTCHA:
            return None
        assert observation.state is State.RECORDED, (observation.state, observation.message)
        return observation.result
    finally:
        await observation.abandon()
        await policy.aclose()


async def _drained(sim: RunningSimulator, within: float = 5.0) -> None:
    """Wait until the server has finished every request of the look that just ended.

    Each look here gets a fresh policy (a Retry-After must not leak into the next
    case), so it cannot know that the previous look gave up on a request the server is
    still serving (a hang, a page the browser navigated away from). One robot process
    keeps that knowledge in its gate and waits; this harness waits in its place."""
    deadline = asyncio.get_running_loop().time() + within
    while any(n > 0 for n in sim.state.conduct.report_in_flight().values()):
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(("name", "fault"), fault_rows())
async def test_platform_under_fault(
    simulator: RunningSimulator,
    clock: VirtualClock,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    name: str,
    fault: str,
) -> None:
    platform = PLATFORMS[name]
    declared = load_fault_targets(name)
    assert declared, f"no tests/fixtures/{name}/faults.yaml: the fault matrix has no row"
    browser: BrowserPool | None = None
    if platform.transport == "browser":
        need_chromium()
        browser = BrowserPool("observatoire/test (+https://example.org/contact)")
    try:
        await _check_rows(simulator, clock, request, tmp_path, name, fault, declared, browser)
    finally:
        if browser is not None:
            await browser.close()


async def _check_rows(
    simulator: RunningSimulator,
    clock: VirtualClock,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    name: str,
    fault: str,
    declared: dict[str, Any],
    browser: BrowserPool | None,
) -> None:
    assisted = isinstance(get_adapter(name), AssistedAdapter)
    engine = request.getfixturevalue("assist_engine") if assisted else None
    evidence = EvidenceStore(tmp_path / "evidence")
    simulator.state.hang_seconds = 1.6

    async def look(target: Target) -> ProbeResult | None:
        try:
            if assisted:
                assert browser is not None and engine is not None
                return await _assisted(simulator, clock, target, browser, engine, evidence)
            return await _probe(simulator, clock, target, browser)
        finally:
            await _drained(simulator)

    for target, truth_name in _targets(name, simulator):
        # Every test starts a fresh simulator at the same anchor: a target's truth is
        # the same in each, so it is checked once per module (half the browser probes).
        if target.id not in CHECKED_TRUTHS:
            clean = await look(target)
            shown = "captcha" if clean is None else clean.outcome.value
            assert shown == truth_name, (target.id, clean)
            CHECKED_TRUTHS.add(target.id)
        truth = None if truth_name == "captcha" else Outcome(truth_name)
        simulator.set_faults([{"kind": fault, "path_prefix": _site_prefix(target.url)}])
        try:
            result = await look(target)
        finally:
            simulator.set_faults([])
        outcome = None if result is None else result.outcome  # None: the captcha
        if fault in TRUTH_VISIBLE or fault == "changed_layout":
            assert outcome in (truth, Outcome.UNRECOGNIZED), (fault, truth, result)
        elif fault == "new_wording":
            # Only the platform's messages are reworded: a no-slot message no longer
            # recognised is `unrecognized`, never `no_slot`.
            if declared.get("strict"):
                allowed = {Outcome.UNRECOGNIZED} if truth is Outcome.NO_SLOT else {truth}
            else:  # the simulation may not reword this platform's messages
                allowed = {truth, Outcome.UNRECOGNIZED}
            assert outcome in allowed, (fault, truth, result)
        elif fault in declared.get("known", {}):
            # Declared in faults.yaml: what the platform's adapter says today instead,
            # never a valid outcome.
            assert result is not None and result.outcome.value == declared["known"][fault]
            assert not result.outcome.is_valid, result
        else:
            assert result is not None, (fault, "the captcha was shown through the fault")
            want, detail = EXPECTED[fault]
            assert result.outcome is want, (fault, truth, result)
            if detail is not None and declared.get("strict"):
                assert result.detail == detail, (fault, result)
            assert result.outcome not in (Outcome.NO_SLOT, Outcome.AVAILABLE)
    assert simulator.state.conduct.report()["violations"] == []


async def test_share_of_requests_and_ground_truth_log(
    simulator: RunningSimulator, clock: VirtualClock
) -> None:
    simulator.set_faults([{"kind": "http_502", "share": 0.1}])
    outcomes = []
    for _ in range(12):
        outcomes.append((await _probe(simulator, clock, "75-admission-exceptionnelle-948")).outcome)
    assert Outcome.ERROR in outcomes and Outcome.NO_SLOT in outcomes
    assert Outcome.AVAILABLE not in outcomes
    faults = [r for r in simulator.state.truth_records() if r.fault == "http_502"]
    assert faults and all(r.state == "fault" for r in faults)
