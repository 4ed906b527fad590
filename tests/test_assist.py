"""Human-assisted observation: a volunteer, played by Playwright, answers RDV-Préfecture
captchas (reading them through the simulator's test hook) on the `assist` page, and
the robot records `no_slot` and `available` probes with evidence."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from observatoire.assist.observation import AssistServices
from observatoire.assist.pseudonym import BadPseudonym, check_pseudonym
from observatoire.assist.queue import assist_queue, assisted_targets
from observatoire.assist.server import AssistApp, running
from observatoire.clock import PARIS, VirtualClock
from observatoire.config import Target, load_config
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.db.models import Probe, ProbeAttempt
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.record.evidence import EvidenceStore
from observatoire.record.store import save_probe, start_attempt, sync_targets
from observatoire.robot.browser import BrowserPool
from observatoire.robot.politeness import PolitePolicy
from observatoire.simulator import RunningSimulator
from observatoire.simulator.scenario import RdvDemarche
from observatoire.simulator.server import TruthRecord
from tests.conftest import DEMO_CONFIG, REPO, REQUIRE_ALL, T0, need_chromium
from tests.factories import probe_record, robot_env

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


#: The simulator's empty views and the adapter's details, named independently.
NO_SLOT_DETAIL = {
    "empty_week": "empty_week",
    "last_week": "last_week",
    "not_displayed": "calendar_not_displayed",
}


def demarche(simulator: RunningSimulator, demarche_id: int) -> RdvDemarche:
    (site,) = simulator.state.scenario.rdv_prefecture_sites
    return next(d for d in site.demarches if d.id == demarche_id)


def check_against_truth(probe: Probe, truth: TruthRecord) -> None:
    """The probe says what the simulator meant: outcome, first slot (its day only when
    the page showed only "Prochaine disponibilité le …"), slot radios shown."""
    first = datetime.fromisoformat(truth.first_slot) if truth.first_slot else None
    if truth.state == "open":
        assert (probe.outcome, probe.detail) == ("available", ""), (probe.target_id, truth)
        assert probe.slots_count == truth.slots
        assert probe.first_slot_at == first
    elif truth.state == "next_availability":
        assert (probe.outcome, probe.detail) == ("available", "next_availability"), truth
        assert first is not None and probe.first_slot_at is not None
        assert probe.first_slot_at.astimezone(PARIS).date() == first.date()
        assert probe.first_slot_at.astimezone(PARIS).time() == time(0, 0)
    else:
        assert (probe.outcome, probe.detail) == ("no_slot", NO_SLOT_DETAIL[truth.view or ""]), (
            probe.target_id,
            truth,
        )
        assert probe.first_slot_at is None


def probes(engine: Engine) -> list[Probe]:
    with Session(engine) as session:
        return list(session.scalars(select(Probe).order_by(Probe.id)))


async def test_volunteer_records_no_slot_and_available_with_evidence(
    assist: Assist, simulator: RunningSimulator, clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    # Monday 09:05 in Paris: the Val-d'Oise procedure releases its slots at 09:00.
    clock.set(T0 - timedelta(minutes=55))
    # Allier offers slots within days here: its week grid shows them (the other two
    # procedures show later weeks or nothing).
    demarche(simulator, 4418).profile = "fluid"
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
    # The audio: the robot presses the platform's own button and relays its answer.
    href = await page.get_attribute("text=Écouter le code", "href")
    audio = await page.request.get(f"{assist.url}{href}")
    assert audio.ok and audio.headers["content-type"] == "audio/x-wav"
    assert (await audio.body())[:4] == b"RIFF"
    assert await page.locator("audio[controls]").count() == 1
    again = await page.request.get(f"{assist.url}{href}")  # a player asks twice: one fetch
    assert again.ok and (await again.body()) == (await audio.body())
    assert simulator.state.rdvpref.api_calls.count("sound") == 1

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
            check_against_truth(probe, truth)
            seen[truth.state] = seen.get(truth.state, 0) + 1
        # All observed: nothing is due until the interval has passed.
        await page.goto(f"{assist.url}/")
        assert "Rien à observer pour l'instant" in await page.inner_text("main")
        if len(seen) == 3 and round_ >= 1:
            break
        clock.advance(timedelta(hours=5))
        await page.goto(f"{assist.url}/")
    # Slots this week, slots only in a later week, and nothing: all three were read.
    assert set(seen) == {"open", "next_availability", "no_slot"}, seen

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
    assert len(attempts(assist.engine)) == 1
    await first.click("text=Abandonner")
    assert "rien n'a été enregistré" in await first.inner_text("main")
    assert probes(assist.engine) == [] and attempts(assist.engine) == []
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
        record = probe_record(
            target.id,
            when,
            result,
            requests_made=4,
            adapter="rdv_prefecture",
            adapter_version="1.0",
            mode="assisted",
            volunteer=PSEUDONYM,
        )
        save_probe(engine, evidence, record)

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
    # landing, conditions, the captcha the page's script asks the captcha service for,
    # answer, slot page; + app.js and dsfr.css once.
    assert made == [7, 5]
    assert assist.app.services.browser.assets.hits >= 8
    assert simulator.state.conduct.report()["violations"] == []


async def observe(
    assist: Assist, page: Page, simulator: RunningSimulator, target: Target
) -> tuple[Probe, TruthRecord]:
    """One observation of `target` by the signed-in volunteer: image seen, right answer."""
    assist.app.targets = [target]
    await page.goto(f"{assist.url}/")
    await page.click("text=Observer la démarche suivante")
    width = await page.eval_on_selector("img.captcha", "img => img.naturalWidth")
    assert width > 50
    await page.fill("#reponse", await hook_answer(simulator))
    await page.click("text=Valider le code")
    assert await page.inner_text("h2") == "Observation enregistrée"
    truth = [r for r in simulator.state.truth_records() if "/creneau" in r.path][-1]
    return probes(assist.engine)[-1], truth


def target_of(assist: Assist, demarche_id: int) -> Target:
    return next(t for t in assist.targets if t.url.rstrip("/").endswith(f"/{demarche_id}"))


async def test_older_captcha_widget_image_and_audio(
    assist: Assist, simulator: RunningSimulator, clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    """The widget used until late 2024: image from a blob: URL (screenshotted), sound link
    "#" whose audio an XHR with a bearer token fetches."""
    (site,) = simulator.state.scenario.rdv_prefecture_sites
    site.captcha = "v1"
    page = await signed_in_volunteer(assist, browser_pool)
    assist.app.targets = [target_of(assist, 4418)]
    await page.click("text=Observer la démarche suivante")
    assert await page.eval_on_selector("img.captcha", "img => img.naturalWidth") > 50
    href = await page.get_attribute("text=Écouter le code", "href")
    audio = await page.request.get(f"{assist.url}{href}")
    assert audio.ok and audio.headers["content-type"] == "audio/x-wav"
    assert (await audio.body())[:4] == b"RIFF"
    await page.fill("#reponse", await hook_answer(simulator))
    await page.click("text=Valider le code")
    assert await page.inner_text("h2") == "Observation enregistrée"
    truth = [r for r in simulator.state.truth_records() if "/creneau" in r.path][-1]
    check_against_truth(probes(assist.engine)[-1], truth)
    # The page's script fetched the widget's markup and the image, then (on the button)
    # the sound: nothing else.
    assert simulator.state.rdvpref.api_calls == ["html", "image", "sound"]
    assert simulator.state.conduct.report()["violations"] == []
    await page.context.close()


async def test_expired_session_brings_a_new_captcha_and_records_nothing(
    assist: Assist, simulator: RunningSimulator, clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    page = await signed_in_volunteer(assist, browser_pool)
    assist.app.targets = [target_of(assist, 4418)]
    await page.click("text=Observer la démarche suivante")
    answer = await hook_answer(simulator)
    # The volunteer answers after the platform's session has ended (30 min here).
    clock.advance(timedelta(minutes=31))
    await page.fill("#reponse", answer)
    await page.click("text=Valider le code")
    assert "session sur le site avait expiré" in await page.inner_text("[role=alert]")
    assert probes(assist.engine) == []
    assert [r.state for r in simulator.state.truth_records()][-1] == "session_expired"
    await page.fill("#reponse", await hook_answer(simulator))
    await page.click("text=Valider le code")
    assert await page.inner_text("h2") == "Observation enregistrée"
    (probe,) = probes(assist.engine)
    assert probe.attempts == 2
    truth = [r for r in simulator.state.truth_records() if "/creneau" in r.path][-1]
    check_against_truth(probe, truth)
    await page.context.close()


async def test_next_availability_with_release_banners_end_to_end(
    assist: Assist, simulator: RunningSimulator, clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    """Monday 09:05 in Paris: the Val-d'Oise procedure has just released slots 20–40 days
    ahead. The page says "Aucun créneau disponible sur cette semaine" and offers
    "Prochaine disponibilité le …": available, first slot that day, never no_slot. The
    platform's script writes no release banner there; once the batch is gone, the last
    reachable week shows them, and the look records the release they announce."""
    from observatoire.db.models import ReleaseRow

    clock.set(T0 - timedelta(minutes=55))
    (site,) = simulator.state.scenario.rdv_prefecture_sites
    site.banners = True
    site.empty_view = "last_week"  # where the real script writes the banners
    page = await signed_in_volunteer(assist, browser_pool)
    probe, truth = await observe(assist, page, simulator, target_of(assist, 1380))
    assert truth.state == "next_availability"
    check_against_truth(probe, truth)
    first_day = datetime.fromisoformat(truth.first_slot or "").date()
    assert probe.platform_message and "Prochaine disponibilité le" in probe.platform_message
    shown = await page.inner_text("[role=status]")
    assert "Créneau proposé, semaine affichée vide, prochaine disponibilité le " in shown
    assert f"le {first_day:%d/%m/%Y} (next_availability)" in shown and "None" not in shown
    # No banner beside "Prochaine disponibilité": nothing about releases is read there.
    assert (probe.release_last_at, probe.release_next_at) == (None, None)
    # 09:30: the batch is gone (its slots last at most 20 minutes); the last reachable
    # week carries the banners: weekly release on Mondays at 09:00 (Paris), slots from
    # 20 days later.
    clock.advance(timedelta(minutes=25))
    await page.click("text=Regarder à nouveau")
    assert await page.inner_text("h2") == "Observation enregistrée"
    later = probes(assist.engine)[-1]
    truth = [r for r in simulator.state.truth_records() if "/creneau" in r.path][-1]
    assert (truth.state, truth.view) == ("no_slot", "last_week")
    check_against_truth(later, truth)
    assert later.release_last_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert later.release_next_at == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    assert later.release_last_week == date(2026, 3, 16)
    assert later.release_next_week == date(2026, 3, 23)
    # The assisted flow recorded both: the release seen (banner), the next (announced).
    with Session(assist.engine) as session:
        rows = session.scalars(select(ReleaseRow).order_by(ReleaseRow.published_at)).all()
        recorded = [(r.target_id, r.published_at, r.source, r.week_start) for r in rows]
    assert recorded == [
        (later.target_id, datetime(2026, 3, 2, 8, 0, tzinfo=UTC), "banner", date(2026, 3, 16)),
        (later.target_id, datetime(2026, 3, 9, 8, 0, tzinfo=UTC), "announced", date(2026, 3, 23)),
    ]
    await page.context.close()


def test_queue_puts_imminent_announced_releases_first(engine: Engine) -> None:
    """A release announced within the next hours puts its target first, with a
    countdown, and makes it due from the announced instant."""
    from observatoire.assist.server import _countdown_fr

    cfg = load_config(DEMO_CONFIG, simulator_url="http://127.0.0.1:9")
    sync_targets(engine, cfg.targets, T0)
    a, b, c = assisted_targets(cfg.targets)
    evidence = EvidenceStore(Path("/nonexistent"))
    release = T0 + timedelta(minutes=75)

    def record(target: Target, when: datetime, result: ProbeResult) -> None:
        record = probe_record(
            target.id,
            when,
            result,
            requests_made=4,
            adapter="rdv_prefecture",
            adapter_version="2.0",
            mode="assisted",
            volunteer=PSEUDONYM,
        )
        save_probe(engine, evidence, record)

    record(a, T0 - timedelta(hours=10), ProbeResult(Outcome.NO_SLOT))
    record(b, T0 - timedelta(hours=1), ProbeResult(Outcome.NO_SLOT, release_next_at=release))
    queue = assist_queue(engine, cfg.targets, T0)
    assert [e.target.id for e in queue] == [b.id, c.id, a.id]
    assert queue[0].imminent(T0) and _countdown_fr(queue[0], T0) == "dans 1 h 15"
    assert not queue[0].is_due(T0)  # looked at an hour ago: due at the release
    assert queue[0].is_due(release) and queue[0].due_at == release
    assert _countdown_fr(queue[0], release + timedelta(minutes=12)) == "il y a 12 min"


async def test_look_again_measures_how_long_released_slots_last(
    assist: Assist, simulator: RunningSimulator, clock: VirtualClock, browser_pool: BrowserPool
) -> None:
    """Monday 09:01 in Paris, a minute after the Val-d'Oise release: the volunteer answers
    one captcha, then clicks "Regarder à nouveau" every few minutes. Each look is its own
    assisted probe; the measured survival contains the simulator's true survival; when
    the platform's session ends, a new captcha comes, never a reused one."""
    from observatoire.record.releases import survivals

    clock.set(T0 - timedelta(minutes=59))
    (site,) = simulator.state.scenario.rdv_prefecture_sites
    site.banners = True
    site.empty_view = "last_week"  # the real script's banners: on the last week only
    page = await signed_in_volunteer(assist, browser_pool)
    probe, truth = await observe(assist, page, simulator, target_of(assist, 1380))
    assert probe.outcome == "available"
    assert probe.release_last_at is None  # no banner beside the released slots
    captchas = simulator.state.rdvpref.api_calls[:]
    looks = 1
    while probes(assist.engine)[-1].outcome == "available" and looks < 8:
        clock.advance(timedelta(minutes=3))
        await page.click("text=Regarder à nouveau")
        assert await page.inner_text("h2") == "Observation enregistrée"
        looks += 1
    rows = probes(assist.engine)
    assert len(rows) == looks and rows[-1].outcome == "no_slot"
    assert all(p.mode == "assisted" and p.page_sha256 for p in rows)
    assert len({p.page_sha256 for p in rows}) == looks  # each look is its own evidence
    assert simulator.state.rdvpref.api_calls == captchas  # no new captcha while it lasted
    assert sum(1 for r in simulator.state.truth_records() if r.state == "captcha_wrong") == 0
    # The release was read from the banner of the first look without slots (the last
    # reachable week); the looks with and without slots after it bound its survival,
    # and that interval holds the truth.
    assert all(p.release_last_at is None for p in rows[:-1])
    assert rows[-1].release_last_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    now = clock.now()
    (batch,) = simulator.state.release_truth(now - timedelta(hours=1), now)
    (measured,) = [s for s in survivals(assist.engine, now) if s.published_at == batch.published_at]
    assert measured.source == "banner" and measured.high is not None
    assert measured.contains(batch.survival_seconds), (measured, batch.truth())
    assert measured.high - (measured.low or 0) <= 3 * 60 + 60
    # The calendar feeds need no token (a phone subscribes): next Monday's release.
    async with httpx.AsyncClient() as client:
        feed = await client.get(f"{assist.url}/calendrier.ics")
        dept = await client.get(f"{assist.url}/calendrier/95.ics")
        other = await client.get(f"{assist.url}/calendrier/92.ics")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    assert "DTSTART:20260309T080000Z" in feed.text and "DTSTART:20260309T080000Z" in dept.text
    assert "VEVENT" not in other.text
    # The platform's session ends: the next click brings a new captcha.
    clock.advance(timedelta(minutes=31))
    await page.click("text=Regarder à nouveau")
    assert "session sur le site a expiré" in await page.inner_text("[role=alert]")
    assert await page.locator("#reponse").count() == 1
    assert len(probes(assist.engine)) == looks  # nothing recorded for the expired look
    (started,) = attempts(assist.engine)  # but the look is under way: its row is written
    assert started.mode == "assisted"
    await page.fill("#reponse", await hook_answer(simulator))
    await page.click("text=Valider le code")
    assert await page.inner_text("h2") == "Observation enregistrée"
    assert len(probes(assist.engine)) == looks + 1
    assert attempts(assist.engine) == []  # deleted with the probe
    report = simulator.state.conduct.report()
    assert report["violations"] == [] and max(report["max_in_flight"].values()) <= 1
    await page.click("text=Fermer la session sur le site")
    assert assist.app.busy_hosts == {}
    await page.context.close()


