"""Human-assisted observation: a volunteer, played by Playwright, answers RDV-Préfecture
captchas (reading them through the simulator's test hook) on the `assist` page, and
the robot records `no_slot` and `available` probes with evidence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from observatoire.assist.observation import AssistServices
from observatoire.assist.pseudonym import BadPseudonym, check_pseudonym
from observatoire.assist.queue import assist_queue, assisted_targets
from observatoire.assist.server import AssistApp, running
from observatoire.browser import BrowserPool
from observatoire.clock import VirtualClock
from observatoire.config import Target, load_config
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.db.models import Probe
from observatoire.evidence import EvidenceStore
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.politeness import PolitePolicy
from observatoire.simulator import RunningSimulator
from observatoire.store import ProbeRecord, save_probe, sync_targets
from tests.conftest import DEMO_CONFIG, REQUIRE_ALL, T0

UA = "observatoire/test (+https://example.org/contact)"
AXE = Path(__file__).resolve().parents[1] / "node" / "node_modules" / "axe-core" / "axe.min.js"
PSEUDONYM = "permanence-lundi"


@dataclass
class Assist:
    url: str
    app: AssistApp
    engine: Engine
    evidence: EvidenceStore
    targets: list[Target]


@pytest.fixture
async def assist(
    tmp_path: Path,
    simulator: RunningSimulator,
    clock: VirtualClock,
    browser_pool: BrowserPool,
) -> AsyncIterator[Assist]:
    url = f"sqlite:///{tmp_path / 'assist.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    cfg = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    sync_targets(engine, cfg.targets, clock.now())
    policy = PolitePolicy(UA, 0.05, 10.0)
    evidence = EvidenceStore(tmp_path / "evidence")
    services = AssistServices(engine, evidence, policy, browser_pool, clock)
    app = AssistApp(services, cfg.targets)
    try:
        async with running(app, "127.0.0.1", 0) as base:
            yield Assist(base, app, engine, evidence, assisted_targets(cfg.targets))
    finally:
        await policy.aclose()
        engine.dispose()


async def volunteer_page(browser_pool: BrowserPool) -> Page:
    """The volunteer's own browser tab: no robot routing, CSP bypassed only so axe-core
    can be injected."""
    browser = await browser_pool.browser()
    context = await browser.new_context(bypass_csp=True, locale="fr-FR")
    return await context.new_page()


async def signed_in_volunteer(assist: Assist, browser_pool: BrowserPool) -> Page:
    """A volunteer's tab past the token, with the pseudonym set."""
    page = await volunteer_page(browser_pool)
    await page.goto(f"{assist.url}/?jeton={assist.app.token}")
    await page.fill("#pseudonyme", PSEUDONYM)
    await page.click("text=Enregistrer le pseudonyme")
    return page


async def hook_answer(simulator: RunningSimulator) -> str:
    """What the volunteer reads on the image: the simulator's test hook."""
    async with httpx.AsyncClient() as client:
        latest = (await client.get(f"{simulator.base_url}/_sim/captcha/latest")).json()
    return str(latest["answer"])


async def axe_violations(page: Page) -> list[object]:
    if not AXE.exists():
        if REQUIRE_ALL:
            pytest.fail("CI needs axe-core (npm): run scripts/setup.sh")
        return []
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => await axe.run()")
    return [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]


def probes(engine: Engine) -> list[Probe]:
    with Session(engine) as session:
        return list(session.scalars(select(Probe).order_by(Probe.id)))


