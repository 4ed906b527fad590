"""The Playwright adapters (eAppointment, scripted) and the démarches-simplifiées adapter
against the live simulator in real Chromium, compared with the simulator's ground truth."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from observatoire.adapters import ProbeContext, get_adapter
from observatoire.clock import VirtualClock
from observatoire.config import Target, load_config
from observatoire.outcomes import Outcome
from observatoire.robot.browser import BrowserPool
from observatoire.robot.politeness import PolitePolicy
from observatoire.simulator import RunningSimulator

from .conftest import DEMO_CONFIG, T0

UA = "observatoire/test (+https://example.org/contact)"


async def probe(
    target: Target, clock: VirtualClock, pool: BrowserPool | None = None, timeout: float = 10.0
):
    policy = PolitePolicy(UA, 0.0, timeout)
    session = policy.session()
    try:
        result = await get_adapter(target.platform).probe(
            target, ProbeContext(session, clock, pool)
        )
    finally:
        await session.aclose()
        await policy.aclose()
    return result, session.requests_made


def truth_after(sim: RunningSimulator, before: int) -> list:
    return [r for r in sim.state.truth_records()[before:] if r.state in ("open", "no_slot")]


async def test_eappointment_matches_ground_truth(
    simulator: RunningSimulator, clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    target = config.target("94-titre-sejour-eappointment")
    seen = set()
    start = clock.now()
    for hours in range(0, 96, 7):
        clock.set(start + timedelta(hours=hours))
        before = len(simulator.state.truth_records())
        result, requests = await probe(target, clock, browser_pool)
        truth = truth_after(simulator, before)
        assert len(truth) == 1, (result, truth)
        expected = Outcome.AVAILABLE if truth[0].state == "open" else Outcome.NO_SLOT
        assert result.outcome is expected, (result, truth)
        assert result.page and result.screenshot and result.screenshot[:4] == b"\x89PNG"
        assert requests >= 4
        if expected is Outcome.AVAILABLE:
            assert result.first_slot_at == datetime.fromisoformat(truth[0].first_slot)
        else:
            assert b"Aucun rendez-vous n" in result.page  # the alert, in the robot's stamp
            # The raw alert, typos included, is kept with the probe.
            assert result.platform_message is not None
            assert "selectionnnés" in result.platform_message
        seen.add(result.outcome)
        if len(seen) == 2:
            break
    assert seen == {Outcome.AVAILABLE, Outcome.NO_SLOT}
    report = simulator.state.conduct.report()
    assert report["violations"] == []
    assert set(report["max_in_flight"].values()) == {1}
    assert report["user_agents"] == [UA]


async def test_eappointment_missing_motive(
    simulator: RunningSimulator, clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    target = config.target("69-naturalisation-eappointment")
    clock.set(clock.now() - timedelta(days=42))  # inside the motive's "missing" period
    result, _ = await probe(target, clock, browser_pool)
    assert (result.outcome, result.detail) == (Outcome.PROCEDURE_MISSING, "no_motive_offered")


async def test_eappointment_rejected_postal_code_is_a_configuration_error(
    simulator: RunningSimulator, clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    good = config.target("94-titre-sejour-eappointment")
    bad = dataclasses.replace(good, options={**good.options, "postal_code": "75001"})
    result, _ = await probe(bad, clock, browser_pool)
    assert (result.outcome, result.detail) == (Outcome.ERROR, "bad_postal_code")
    assert result.platform_message == "Veuillez saisir un code postal valide."
    assert simulator.state.conduct.report()["violations"] == []


async def test_eappointment_no_slot_text_is_per_instance(
    clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    """Another instance sends its own alert: with the default list it is unrecognized
    (kept verbatim); listed in the target's options it is no_slot."""
    from observatoire.simulator import start_simulator
    from observatoire.simulator.scenario import load_scenario

    other = "Il n'y a pas de rendez-vous disponible pour ce service."
    scenario = load_scenario().model_copy(update={"anchor": T0}, deep=True)
    scenario.profiles["never"] = scenario.profiles["desert"].model_copy(
        update={"open_probability": 0.0}
    )
    site = scenario.eappointment_sites[0]
    site.no_slot_message = other
    for motive in site.motives:
        motive.profile = "never"
    with start_simulator(scenario, clock) as sim:
        config = load_config(DEMO_CONFIG, simulator_url=sim.base_url)
        target = config.target("94-titre-sejour-eappointment")
        result, _ = await probe(target, clock, browser_pool)
        assert (result.outcome, result.detail, result.platform_message) == (
            Outcome.UNRECOGNIZED,
            "dialog",
            other,
        )
        listed = dataclasses.replace(
            target, options={**target.options, "no_slot_messages": [other]}
        )
        result, _ = await probe(listed, clock, browser_pool)
        assert (result.outcome, result.platform_message) == (Outcome.NO_SLOT, other)