async def test_one_observation_per_gate_not_per_spelling_of_the_host(
    engine: Engine, tmp_path: Path
) -> None:
    """Two spellings of one host (127.0.0.1 and localhost) are one gate for the sweep,
    so `assist` must hold them as one too: a second volunteer waits."""
    cfg = load_config(DEMO_CONFIG, simulator_url="http://127.0.0.1:9")
    sync_targets(engine, cfg.targets, T0)
    first, second, *_ = assisted_targets(cfg.targets)
    second = replace(second, url=second.url.replace("127.0.0.1", "localhost"))
    assert first.host != second.host and first.gate_key == second.gate_key
    policy = PolitePolicy(UA, 0.05, 10.0)
    clock = VirtualClock(T0)
    evidence = EvidenceStore(tmp_path / "ev")
    services = AssistServices(engine, evidence, policy, BrowserPool(UA), clock)
    app = AssistApp(services, [first, second])
    try:
        held = await app._reserve(PSEUDONYM)
        assert held is not None and app.busy_hosts == {held.target.gate_key: held.id}
        assert await app._reserve(PSEUDONYM) is None  # the same gate: wait
        app._free(held)
        assert app.busy_hosts == {}
        assert await app._reserve(PSEUDONYM) is not None
    finally:
        await policy.aclose()