async def test_volunteer_records_no_slot_and_available_with_evidence(
    assist: Assist, simulator: RunningSimulator, clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    # Monday 09:05 in Paris: the Val-d'Oise procedure releases its slots at 09:00.
    clock.set(T0 - timedelta(minutes=55))
    page = await volunteer_page(browser_pool)

    # Without the token: refused.
    response = await page.goto(f"{assist.url}/")
    assert response is not None and response.status == 403
    assert "Accès réservé" in await page.inner_text("h1")

    await page.goto(f"{assist.url}/?jeton={assist.app.token}")
    assert page.url == f"{assist.url}/"
    assert await page.get_attribute("html", "lang") == "fr"
    assert await page.locator("tbody tr").count() == len(assist.targets) == 3
    assert await page.locator("text=jamais observée").count() == 3
    assert await axe_violations(page) == []

    # A pseudonym that looks like a name or an e-mail is refused.
    await page.fill("#pseudonyme", "jean.dupont@example.org")
    await page.click("text=Enregistrer le pseudonyme")
    assert "pseudonyme de 2 à 40" in await page.inner_text("[role=alert]")
    await page.fill("#pseudonyme", PSEUDONYM)
    await page.click("text=Enregistrer le pseudonyme")

    # First observation: a wrong answer first (nothing recorded, a new captcha).
    await page.click("text=Observer la démarche suivante")
    assert "/observation/" in page.url
    first_captcha = await hook_answer(simulator)
    width = await page.eval_on_selector("img.captcha", "img => img.naturalWidth")
    assert width > 50  # the image taken from the robot's browser reached the volunteer
    assert await axe_violations(page) == []
    await page.fill("#reponse", "WRONG1")
    await page.click("text=Valider le code")
    assert "refusé ce code" in await page.inner_text("[role=alert]")
    assert probes(assist.engine) == []
    assert await hook_answer(simulator) != first_captcha
    href = await page.get_attribute("text=Écouter le code", "href")
    audio = await page.request.get(f"{assist.url}{href}")
    assert audio.ok and audio.headers["content-type"] == "audio/wav"

    seen: dict[str, int] = {}
    for round_ in range(6):
        for _ in assist.targets:
            if "/observation/" not in page.url or await page.locator("#reponse").count() == 0:
                await page.click("text=Observer la démarche suivante")
            await page.fill("#reponse", (await hook_answer(simulator)).lower())
            await page.click("text=Valider le code")
            assert await page.inner_text("h2") == "Observation enregistrée"
            if round_ == 0:
                assert await axe_violations(page) == []
            probe = probes(assist.engine)[-1]
            truth = [r for r in simulator.state.truth_records() if "/creneau" in r.path][-1]
            expected = "available" if truth.state == "open" else "no_slot"
            assert probe.outcome == expected, (probe.target_id, truth)
            if expected == "available":
                assert probe.slots_count == truth.slots
                assert probe.first_slot_at == datetime.fromisoformat(truth.first_slot or "")
            seen[expected] = seen.get(expected, 0) + 1
        # All observed: nothing is due until the interval has passed.
        await page.goto(f"{assist.url}/")
        assert "Rien à observer pour l'instant" in await page.inner_text("main")
        if len(seen) == 2 and round_ >= 1:
            break
        clock.advance(timedelta(hours=5))
        await page.goto(f"{assist.url}/")
    assert set(seen) == {"available", "no_slot"}, seen

    rows = probes(assist.engine)
    assert all(p.mode == "assisted" and p.volunteer == PSEUDONYM for p in rows)
    assert all(p.adapter == "rdv_prefecture" for p in rows)
    assert rows[0].attempts == 2  # one wrong answer, then the right one
    for p in rows:
        assert p.page_sha256 and p.screenshot_sha256
        html = assist.evidence.get(p.page_sha256, "html").decode()
        assert "Observation assistée" in html and PSEUDONYM in html
        assert assist.evidence.get(p.screenshot_sha256, "png")[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.final_url and p.final_url.endswith("/creneau/")
    report = simulator.state.conduct.report()
    assert report["violations"] == []
    assert max(report["max_in_flight"].values()) <= 1
    await page.context.close()


async def test_abandon_and_one_observation_per_host(
    assist: Assist, browser_pool: BrowserPool
) -> None:
    first = await signed_in_volunteer(assist, browser_pool)
    second = await signed_in_volunteer(assist, browser_pool)
    await first.click("text=Observer la démarche suivante")
    assert await first.locator("#reponse").count() == 1
    # Every assisted target is on the same host: a second volunteer must wait.
    await second.click("text=Observer la démarche suivante")
    assert "une seule observation à la fois par site" in await second.inner_text("[role=alert]")
    await first.click("text=Abandonner")
    assert "rien n'a été enregistré" in await first.inner_text("main")
    assert probes(assist.engine) == []
    await second.click("text=Observer la démarche suivante")
    assert await second.locator("#reponse").count() == 1
    await first.context.close()
    await second.context.close()


async def test_missing_procedure_is_recorded_without_a_captcha(
    assist: Assist, simulator: RunningSimulator, browser_pool: BrowserPool
) -> None:
    target = assist.targets[0]
    bad = replace(target, url=target.url.replace("/demarche/", "/demarche/9"))
    assist.app.targets = [bad]
    page = await signed_in_volunteer(assist, browser_pool)
    await page.click("text=Observer la démarche suivante")
    assert await page.inner_text("h2") == "Observation enregistrée"
    (probe,) = probes(assist.engine)
    assert probe.outcome == "procedure_missing" and probe.mode == "assisted"
    assert simulator.state.conduct.report()["violations"] == []
    await page.context.close()


def test_pseudonyms() -> None:
    assert check_pseudonym("  benevole-2 ") == "benevole-2"
    for bad in ("a", "Jean Dupont", "x@y.fr", "tel0612345678", "-lead", "x" * 41):
        with pytest.raises(BadPseudonym):
            check_pseudonym(bad)


def test_queue_orders_never_observed_then_most_overdue(engine: Engine) -> None:
    cfg = load_config(DEMO_CONFIG, simulator_url="http://127.0.0.1:9")
    sync_targets(engine, cfg.targets, T0)
    chosen = assisted_targets(cfg.targets)
    assert {t.platform for t in chosen} == {"rdv_prefecture"} and len(chosen) == 3
    evidence = EvidenceStore(Path("/nonexistent"))  # no evidence bytes: never written

    def record(target: Target, hours_ago: float) -> None:
        when = T0 - timedelta(hours=hours_ago)
        result = ProbeResult(Outcome.NO_SLOT)
        save_probe(
            engine,
            evidence,
            ProbeRecord(
                target.id,
                None,
                when,
                when,
                result,
                4,
                1,
                10,
                "rdv_prefecture",
                "1.0",
                mode="assisted",
                volunteer=PSEUDONYM,
            ),
        )

    a, b, c = chosen
    record(a, hours_ago=10)  # 240-minute interval: 6 h overdue
    record(b, hours_ago=1)  # not due for 3 h
    queue = assist_queue(engine, cfg.targets, T0)
    assert [e.target.id for e in queue] == [c.id, a.id, b.id]
    assert queue[0].last_probe_at is None and queue[0].is_due(T0)
    assert queue[1].overdue(T0) == timedelta(hours=6)
    assert not queue[2].is_due(T0) and queue[2].due_at == T0 + timedelta(hours=3)
    assert queue[1].last_probe_at is not None and queue[1].last_probe_at.tzinfo is not None


async def test_unreachable_platform_is_an_error_and_frees_the_host(
    assist: Assist, browser_pool: BrowserPool
) -> None:
    target = assist.targets[0]
    down = replace(target, url="http://127.0.0.1:9/rdvpref/reservation/demarche/1/")
    assist.app.targets = [down]
    page = await signed_in_volunteer(assist, browser_pool)
    await page.click("text=Observer la démarche suivante")
    assert await page.inner_text("h2") == "Observation enregistrée"
    (probe,) = probes(assist.engine)
    assert probe.outcome == "error" and probe.detail.startswith("network")
    assert probe.page_sha256 is None  # nothing loaded, nothing to keep
    assert assist.app.busy_hosts == {}
    await page.context.close()


async def test_static_assets_are_fetched_once_per_process(
    assist: Assist, simulator: RunningSimulator, clock: VirtualClock
) -> None:
    """The platform's scripts and stylesheet load on every page: the robot fetches them
    once, then serves them from its cache (fewer requests, less waiting)."""
    from observatoire.assist.observation import Observation, State

    made = []
    for _ in range(2):
        observation = Observation(assist.app.services, assist.targets[0], PSEUDONYM)
        await observation.start()
        assert observation.state is State.CAPTCHA
        await observation.answer(await hook_answer(simulator))
        assert observation.state is State.RECORDED
        made.append(observation.requests_made)
        clock.advance(timedelta(hours=5))
    # landing, conditions, captcha image, answer, slot page; + app.js and dsfr.css once.
    assert made == [7, 5]
    assert assist.app.services.browser.assets.hits >= 8
    assert simulator.state.conduct.report()["violations"] == []
