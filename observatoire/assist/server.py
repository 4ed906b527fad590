"""The volunteer's page: a small aiohttp server in the same event loop as the robot's
browser.

Protected by a token printed at start (`…/?jeton=…` sets an HttpOnly, SameSite=Strict
cookie and the token leaves the address bar). Bound to 127.0.0.1 unless the operator
passes `--host` to let a phone on the same network in. No page or asset comes from any
other host; every page is French and usable with a keyboard and a screen reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web

from observatoire.assist.observation import AssistServices, Observation, State
from observatoire.assist.pseudonym import BadPseudonym, check_pseudonym
from observatoire.assist.queue import QueueEntry, assist_queue, assisted_targets
from observatoire.captures.reception import CaptureService
from observatoire.captures.routes import OWN_AUTH as CAPTURE_PATHS
from observatoire.captures.routes import add_routes as add_capture_routes
from observatoire.config import Target
from observatoire.outcomes import OUTCOMES_FR
from observatoire.publish.formatting import environment
from observatoire.record.releases import announced, ics_feed
from observatoire.robot.leases import acquire, extend, holder_id, release

COOKIE = "observatoire_assist"
PSEUDONYM_COOKIE = "observatoire_pseudonyme"
CSS = Path(__file__).resolve().parents[2] / "templates" / "assist" / "assist.css"
#: An observation nobody touched for this long is closed (nothing recorded): the
#: platform's captcha would have expired anyway.
IDLE_SECONDS = 600.0
#: Finished observations stay readable (their result page) this long.
KEEP_SECONDS = 3600.0
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Language": "fr",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Served without the token: the style sheet and the calendar feeds.
PUBLIC_PATHS = frozenset({"/assist.css", "/calendrier.ics"})
#: How far ahead the calendar feeds reach.
FEED_HORIZON = timedelta(days=14)


@dataclass
class AssistApp:
    """The queue, the observations in progress and the page that drives them."""

    services: AssistServices
    targets: Sequence[Target]
    token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    idle_seconds: float = IDLE_SECONDS
    observations: dict[str, Observation] = field(default_factory=dict)
    #: gate key (canonical host, or the targets' `host_group`, as in the sweep) -> id of
    #: the observation holding it: one session per host at a time.
    busy_hosts: dict[str, str] = field(default_factory=dict)
    holder: str = field(default_factory=holder_id)
    _pick: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.env = environment()

    # -- application ----------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.add_routes(
            [
                web.get("/", self.queue_page),
                web.get("/assist.css", self.css),
                web.post("/pseudonyme", self.set_pseudonym),
                web.post("/suivante", self.next_observation),
                web.get("/observation/{oid}", self.observation_page),
                web.get("/observation/{oid}/code.png", self.captcha_image),
                web.get("/observation/{oid}/code-audio", self.captcha_audio),
                web.get("/observation/{oid}/capture.png", self.capture_image),
                web.post("/observation/{oid}/reponse", self.answer),
                web.post("/observation/{oid}/abandon", self.abandon),
                web.post("/observation/{oid}/regarder", self.look_again),
                web.post("/observation/{oid}/fermer", self.close_session),
                web.get("/calendrier.ics", self.calendar),
                web.get("/calendrier/{dept}.ics", self.calendar),
            ]
        )
        # Captures from people's own browsers (issue 21): their own token, own pages.
        add_capture_routes(
            app, CaptureService(self.services.engine, self.services.evidence), self.services.clock
        )
        app.on_cleanup.append(self._cleanup)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CAPTURE_PATHS):  # personal token, checked there
            return await handler(request)
        given = request.query.get("jeton")
        if given is not None and hmac.compare_digest(given, self.token):
            response: web.StreamResponse = see_other("/")
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
        elif (
            request.path not in PUBLIC_PATHS
            and not request.path.startswith("/calendrier/")
            and not hmac.compare_digest(request.cookies.get(COOKIE, ""), self.token)
        ):
            response = self._render("refus.html", status=403)
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = web.Response(
                    status=exc.status, text=exc.text or exc.reason, content_type="text/plain"
                )
        response.headers.update(HEADERS)
        return response

    def _render(self, template: str, status: int = 200, **context: object) -> web.Response:
        body = self.env.get_template(f"assist/{template}").render(outcome_fr=OUTCOMES_FR, **context)
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    # -- pages --------------------------------------------------------------------------
    async def queue_page(self, request: web.Request, message: str = "") -> web.Response:
        now = self.services.clock.now()
        entries = assist_queue(self.services.engine, self.targets, now)
        due = [e for e in entries if e.is_due(now)]
        later = [e for e in entries if not e.is_due(now)]
        return self._render(
            "file.html",
            pseudonym=request.cookies.get(PSEUDONYM_COOKIE, ""),
            due=due,
            later=later,
            now=now,
            message=message,
            busy=set(self.busy_hosts),
            overdue=_overdue_fr,
            countdown=_countdown_fr,
            departments=sorted({e.target.department for e in entries}),
        )

    async def css(self, request: web.Request) -> web.Response:
        return web.Response(body=CSS.read_bytes(), content_type="text/css")

    async def set_pseudonym(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        try:
            value = check_pseudonym(str(form.get("pseudonyme", "")))
        except BadPseudonym as exc:
            return await self.queue_page(request, message=str(exc))
        response = see_other("/")
        response.set_cookie(PSEUDONYM_COOKIE, value, httponly=True, samesite="Strict")
        return response

    async def next_observation(self, request: web.Request) -> web.StreamResponse:
        try:
            volunteer = check_pseudonym(request.cookies.get(PSEUDONYM_COOKIE, ""))
        except BadPseudonym:
            return await self.queue_page(
                request, message="Indiquez d'abord votre pseudonyme de bénévole."
            )
        # The volunteer moves on: their sessions kept open for a new look are closed.
        for other in list(self.observations.values()):
            if other.session_open and other.volunteer == volunteer:
                await other.close_session()
                self._free(other)
        observation = await self._reserve(volunteer)
        if observation is None:
            return await self.queue_page(request, message=self._why_nothing())
        await self._step(observation, observation.start())
        return see_other(f"/observation/{observation.id}")

    async def observation_page(self, request: web.Request) -> web.Response:
        observation = self._get(request)
        return self._render(
            "observation.html",
            o=observation,
            State=State,
            result=observation.result,
            message=observation.message,
        )

    async def captcha_image(self, request: web.Request) -> web.Response:
        observation = self._get(request)
        if observation.captcha is None or observation.state is not State.CAPTCHA:
            raise web.HTTPNotFound()
        return web.Response(body=observation.captcha.image_png, content_type="image/png")

    async def captcha_audio(self, request: web.Request) -> web.Response:
        observation = self._get(request)
        self._touch(observation)
        audio = await observation.audio()
        if audio is None:
            raise web.HTTPNotFound()
        data, content_type = audio
        return web.Response(body=data, content_type=content_type.split(";")[0])

    async def capture_image(self, request: web.Request) -> web.Response:
        observation = self._get(request)
        if observation.result is None or not observation.result.screenshot:
            raise web.HTTPNotFound()
        return web.Response(body=observation.result.screenshot, content_type="image/png")

    async def answer(self, request: web.Request) -> web.StreamResponse:
        observation = self._get(request)
        form = await request.post()
        text = str(form.get("reponse", "")).strip()
        if observation.state is State.CAPTCHA:
            if not text:
                observation.message = "Recopiez le code avant de valider."
            else:
                self._touch(observation)
                await self._step(observation, observation.answer(text))
        return see_other(f"/observation/{observation.id}")

    async def look_again(self, request: web.Request) -> web.StreamResponse:
        """One click, one look: re-read the slot page in the platform's session and
        record it (or show a new captcha if the session has ended)."""
        observation = self._get(request)
        if observation.can_look_again:
            self._touch(observation)
            await self._step(observation, observation.look_again())
        else:
            observation.message = "La session est fermée : observez à nouveau depuis la liste."
        return see_other(f"/observation/{observation.id}")

    async def close_session(self, request: web.Request) -> web.StreamResponse:
        observation = self._get(request)
        await observation.close_session()
        self._free(observation)
        return see_other(f"/observation/{observation.id}")

    async def calendar(self, request: web.Request) -> web.Response:
        """The iCalendar feed of announced releases (all, or one department): public
        facts the platforms print, so no token is asked (a phone subscribes to it)."""
        dept = request.match_info.get("dept")
        ids = {t.id for t in assisted_targets(self.targets)}
        now = self.services.clock.now()
        items = [
            a
            for a in announced(self.services.engine, now, department=dept, horizon=FEED_HORIZON)
            if a.target_id in ids
        ]
        name = "Mises en ligne annoncées" + (f" — département {dept}" if dept else "")
        return web.Response(
            text=ics_feed(items, name, now),
            content_type="text/calendar",
            charset="utf-8",
        )

    async def abandon(self, request: web.Request) -> web.StreamResponse:
        observation = self._get(request)
        await observation.abandon()
        self._free(observation)
        return see_other(f"/observation/{observation.id}")

    # -- bookkeeping --------------------------------------------------------------------
    async def _step(self, observation: Observation, step: Awaitable[None]) -> None:
        """Run one step of an observation; a robot failure ends it (the look under way,
        whose requests were sent, is counted as `error/interrupted`), and a finished
        observation frees its host."""
        try:
            await step
        except BaseException:
            await observation.interrupt()
            raise
        finally:
            if observation.finished:
                self._free(observation)

    def _get(self, request: web.Request) -> Observation:
        observation = self.observations.get(request.match_info["oid"])
        if observation is None:
            raise web.HTTPNotFound(
                text="Observation inconnue ou expirée.", content_type="text/plain"
            )
        return observation

    async def _reserve(self, volunteer: str) -> Observation | None:
        """The most overdue due target whose host is free, with its leases taken."""
        async with self._pick:
            now = self.services.clock.now()
            for entry in assist_queue(self.services.engine, self.targets, now):
                if not entry.is_due(now):
                    break
                host = entry.target.gate_key
                if host in self.busy_hosts:
                    continue
                if not self._lease(entry, now):
                    continue
                observation = Observation(self.services, entry.target, volunteer, keep_session=True)
                self.observations[observation.id] = observation
                self.busy_hosts[host] = observation.id
                return observation
        return None

    def _lease(self, entry: QueueEntry, now: datetime) -> bool:
        """Leases in the database: another `assist` (or a daemon) on the same database
        must not observe the same target, or the same host, at the same time."""
        engine, host_key = self.services.engine, _host_lease(entry.target)
        if not acquire(engine, host_key, self.holder, now):
            return False
        if not acquire(engine, entry.target.id, self.holder, now):
            release(engine, host_key, self.holder)
            return False
        return True

    def _touch(self, observation: Observation) -> None:
        until = self.services.clock.now() + timedelta(minutes=15)
        engine = self.services.engine
        extend(engine, observation.target.id, self.holder, until)
        extend(engine, _host_lease(observation.target), self.holder, until)

    def _free(self, observation: Observation) -> None:
        host = observation.target.gate_key
        if self.busy_hosts.get(host) == observation.id:
            del self.busy_hosts[host]
            engine = self.services.engine
            release(engine, observation.target.id, self.holder)
            release(engine, _host_lease(observation.target), self.holder)

    def _why_nothing(self) -> str:
        now = self.services.clock.now()
        entries = assist_queue(self.services.engine, self.targets, now)
        if not entries:
            return "Aucune démarche à observer avec un bénévole n'est configurée."
        if any(e.is_due(now) for e in entries):
            return (
                "Les démarches dues sont déjà en cours d'observation (une seule observation "
                "à la fois par site). Réessayez dans un instant."
            )
        return "Rien à observer pour l'instant : chaque démarche a été observée récemment."

    async def reap(self) -> None:
        """Close observations left idle; forget old finished ones."""
        now = time.monotonic()
        for oid, observation in list(self.observations.items()):
            idle = now - observation.last_activity
            if observation.session_open and idle > self.idle_seconds:
                await observation.close_session()
                self._free(observation)
            elif not observation.finished and idle > self.idle_seconds:
                await observation.abandon(
                    "Observation fermée après une longue inactivité : rien n'a été enregistré."
                )
                self._free(observation)
            elif observation.finished and idle > KEEP_SECONDS:
                del self.observations[oid]

    async def _cleanup(self, app: web.Application) -> None:
        for observation in list(self.observations.values()):
            await observation.abandon()
            self._free(observation)


def _host_lease(target: Target) -> str:
    """The lease that keeps a host to one observation at a time, across processes."""
    return f"host:{target.gate_key}"[:80]


def see_other(location: str) -> web.Response:
    """A 303 to another page of ours (after a form, as the PRG pattern wants)."""
    return web.Response(status=303, headers={"Location": location})


def _overdue_fr(entry: QueueEntry, now: datetime) -> str:
    late = entry.overdue(now)
    if late is None:
        return "jamais observée"
    minutes = int(late.total_seconds() // 60)
    if minutes < 60:
        return f"en retard de {minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"en retard de {hours} h"
    return f"en retard de {hours // 24} jours"


def _countdown_fr(entry: QueueEntry, now: datetime) -> str:
    """ "dans 1 h 05", "dans 3 min", "il y a 12 min" — the countdown to a release."""
    left = entry.release_in(now)
    if left is None:
        return ""
    minutes = int(abs(left.total_seconds()) // 60)
    text = f"{minutes // 60} h {minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"
    return f"il y a {text}" if left.total_seconds() < 0 else f"dans {text}"


@contextlib.asynccontextmanager
async def running(assist: AssistApp, host: str, port: int) -> AsyncIterator[str]:
    """Serve `assist` on host:port until the block ends; yields the base URL."""
    runner = web.AppRunner(assist.make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = runner.addresses[0][1]

    async def reaper() -> None:
        while True:
            await asyncio.sleep(30)
            await assist.reap()

    task = asyncio.create_task(reaper())
    try:
        yield f"http://{host if ':' not in host else f'[{host}]'}:{bound}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.cleanup()