# -- written as started (probe_attempts), like the sweep's probes -------------------------
def attempts(engine: Engine) -> list[ProbeAttempt]:
    with Session(engine) as session:
        return list(session.scalars(select(ProbeAttempt).order_by(ProbeAttempt.id)))


async def test_observation_is_written_as_started_and_finished_with_its_probe(
    engine: Engine,
    tmp_path: Path,
    simulator: RunningSimulator,
    clock: VirtualClock,
    browser_pool: BrowserPool,
) -> None:
    """From its first request to its probe, an observation has its `probe_attempts` row
    (mode assisted): a wrong answer keeps it, the stored probe deletes it, each "Regarder
    à nouveau" writes its own. The volunteer's abandon deletes it and records nothing; a
    robot failure in the middle of a step stores it as `error/interrupted`, counted in
    coverage like a sweep's probe cut short. Before: no row at any point."""
    from observatoire.assist.observation import Observation, State
    from observatoire.db.models import ProbeDay

    cfg = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    sync_targets(engine, cfg.targets, clock.now())
    first, second, third = assisted_targets(cfg.targets)
    policy = PolitePolicy(UA, 0.0, 10.0)
    services = AssistServices(engine, EvidenceStore(tmp_path / "ev"), policy, browser_pool, clock)
    try:
        observation = Observation(services, first, PSEUDONYM, keep_session=True)
        await observation.start()
        assert observation.state is State.CAPTCHA
        (row,) = attempts(engine)
        assert (row.target_id, row.mode, row.holder) == (first.id, "assisted", services.holder)
        assert row.started_at == clock.now() and probes(engine) == []
        await observation.answer("WRONG1")
        assert [a.id for a in attempts(engine)] == [row.id]
        await observation.answer(await hook_answer(simulator))
        assert observation.state is State.RECORDED and observation.can_look_again
        assert attempts(engine) == []
        clock.advance(timedelta(minutes=2))
        await observation.look_again()
        assert attempts(engine) == [] and len(probes(engine)) == 2
        await observation.close_session()

        # Abandoned in front of its captcha: nothing recorded, no row left.
        abandoned = Observation(services, second, PSEUDONYM)
        await abandoned.start()
        assert len(attempts(engine)) == 1
        await abandoned.abandon()
        assert attempts(engine) == [] and len(probes(engine)) == 2

        # The robot fails once the answer is sent: counted as interrupted, at once.
        app = AssistApp(services, cfg.targets)
        failing = Observation(services, third, PSEUDONYM)
        await failing.start()

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("a bug in the adapter")

        failing.adapter = replace_method(failing.adapter, "submit_answer", broken)
        with pytest.raises(RuntimeError):
            await app._step(failing, failing.answer("ABC123"))
        assert failing.state is State.FAILED and failing.finished
        assert attempts(engine) == []
        interrupted = probes(engine)[-1]
        assert (interrupted.target_id, interrupted.outcome, interrupted.detail) == (
            third.id,
            "error",
            "interrupted",
        )
        assert interrupted.mode == "assisted" and not interrupted.followup
        with Session(engine) as session:
            day = session.get(ProbeDay, (third.id, "2026-03-02"))
        assert day is not None and (day.error, day.assisted) == (1, 1)
    finally:
        await policy.aclose()


