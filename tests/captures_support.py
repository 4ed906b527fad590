"""Shared by tests/test_captures.py and tests/test_extension.py: an assist server (with
the capture routes) on a fresh SQLite database, the demo targets on the simulator, and
a person's walk through the RDV-Préfecture flow up to the slot page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.async_api import Page
from sqlalchemy import Engine

from observatoire.assist.observation import AssistServices
from observatoire.assist.server import AssistApp, running
from observatoire.clock import VirtualClock
from observatoire.config import Target, load_config
from observatoire.db import make_engine
from observatoire.db.migrate import upgrade
from observatoire.record.evidence import EvidenceStore
from observatoire.record.store import sync_targets
from observatoire.robot.browser import BrowserPool
from observatoire.robot.politeness import PolitePolicy
from observatoire.simulator import RunningSimulator
from tests.conftest import DEMO_CONFIG

UA = "observatoire/test (+https://example.org/contact)"
RDV = "www.rdv-prefecture.interieur.gouv.fr/rdvpref/reservation/demarche"


@dataclass
class Server:
    url: str
    engine: Engine
    evidence: EvidenceStore
    targets: list[Target]
    app: AssistApp


@asynccontextmanager
async def capture_server(
    tmp_path: Path, simulator: RunningSimulator, clock: VirtualClock
) -> AsyncIterator[Server]:
    url = f"sqlite:///{tmp_path / 'captures.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    cfg = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    sync_targets(engine, cfg.targets, clock.now())
    policy = PolitePolicy(UA, 0.05, 10.0)
    evidence = EvidenceStore(tmp_path / "evidence")
    pool = BrowserPool(UA)  # never launched: captures come from the person's browser
    app = AssistApp(AssistServices(engine, evidence, policy, pool, clock), cfg.targets)
    try:
        async with running(app, "127.0.0.1", 0) as base:
            yield Server(base, engine, evidence, list(cfg.targets), app)
    finally:
        await policy.aclose()
        await pool.close()
        engine.dispose()


async def hook_answer(simulator: RunningSimulator) -> str:
    """What the person reads on the captcha image: the simulator's test hook."""
    async with httpx.AsyncClient() as client:
        latest = (await client.get(f"{simulator.base_url}/_sim/captcha/latest")).json()
    return str(latest["answer"])


async def walk_to_slots(page: Page, simulator: RunningSimulator, demarche_id: int) -> None:
    """As a person: the landing page, "Prendre un rendez-vous", the security code, "Suivant"."""
    await page.goto(f"{simulator.base_url}/{RDV}/{demarche_id}/")
    await page.click("text=Prendre un rendez-vous")
    # The image arrives once the page's script has had the captcha service's answer.
    await page.wait_for_selector(".captcha img[src^='data:image/png']")
    await page.fill("#captchaFormulaireExtInput", await hook_answer(simulator))
    await page.click("button:has-text('Suivant')")
    await page.wait_for_url("**/creneau/")
