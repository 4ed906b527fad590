"""One volunteer-assisted probe, in the robot's own browser.

The robot opens the procedure, shows the captcha image (and its audio on request) to
the volunteer, types the volunteer's answer, reads the slot page, captures it as
evidence, stores the probe (`mode = assisted`, the volunteer's pseudonym) and closes
its browser context. A wrong answer only brings a new captcha: it is recorded nowhere.
An observation abandoned or left idle records nothing either.

Written as started (issue 15's attempts, as the sweep does): before the robot's first
request for an observation, and before each "Regarder à nouveau", a `probe_attempts` row
(mode `assisted`) says a probe is under way; storing the probe deletes it in the same
transaction. Killed mid-observation, `assist` leaves that row, and the next start of
`assist`, `run` or `probe` stores it as an `error/interrupted` assisted probe, so coverage
counts it. Two endings delete the row without a probe:

- the volunteer abandons (the button, ten idle minutes, too many refused answers, the
  platform's session ended and no new answer came, `assist` stopped while the captcha
  waited). That decision is taken in front of a captcha, before the robot has loaded any
  page that says something about slots, so it cannot depend on what the slot page would
  have shown: counting it would put the volunteers' comings and goings into the
  platform's coverage without making any figure less biased;
- a step fails on the robot's side after its requests were sent (a bug, a write that
  failed, `assist` stopped in the middle of reading a page): that is the sweep's crash
  case, and the attempt becomes `error/interrupted` at once.

Rules of conduct are the robot's usual ones: every request goes through the shared
polite gates (one at a time per host, minimum delay, Retry-After), the slot page is the
last page loaded, and the assist server runs one observation per host at a time.

Looking again (issue 17): with `keep_session`, the robot keeps the slot page open after
recording it, while the platform's own session lasts. "Regarder à nouveau" re-reads
that page once per click of the volunteer, and each look is stored as its own assisted
probe: this is how a volunteer sees how long released slots last. There is never an
automatic reload, and no captcha is reused beyond the platform's session: when the
platform answers with its conditions page again, the volunteer gets a new captcha.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from observatoire.adapters import get_adapter
from observatoire.adapters.assisted import AssistedAdapter, Captcha
from observatoire.adapters.base import ProbeStop
from observatoire.adapters.browser_support import browser_error_detail
from observatoire.clock import Clock
from observatoire.config import Target
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.record.evidence import EvidenceStore
from observatoire.record.store import (
    ProbeRecord,
    drop_attempt,
    recover_interrupted,
    save_probe,
    start_attempt,
)
from observatoire.robot.browser import BrowserPool, BrowserUnavailable
from observatoire.robot.leases import holder_id
from observatoire.robot.politeness import HostPaused, HttpSession, PolitePolicy

#: Wrong answers accepted in one observation before it is given up (nothing recorded):
#: hammering the platform with guesses would look like a robot, rightly.
MAX_WRONG_ANSWERS = 5


class State(StrEnum):
    STARTING = "starting"
    CAPTCHA = "captcha"  # waiting for the volunteer's answer
    RECORDED = "recorded"
    ABANDONED = "abandoned"  # nothing recorded
    #: The robot could not run (no browser, no database: nothing sent, nothing recorded)
    #: or failed in the middle of a step (counted as `error/interrupted`).
    FAILED = "failed"


#: Outcomes read on the slot page itself: only then is there a page to look at again.
SLOT_PAGE_OUTCOMES = (Outcome.AVAILABLE, Outcome.NO_SLOT)


@dataclass
class AssistServices:
    """What every observation of one `assist` process shares."""

    engine: Engine
    evidence: EvidenceStore
    policy: PolitePolicy
    browser: BrowserPool
    clock: Clock
    #: Who writes this process's attempts (`probe_attempts.holder`): a dead holder's
    #: attempts are counted as interrupted by the next start.
    holder: str = field(default_factory=holder_id)


class Observation:
    def __init__(
        self,
        services: AssistServices,
        target: Target,
        volunteer: str,
        *,
        keep_session: bool = False,
    ) -> None:
        self.id = secrets.token_urlsafe(12)
        self.services = services
        self.target = target
        self.volunteer = volunteer
        adapter = get_adapter(target.platform)
        # Any platform whose adapter implements the assisted interface, none by name.
        if not isinstance(adapter, AssistedAdapter):
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
        #: The `probe_attempts` row of the look under way (None between looks).
        self._attempt_id: int | None = None
        self._http: HttpSession | None = None
        self._page: Page | None = None
        self._audio: tuple[bytes, str] | None = None
        self._audio_lock = asyncio.Lock()
        self._stack = contextlib.AsyncExitStack()
        #: Keep the slot page open after recording it, for "Regarder à nouveau".
        self.keep_session = keep_session
        #: The platform's session is still open on the slot page.
        self.session_open = False
        #: Looks recorded in this observation (each one a probe), and their probe ids.
        self.looks = 0
        self.probe_ids: list[int] = []

    @property
    def finished(self) -> bool:
        """Nothing more can happen: an open session can still be looked at again."""
        if self.state is State.RECORDED:
            return not self.session_open
        return self.state in (State.ABANDONED, State.FAILED)

    @property
    def can_look_again(self) -> bool:
        return self.state is State.RECORDED and self.session_open and self._page is not None

    async def look_again(self) -> None:
        """One click of "Regarder à nouveau": re-read the slot page in the platform's
        session and record it as a new assisted probe. If the platform's session has
        ended (its conditions page comes back), the volunteer gets a new captcha."""
        if not self.can_look_again or self._page is None:
            return
        self.last_activity = time.monotonic()
        self._started_at = self.services.clock.now()
        self._t0 = time.monotonic()
        self.wrong_answers = 0
        self._requests_before = self.requests_made
        page = self._page
        if not self._write_started():
            self.message = (
                "La base de données ne répond pas : rien n'a été demandé au site. "
                "Réessayez dans un instant."
            )
            return
        try:
            await page.reload(wait_until="domcontentloaded")
            captcha = await self.adapter.captcha_again(page, self.timeout)
            if captcha is not None:
                self.captcha = captcha
                self._audio = None
                self.session_open = False
                self.result = None
                self.state = State.CAPTCHA
                self.message = (
                    "La session sur le site a expiré : recopiez le nouveau code pour "
                    "regarder à nouveau."
                )
                return
            outcome = await self.adapter.read_slot_page(
                page, self.timeout, self.services.clock.now(), self.target
            )
        except Exception as exc:  # noqa: BLE001
            await self._conclude(await self._result_of(exc))
            return
        self.message = ""
        await self._conclude(outcome)

    async def close_session(self) -> None:
        """Leave the platform (the volunteer is done looking)."""
        self.session_open = False
        await self.close()

    @property
    def requests_made(self) -> int:
        return self._http.requests_made if self._http is not None else 0

    @property
    def _look_requests(self) -> int:
        """Requests of the current look only (a kept session serves several looks)."""
        return self.requests_made - getattr(self, "_requests_before", 0)

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
            # The page is open and nothing has been asked of the site yet.
            if not self._write_started():
                await self._fail(
                    "La base de données ne répond pas : l'observation ne peut pas être "
                    "enregistrée, rien n'a été demandé au site."
                )
                return
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
                self._page, text, self.timeout, self.services.clock.now(), self.target
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
            self._audio = None
            self.message = (
                "La session sur le site avait expiré : voici un nouveau code."
                if outcome.session_expired
                else "Le site a refusé ce code. Voici un nouveau code."
            )
            return
        await self._conclude(outcome)

    async def audio(self) -> tuple[bytes, str] | None:
        """The captcha's audio, obtained by pressing the platform's own button in the
        robot's page (the request a person's click makes). Kept for the current captcha:
        a media player asks several times, the platform is asked once."""
        if self.state is not State.CAPTCHA or self._page is None or self.captcha is None:
            return None
        if not self.captcha.audio_via_button:
            return None
        self.last_activity = time.monotonic()
        if self._audio is not None:
            return self._audio
        async with self._audio_lock:
            if self._audio is None:
                try:
                    self._audio = await self.adapter.audio(self._page, self.timeout)
                except (PlaywrightError, HostPaused, ProbeStop):
                    return None
        return self._audio

    async def abandon(
        self, message: str = "Observation abandonnée : rien n'a été enregistré."
    ) -> None:
        if self.state is State.RECORDED:
            await self.close_session()  # what was recorded stays recorded
            return
        if self.finished:
            return
        self.state = State.ABANDONED
        self.message = message
        self._end_attempt(interrupted=False)
        await self.close()

    async def interrupt(
        self, message: str = "Erreur du robot : la consultation est comptée comme interrompue."
    ) -> None:
        """A step failed on the robot's side after its requests were sent: the attempt
        becomes `error/interrupted` now (as a sweep's probe cut short), the observation
        ends and the platform's session is left."""
        if self.finished and self._attempt_id is None:
            return
        self._end_attempt(interrupted=True)
        # Looks recorded before the failure stay recorded (and shown).
        self.state = State.RECORDED if self.result is not None else State.FAILED
        self.session_open = False
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
            requests_made=self._look_requests,
            attempts=self.wrong_answers + 1,
            duration_ms=int((time.monotonic() - self._t0) * 1000),
            adapter=self.adapter.name,
            adapter_version=self.adapter.version,
            mode="assisted",
            volunteer=self.volunteer,
            attempt_id=self._attempt_id,
        )
        keep = (
            self.keep_session
            and self._page is not None
            and result.outcome in SLOT_PAGE_OUTCOMES
            and result.detail != "captcha_first"
        )
        if not keep:
            await self.close()
        self.session_open = keep
        self.probe_id = save_probe(self.services.engine, self.services.evidence, record)
        self._attempt_id = None  # deleted with the probe's insertion
        self.probe_ids.append(self.probe_id)
        self.looks += 1
        self.result = result
        self.state = State.RECORDED

    async def _fail(self, message: str) -> None:
        self.state = State.FAILED
        self.message = message
        # Before the attempt is written in practice; after it, requests may have gone.
        self._end_attempt(interrupted=True)
        await self.close()

    def _write_started(self) -> bool:
        """The `probe_attempts` row of the look about to send its first request; False
        when the database refuses it (then nothing must be sent: it could not be kept)."""
        services = self.services
        try:
            self._attempt_id = start_attempt(
                services.engine,
                self.target.id,
                services.holder,
                self._started_at or services.clock.now(),
                self.adapter.name,
                self.adapter.version,
                mode="assisted",
            )
        except SQLAlchemyError:
            return False
        return True

    def _end_attempt(self, *, interrupted: bool) -> None:
        """Close the look under way without a probe of its own: dropped (abandoned by the
        volunteer) or stored as `error/interrupted` (the robot failed). A database that
        refuses leaves the row, and the next start counts it as interrupted."""
        attempt_id, self._attempt_id = self._attempt_id, None
        if attempt_id is None:
            return
        engine = self.services.engine
        with contextlib.suppress(SQLAlchemyError):
            if interrupted:
                recover_interrupted(engine, self.services.clock.now(), attempt_id=attempt_id)
            else:
                drop_attempt(engine, attempt_id)