def replace_method(adapter: object, name: str, method: object) -> Any:
    """A copy of the (shared) adapter instance with one step replaced."""
    broken = copy.copy(adapter)
    setattr(broken, name, method)
    return broken


async def test_kill_mid_observation_leaves_an_attempt_counted_as_interrupted(
    tmp_path: Path, live_simulator: RunningSimulator
) -> None:
    """`observatoire assist` killed (-9) while a volunteer's captcha is shown: the
    observation's row stays in `probe_attempts`, and the next start of `assist` stores it
    as an `error/interrupted` assisted probe, in the rollups. Before: no trace at all."""
    need_chromium()
    env = robot_env(tmp_path, DEMO_CONFIG.read_text("utf-8"))
    engine = make_engine(env["OBSERVATOIRE_DATABASE_URL"])

    def serve() -> tuple[subprocess.Popen[str], str, str]:
        """A started `assist`, its address with the token, and what it said before."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "observatoire.cli", "assist", "-c", env["CFG"]]
            + ["--simulator-url", live_simulator.base_url, "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        said = ""
        for line in proc.stdout:
            if "?jeton=" in line:
                return proc, line.strip(), said
            said += line
        proc.kill()
        raise AssertionError(proc.communicate()[1][-3000:])

    proc, entry, _ = serve()
    try:
        async with httpx.AsyncClient(follow_redirects=True, timeout=60) as client:
            assert (await client.get(entry)).status_code == 200
            base = entry.split("/?")[0]
            await client.post(f"{base}/pseudonyme", data={"pseudonyme": PSEUDONYM})
            page = await client.post(f"{base}/suivante")
            assert "/observation/" in str(page.url) and 'id="reponse"' in page.text
        (row,) = attempts(engine)
        assert row.mode == "assisted" and row.holder.endswith(f":{proc.pid}")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert [a.id for a in attempts(engine)] == [row.id]  # the kill left it
    assert probes(engine) == []
    # A dead daemon's probe is left to `run` and `probe` (they probe its target first).
    robots = start_attempt(
        engine, "93-titre-sejour-9845", "gone:1", datetime.now(UTC) - timedelta(hours=2),
        "legacy_booking", "1.0",
    )  # fmt: skip

    proc, _, said = serve()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "1 observation(s) interrupted by a previous run" in said
    assert [a.id for a in attempts(engine)] == [robots]
    (probe,) = probes(engine)
    assert (probe.target_id, probe.outcome, probe.detail, probe.mode) == (
        row.target_id,
        "error",
        "interrupted",
        "assisted",
    )
    assert probe.started_at == row.started_at
    with engine.connect() as conn:
        counted = conn.execute(text("SELECT SUM(error), SUM(assisted) FROM probe_days")).one()
    assert tuple(counted) == (1, 1)
    engine.dispose()
