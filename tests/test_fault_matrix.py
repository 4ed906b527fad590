"""Every fault the simulator can inject, against every adapter it applies to, compared
with the simulator's ground truth. A fault that hides the truth must never produce
`no_slot` or `available`; one that leaves it visible must produce the truth or
`unrecognized`, never the opposite state."""

from __future__ import annotations

import pytest

from observatoire.adapters import ProbeContext, get_adapter
from observatoire.clock import VirtualClock
from observatoire.config import load_config
from observatoire.outcomes import Outcome
from observatoire.politeness import PolitePolicy
from observatoire.simulator import RunningSimulator
from observatoire.simulator.faults import TRUTH_VISIBLE
from observatoire.simulator.scenario import FAULT_KINDS

from .conftest import DEMO_CONFIG

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


async def _probe(sim: RunningSimulator, clock: VirtualClock, target_id: str):  # type: ignore[no-untyped-def]
    config = load_config(DEMO_CONFIG, simulator_url=sim.base_url)
    target = config.target(target_id)
    # A fresh policy each time: a Retry-After pause must not leak into the next case.
    policy = PolitePolicy("observatoire/test (+https://example.org)", 0.0, 1.0)
    session = policy.session()
    try:
        return await get_adapter(target.platform).probe(target, ProbeContext(session, clock))
    finally:
        await session.aclose()
        await policy.aclose()


async def _one_of_each(sim: RunningSimulator, clock: VirtualClock) -> dict[str, Outcome]:
    """A legacy target showing no slot and one showing slots, at the clock's time."""
    config = load_config(DEMO_CONFIG, simulator_url=sim.base_url)
    found: dict[Outcome, str] = {}
    for target in config.targets:
        if target.platform != "legacy_booking":
            continue
        outcome = (await _probe(sim, clock, target.id)).outcome
        if outcome in (Outcome.NO_SLOT, Outcome.AVAILABLE):
            found.setdefault(outcome, target.id)
    assert set(found) == {Outcome.NO_SLOT, Outcome.AVAILABLE}, found
    return {target_id: outcome for outcome, target_id in found.items()}


@pytest.mark.parametrize("fault", sorted(FAULT_KINDS))
async def test_legacy_booking_under_fault(
    simulator: RunningSimulator, clock: VirtualClock, fault: str
) -> None:
    simulator.state.hang_seconds = 1.6
    truths = await _one_of_each(simulator, clock)

    for target_id, truth in truths.items():
        site = (
            "/"
            + load_config(DEMO_CONFIG, simulator_url="http://x")
            .target(target_id)
            .url.split("/", 3)[3]
            .split("/")[0]
            + "/"
        )
        simulator.set_faults([{"kind": fault, "path_prefix": site}])
        result = await _probe(simulator, clock, target_id)
        simulator.set_faults([])
        if fault in TRUTH_VISIBLE:
            assert result.outcome in (truth, Outcome.UNRECOGNIZED), (fault, truth, result)
        elif fault == "new_wording":
            # Only the no-slot message is reworded: with slots open, nothing is hidden.
            expected = Outcome.UNRECOGNIZED if truth is Outcome.NO_SLOT else truth
            assert result.outcome is expected, (fault, truth, result)
        else:
            outcome, detail = EXPECTED[fault]
            assert result.outcome is outcome, (fault, truth, result)
            if detail is not None:
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


# -- démarches-simplifiées (httpx) and eAppointment (browser) -------------------------
BROWSER_EXPECTED = {
    "connect_timeout": Outcome.ERROR,
    "read_timeout": Outcome.ERROR,
    "connection_reset": Outcome.ERROR,
    "http_500": Outcome.ERROR,
    "http_502": Outcome.ERROR,
    "maintenance_503": Outcome.ERROR,
    "waf_403": Outcome.BLOCKED,
    "rate_limit_429": Outcome.BLOCKED,
    "captcha": Outcome.BLOCKED,
    "waiting_room": Outcome.BLOCKED,
    "cloudflare_block": Outcome.BLOCKED,
    "cloudflare_challenge": Outcome.BLOCKED,
    "truncated_body": Outcome.ERROR,
    "redirect_loop": Outcome.ERROR,
}


def _site_prefix(target_url: str) -> str:
    return "/" + target_url.split("/", 3)[3].split("/")[0] + "/"


@pytest.mark.parametrize("fault", sorted(FAULT_KINDS))
async def test_demarches_simplifiees_under_fault(
    simulator: RunningSimulator, clock: VirtualClock, fault: str
) -> None:
    simulator.state.hang_seconds = 1.6
    target_id = "69-premiere-demande-dn"  # open at the anchor: truth is form_open
    url = load_config(DEMO_CONFIG, simulator_url=simulator.base_url).target(target_id).url
    simulator.set_faults([{"kind": fault, "path_prefix": _site_prefix(url)}])
    result = await _probe(simulator, clock, target_id)
    simulator.set_faults([])
    if fault in TRUTH_VISIBLE or fault in ("new_wording", "changed_layout"):
        assert result.outcome in (Outcome.FORM_OPEN, Outcome.UNRECOGNIZED), (fault, result)
    else:
        assert result.outcome is EXPECTED[fault][0], (fault, result)
        assert not result.outcome.is_valid
    assert simulator.state.conduct.report()["violations"] == []


@pytest.mark.parametrize("fault", sorted(FAULT_KINDS))
async def test_eappointment_under_fault(
    simulator: RunningSimulator, clock: VirtualClock, browser_pool, fault: str
) -> None:  # type: ignore[no-untyped-def]
    simulator.state.hang_seconds = 1.6
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    target = config.target("94-titre-sejour-eappointment")
    site = next(s for s in simulator.state.scenario.eappointment_sites if s.host in target.url)
    motive = next(m for m in site.motives if m.key == target.options["motive"])
    truth = (
        Outcome.AVAILABLE
        if simulator.state.eappointment.slots(site, motive).open
        else Outcome.NO_SLOT
    )
    simulator.set_faults([{"kind": fault, "path_prefix": _site_prefix(target.url)}])
    policy = PolitePolicy("observatoire/test (+https://example.org)", 0.0, 1.0)
    session = policy.session()
    try:
        result = await get_adapter("eappointment").probe(
            target, ProbeContext(session, clock, browser_pool)
        )
    finally:
        simulator.set_faults([])
        await session.aclose()
        await policy.aclose()
    if fault in TRUTH_VISIBLE or fault in ("new_wording", "changed_layout"):
        assert result.outcome in (truth, Outcome.UNRECOGNIZED), (fault, truth, result)
    else:
        assert result.outcome is BROWSER_EXPECTED[fault], (fault, truth, result)
        assert result.outcome not in (Outcome.NO_SLOT, Outcome.AVAILABLE)
    assert simulator.state.conduct.report()["violations"] == []
