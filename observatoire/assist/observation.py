"""One volunteer-assisted probe, in the robot's own browser.

The robot opens the procedure, shows the captcha image (and its audio on request) to
the volunteer, types the volunteer's answer, reads the slot page, captures it as
evidence, stores the probe (`mode = assisted`, the volunteer's pseudonym) and closes
its browser context. A wrong answer only brings a new captcha: it is recorded nowhere.
An observation abandoned or left idle records nothing either.

Rules of conduct are the robot's usual ones: every request goes through the shared
polite gates (one at a time per host, minimum delay, Retry-After), the slot page is the
last page loaded, and the assist server runs one observation per host at a time.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from sqlalchemy import Engine

from observatoire.adapters import get_adapter
from observatoire.adapters.base import ProbeStop
from observatoire.adapters.browser_support import browser_error_detail
from observatoire.adapters.rdv_prefecture import Captcha, RdvPrefectureAdapter
from observatoire.browser import BrowserPool, BrowserUnavailable
from observatoire.clock import Clock
from observatoire.config import Target
from observatoire.evidence import EvidenceStore
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.politeness import HostPaused, HttpSession, PolitePolicy
from observatoire.store import ProbeRecord, save_probe

#: Wrong answers accepted in one observation before it is given up (nothing recorded):
#: hammering the platform with guesses would look like a robot, rightly.
MAX_WRONG_ANSWERS = 5
NOTHING_RECORDED = "Observation abandonnée : rien n'a été enregistré."


class State(StrEnum):
    STARTING = "starting"
    CAPTCHA = "captcha"  # waiting for the volunteer's answer
    RECORDED = "recorded"
    ABANDONED = "abandoned"  # nothing recorded
    FAILED = "failed"  # the robot could not run (no browser): nothing recorded


@dataclass
class AssistServices:
    """What every observation of one `assist` process shares."""

    engine: Engine
    evidence: EvidenceStore
    policy: PolitePolicy
    browser: BrowserPool
    clock: Clock


class Observation:
    def __init__(self, services: AssistServices, target: Target, volunteer: str) -> None:
        self.id = secrets.token_urlsafe(12)
        self.services = services
        self.target = target
        self.volunteer = volunteer
        adapter = get_adapter(target.platform)
        if not isinstance(adapter, RdvPrefectureAdapter):
            raise ValueError(f"{target.platform} has no assisted flow")
        self.adapter = adapter
        self.state = State.STARTING
        self.captcha: Captcha | None = None
        self.result: ProbeResult | None = None
        self.probe_id: int | None = None
        self.wrong_answers = 0
        self.message = ""
        self.last_activity = time.monotonic()
        self._started_at: datetime | None = None
        self._t0 = 0.0
        self._http: HttpSession | None = None
        self._page: Page | None = None
        self._stack = contextlib.AsyncExitStack()

    @property
    def finished(self) -> bool:
        return self.state in (State.RECORDED, State.ABANDONED, State.FAILED)

    @property
    def requests_made(self) -> int:
        return self._http.requests_made if self._http is not None else 0

    @property
    def timeout(self) -> float:
        return self.services.policy.read_timeout

    async def start(self) -> None:
        """Open the procedure up to its captcha (or record why it could not be reached)."""
        self.last_activity = time.monotonic()
        self._started_at = self.services.clock.now()
        self._t0 = time.monotonic()
        self._http = self.services.policy.session()
        try:
            # Images load here (unlike automatic probes): the captcha is one.
            self._page = await self._stack.enter_async_context(
                self.services.browser.page(self._http, block_assets=False)
            )
            self.captcha = await self.adapter.open_captcha(self._page, self.target, self.timeout)
            self.state = State.CAPTCHA
        except BrowserUnavailable as exc:
            await self._fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - every site behaviour ends in an outcome
            await self._conclude(await self._result_of(exc))

    async def answer(self, text: str) -> None:
        """Submit the volunteer's answer: a new captcha if wrong, else the slot page."""
        if self.state is not State.CAPTCHA or self._page is None:
            return
        self.last_activity = time.monotonic()
        try:
            outcome = await self.adapter.submit_answer(
                self._page, text, self.timeout, self.services.clock.now()
            )
        except Exception as exc:  # noqa: BLE001
            await self._conclude(await self._result_of(exc))
            return
        if isinstance(outcome, Captcha):
            self.wrong_answers += 1
            if self.wrong_answers >= MAX_WRONG_ANSWERS:
                await self.abandon(
                    f"{MAX_WRONG_ANSWERS} réponses refusées : observation abandonnée, rien "
                    "n'a été enregistré."
                )
                return
            self.captcha = outcome
            self.message = "Le site a refusé ce code. Voici un nouveau code."
            return
        await self._conclude(outcome)

    async def audio(self) -> tuple[bytes, str] | None:
        if self.state is not State.CAPTCHA or self._page is None or self.captcha is None:
            return None
        if self.captcha.audio_url is None:
            return None
        self.last_activity = time.monotonic()
        try:
            return await self.adapter.audio(self._page, self.captcha.audio_url)
        except (PlaywrightError, HostPaused):
            return None

    async def abandon(
        self, message: str = "Observation abandonnée : rien n'a été enregistré."
    ) -> None:
        if self.finished:
            return
        self.state = State.ABANDONED
        self.message = message
        await self.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._stack.aclose()
        self._page = None
        if self._http is not None:
            with contextlib.suppress(Exception):
                await self._http.aclose()

    # -- internals ----------------------------------------------------------------------
    async def _result_of(self, exc: Exception) -> ProbeResult:
        """The outcome a failure imposes, with the page as evidence when there is one."""
        if isinstance(exc, ProbeStop):
            result = exc.result
        elif isinstance(exc, HostPaused):
            result = ProbeResult(Outcome.BLOCKED, "host_paused")
        elif isinstance(exc, PlaywrightError) and self._http is not None:
            result = ProbeResult(Outcome.ERROR, browser_error_detail(exc, self._http))
        else:
            raise exc
        return result

    async def _conclude(self, result: ProbeResult) -> None:
        """Capture the evidence (unless the page failed to load), store, close."""
        now = self.services.clock.now()
        page = self._page
        if page is not None and result.outcome is not Outcome.ERROR and result.page is None:
            note = (
                f"Observation assistée : code de sécurité saisi par « {self.volunteer} », "
                "bénévole ; le robot s'est arrêté sur cette page."
            )
            try:
                html, shot = await self.adapter.evidence(page, now, note)
                result = replace(
                    result, final_url=result.final_url or page.url, page=html, screenshot=shot
                )
            except PlaywrightError:
                pass
        started = self._started_at or now
        record = ProbeRecord(
            target_id=self.target.id,
            scheduled_at=None,
            started_at=started,
            finished_at=max(now, started),
            result=result,
            requests_made=self.requests_made,
            attempts=self.wrong_answers + 1,
            duration_ms=int((time.monotonic() - self._t0) * 1000),
            adapter=self.adapter.name,
            adapter_version=self.adapter.version,
            mode="assisted",
            volunteer=self.volunteer,
        )
        await self.close()
        self.probe_id = save_probe(self.services.engine, self.services.evidence, record)
        self.result = result
        self.state = State.RECORDED

    async def _fail(self, message: str) -> None:
        self.state = State.FAILED
        self.message = message
        await self.close()