async def test_eappointment_without_browser_is_an_error(
    simulator: RunningSimulator, clock: VirtualClock
) -> None:
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    result, _ = await probe(config.target("94-titre-sejour-eappointment"), clock, None)
    assert (result.outcome, result.detail) == (Outcome.ERROR, "browser_unavailable")


async def test_scripted_adapter_drives_a_site_from_yaml_steps(
    simulator: RunningSimulator, clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    base = f"{simulator.base_url}/rdv-etrangers-94.interieur.gouv.fr/eAppointmentpref94"
    options = {
        "steps": [
            {"fill": "#CPId", "value": "94000"},
            {"click": "input[value=Continuer]"},
            {"wait_for": "#nextButtonId"},
            {"check": "input[value=ETUDIANT]"},
            {"click": "#nextButtonId"},
            {"wait_for": "text=Choix de la date", "timeout_s": 1.5},
        ],
        "expect": [
            {"text": "Aucun rendez-vous n'est possible", "outcome": "no_slot", "in_dialog": True},
            {"text": "Choix de la date du rendez-vous", "outcome": "available"},
        ],
        "slot_selector": ".soonestText",
    }
    target = Target(
        "94-scripted",
        "94",
        "Val-de-Marne",
        "Créteil",
        "etudiant",
        "Étudiant",
        "Étudiant",
        "scripted",
        f"{base}/element/jsp/specific/pref94.jsp",
        True,
        60,
        None,
        options,
    )
    outcomes = set()
    start = clock.now()
    for hours in range(0, 48, 5):
        if Outcome.AVAILABLE in outcomes and Outcome.NO_SLOT in outcomes:
            break
        clock.set(start + timedelta(hours=hours))
        before = len(simulator.state.truth_records())
        result, _ = await probe(target, clock, browser_pool)
        truth = truth_after(simulator, before)
        assert truth, result
        expected = Outcome.AVAILABLE if truth[0].state == "open" else Outcome.NO_SLOT
        if expected is Outcome.NO_SLOT:
            # The wait for the slot page times out; the alert decides.
            assert result.outcome in (Outcome.NO_SLOT, Outcome.UNRECOGNIZED), result
        else:
            assert result.outcome is Outcome.AVAILABLE, result
            assert result.first_slot_at == datetime.fromisoformat(truth[0].first_slot)
        outcomes.add(result.outcome)
    assert Outcome.AVAILABLE in outcomes
    assert simulator.state.conduct.report()["violations"] == []


async def test_scripted_adapter_refuses_personal_fields_at_run_time(
    clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    # The selector looks harmless; the live field is named like a personal one.
    page = "data:text/html,<form><label for=a>Nom</label><input id=a name=nom type=text></form>"
    target = Target(
        "94-scripted",
        "94",
        "V",
        "C",
        "p",
        "P",
        "L",
        "scripted",
        page,
        True,
        60,
        None,
        {
            "steps": [{"fill": "form input[type=text]", "value": "Dupont"}],
            "expect": [{"text": "Nom", "outcome": "no_slot"}],
        },
    )
    result, _ = await probe(target, clock, browser_pool)
    assert (result.outcome, result.detail) == (Outcome.UNRECOGNIZED, "step0:personal_field")


def test_scripted_config_refuses_personal_fields() -> None:
    import pytest
    from pydantic import ValidationError

    from observatoire.platforms import ScriptedOptions

    expect = [{"text": "Aucun créneau", "outcome": "no_slot"}]
    for step in (
        {"fill": "#email", "value": "x"},
        {"fill": "input[name=prenom]", "value": "x"},
        {"fill": "#cp", "value": "jean@example.org"},
        {"fill": "#cp", "value": "+33 6 12 34 56 78"},
        {"click": "a", "check": "b"},
    ):
        with pytest.raises(ValidationError):
            ScriptedOptions.model_validate({"steps": [step], "expect": expect})
    ScriptedOptions.model_validate(
        {"steps": [{"fill": "input[name=CP]", "value": "38000"}], "expect": expect}
    )


async def test_demarches_simplifiees_states(
    simulator: RunningSimulator, clock: VirtualClock
) -> None:
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    rhone = config.target("69-premiere-demande-dn")
    meurthe = config.target("54-renouvellement-dn")
    start = clock.now()
    assert (await probe(rhone, clock))[0].outcome is Outcome.FORM_OPEN
    clock.set(start - timedelta(days=20))  # closed period: 302 to /fermeture/<slug>
    result, _ = await probe(rhone, clock)
    closed_since = (T0 - timedelta(days=25)).date().isoformat()
    assert (result.outcome, result.detail) == (
        Outcome.PROCEDURE_MISSING,
        f"form_closed:{closed_since}",
    )
    assert result.final_url and "/fermeture/premiere-demande-titre-sejour-prefecture-rhone" in (
        result.final_url
    )
    clock.set(start - timedelta(days=5))  # absent period: 302 to the home page + flash
    result, _ = await probe(meurthe, clock)
    assert (result.outcome, result.detail) == (Outcome.PROCEDURE_MISSING, "form_absent")
    assert result.http_status == 200 and result.final_url.endswith("/www.demarches-simplifiees.fr/")
    # The démarche that was replaced: its successor is read, and named in the detail.
    clock.set(start)
    old = dataclasses.replace(
        rhone,
        url=rhone.url.replace(
            "premiere-demande-titre-sejour-prefecture-rhone", "titre-sejour-rhone-2024"
        ),
    )
    result, _ = await probe(old, clock)
    assert (result.outcome, result.detail) == (
        Outcome.FORM_OPEN,
        "form_open;replaced_by:premiere-demande-titre-sejour-prefecture-rhone",
    )
    assert simulator.state.conduct.report()["violations"] == []


async def test_httpx_evidence_renders_to_a_stamped_png(browser_pool: BrowserPool) -> None:
    from datetime import UTC

    from observatoire.record.evidence_render import render_png, stamped_html

    page = (
        "<html><body><h2>Vérification de disponibilité</h2><p>Il n'existe plus de plage "
        "horaire libre</p><img src='http://example.org/x.png'><script>document.body."
        "innerHTML='changed'</script></body></html>"
    ).encode()
    when = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    html = stamped_html(page, "https://www.x.gouv.fr/booking/create/1/2", when)
    assert "02/03/2026 à 10:00:00 (heure de Paris)" in html and "<script" not in html
    png = await render_png(browser_pool, page, "https://www.x.gouv.fr/booking/create/1/2", when)
    assert png[:4] == b"\x89PNG" and len(png) > 2000


async def test_browser_is_relaunched_after_a_crash(
    simulator: RunningSimulator, clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    target = config.target("94-titre-sejour-eappointment")
    first, _ = await probe(target, clock, browser_pool)
    assert first.outcome in (Outcome.AVAILABLE, Outcome.NO_SLOT)
    await (await browser_pool.browser()).close()  # as if Chromium died
    second, _ = await probe(target, clock, browser_pool)
    assert second.outcome is first.outcome
    assert browser_pool.launches == 2
