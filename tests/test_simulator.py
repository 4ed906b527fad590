"""The simulator itself: faithful pages, determinism, conduct counters, scenarios."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError

from observatoire.clock import VirtualClock
from observatoire.simulator import RunningSimulator, start_simulator
from observatoire.simulator.availability import slot_state
from observatoire.simulator.scenario import Profile, Scenario, load_scenario

from .conftest import T0

LEGACY = "/www.hauts-de-seine.gouv.fr/booking/create/12083"


def client(sim: RunningSimulator) -> httpx.Client:
    return httpx.Client(base_url=sim.base_url, headers={"User-Agent": "observatoire/test"})


def test_legacy_flow_is_faithful(simulator: RunningSimulator) -> None:
    c = client(simulator)
    page = c.get(f"{LEGACY}/0")
    assert page.status_code == 200
    assert 'id="FormBookingCreate"' in page.text and 'id="condition"' in page.text
    assert "Cordonnées personnelles" in page.text  # the original's typo
    assert "eZSESSID=" in page.headers["set-cookie"]
    step = c.post(f"{LEGACY}/0", data={"condition": "on", "nextButton": "x"})
    assert (step.status_code, step.headers["location"]) == (302, f"{LEGACY}/1")
    counters = c.get(f"{LEGACY}/1").text
    assert "Choix de la nature du rendez-vous" in counters
    assert re.findall(r'name="planning" id="planning(\d+)"', counters) == [
        "14673",
        "14806",
        "14932",
    ]
    # A single-counter form skips the counter choice.
    single = "/pprdv.interieur.gouv.fr/booking/create/948"
    c.get(f"{single}/0")
    assert c.post(f"{single}/0", data={"condition": "on"}).headers["location"] == f"{single}/2"
    result = c.get(f"{single}/2").text
    assert "Vérification de disponibilité" in result
    assert simulator.state.conduct.report()["violations"] == []


def test_reaching_forbidden_steps_is_a_violation(simulator: RunningSimulator) -> None:
    c = client(simulator)
    c.get(f"{LEGACY}/0")
    c.post(f"{LEGACY}/0", data={"condition": "on"})
    c.post(f"{LEGACY}/1", data={"planning": "14932"})
    c.get(f"{LEGACY}/3")
    c.post("/www.hauts-de-seine.gouv.fr/ezjscore/call/bookingserver::captcha")
    c.post(f"{LEGACY}/5", data={"eZBookingAdditionalField_value_1": "x", "email": "a@b.c"})
    violations = simulator.state.conduct.report()["violations"]
    assert any("past the availability result" in v for v in violations)
    assert any("captcha endpoint" in v for v in violations)
    assert any("personal data" in v for v in violations)


def test_rdv_prefecture_captcha_paths(simulator: RunningSimulator) -> None:
    c = client(simulator)
    base = "/www.rdv-prefecture.interieur.gouv.fr/rdvpref/reservation/demarche/4418"
    assert "Prendre un rendez-vous" in c.get(f"{base}/").text
    cgu = c.get(f"{base}/cgu/").text
    assert "<rdv-captchetat" in cgu and 'id="captchaFormulaireExtInput"' in cgu
    assert 'id="captchaFR_SoundLink"' in cgu
    captcha_id = re.search(r'name="captchaId" value="(\w+)"', cgu).group(1)
    answer = simulator.state.rdvpref.answer(captcha_id)
    assert answer not in cgu  # never readable from the page
    image = c.get(f"{base}/captcha/{captcha_id}.svg")
    assert image.headers["content-type"] == "image/svg+xml"
    wrong = c.post(
        f"{base}/_validerCaptcha",
        data={"captchaId": captcha_id, "captchaUsercode": "NOPE"},
        follow_redirects=True,
    )
    assert "error=invalidCaptcha" in str(wrong.url) and "est incorrect" in wrong.text
    captcha_id = re.search(r'name="captchaId" value="(\w+)"', wrong.text).group(1)
    hook = c.get(f"/_sim/captcha/{captcha_id}").json()["answer"]
    slots = c.post(
        f"{base}/_validerCaptcha",
        data={"captchaId": captcha_id, "captchaUsercode": hook.lower()},
        follow_redirects=True,
    )
    assert str(slots.url).endswith("/creneau/")
    assert "Aucun créneau disponible" in slots.text or 'id="trhId_' in slots.text
    assert simulator.state.conduct.report()["violations"] == []
    c.get(f"{base}/informations/")
    assert any("personal data page" in v for v in simulator.state.conduct.report()["violations"])


def test_same_seed_same_ground_truth() -> None:
    def run() -> list[tuple[str, str | None, int | None]]:
        clock = VirtualClock(T0)
        scenario = load_scenario().model_copy(update={"anchor": T0})
        with start_simulator(scenario, clock) as sim:
            c = client(sim)
            for hours in range(0, 72, 5):
                clock.set(T0 + timedelta(hours=hours))
                c.cookies.clear()
                c.get(f"{LEGACY}/0")
                c.post(f"{LEGACY}/0", data={"condition": "on"})
                c.post(f"{LEGACY}/1", data={"planning": "14806"})
                c.get(f"{LEGACY}/2")
            return [(r.state, r.first_slot, r.slots) for r in sim.state.truth_records()]

    first, second = run(), run()
    assert first == second
    assert {s for s, _, _ in first} >= {"open", "no_slot"}


def test_release_events_and_hour_factors() -> None:
    profile = Profile.model_validate(
        {
            "open_probability": 0.0,
            "releases": [{"weekday": 0, "time": "09:00", "minutes": 20}],
        }
    )
    monday_9h05 = datetime(2026, 3, 2, 8, 5, tzinfo=UTC)  # 09:05 in Paris
    assert slot_state(1, "k", monday_9h05, profile).open
    assert not slot_state(1, "k", monday_9h05 + timedelta(minutes=20), profile).open
    assert not slot_state(1, "k", monday_9h05 + timedelta(days=1), profile).open
    night_off = Profile.model_validate(
        {"open_probability": 1.0, "hour_factor": [0.0] * 8 + [1.0] * 16}
    )
    assert not slot_state(1, "k", datetime(2026, 3, 2, 2, tzinfo=UTC), night_off).open
    assert slot_state(1, "k", datetime(2026, 3, 2, 10, tzinfo=UTC), night_off).open


def test_conduct_counts_rate_and_concurrency(simulator: RunningSimulator) -> None:
    c = client(simulator)
    for _ in range(5):
        c.get(f"{LEGACY}/0")
    report = simulator.state.conduct.report()
    host = next(iter(report["requests"]))
    assert report["max_requests_per_second"][host] >= 5
    assert report["max_in_flight"][host] == 1


def test_scenario_validation() -> None:
    with pytest.raises(ValidationError, match="unknown profile"):
        Scenario.model_validate(
            {
                "profiles": {},
                "legacy_sites": [
                    {
                        "host": "h",
                        "prefecture": "p",
                        "forms": [
                            {
                                "id": 1,
                                "title": "t",
                                "plannings": [{"id": 2, "label": "l", "profile": "nope"}],
                            }
                        ],
                    }
                ],
            }
        )
    with pytest.raises(ValidationError, match="unknown fault"):
        Scenario.model_validate({"profiles": {}, "faults": [{"kind": "gremlins"}]})


def test_simulator_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError):
        start_simulator(host="0.0.0.0")


def test_overloaded_page_is_blocked_for_the_robot(
    simulator: RunningSimulator, clock: VirtualClock
) -> None:
    import asyncio

    from observatoire.adapters import ProbeContext, get_adapter
    from observatoire.config import load_config
    from observatoire.politeness import PolitePolicy

    from .conftest import DEMO_CONFIG

    target = load_config(DEMO_CONFIG, simulator_url=simulator.base_url).target(
        "75-admission-exceptionnelle-948"
    )
    clock.set(T0 - timedelta(days=7.8))

    async def go():  # type: ignore[no-untyped-def]
        policy = PolitePolicy("observatoire/test", 0.0, 5.0)
        try:
            return await get_adapter("legacy_booking").probe(
                target, ProbeContext(policy.session(), clock)
            )
        finally:
            await policy.aclose()

    result = asyncio.run(go())
    assert (result.outcome.value, result.detail) == ("blocked", "overloaded")
