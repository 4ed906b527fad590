"""HTTP side of captures, mounted on the assist server (`add_routes`).

- `POST /api/captures` — the extension: multipart `url`, `html`, optional `screenshot`
  (PNG), optional `client_time` (ISO 8601); `Authorization: Bearer <personal token>`.
  Answers JSON. Open to cross-origin calls (the extension's origin is not ours): the
  personal token, never a cookie, is the credential, so `*` gives nothing away.
- `GET/POST /captures/deposer` — "Déposer une capture d'écran", the phone form.

These paths carry their own credential (the personal token), so the assist page's
cookie guard lets them through (`OWN_AUTH`). Nothing here ever serves a stored page:
evidence HTML is only rendered to PNG offline, with JavaScript and network off.

Limits: body sizes (read part by part, never buffered beyond the limit), captures per
contributor per window, and failed tokens per client address (no token guessing)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import BodyPartReader, web
from sqlalchemy import select
from sqlalchemy.orm import Session

from observatoire.captures.contributors import ContributorInfo, authenticate
from observatoire.captures.ocr import OcrUnavailable
from observatoire.captures.reception import (
    MAX_HTML_BYTES,
    MAX_IMAGE_BYTES,
    CaptureOutcome,
    CaptureRefused,
    CaptureService,
)
from observatoire.clock import Clock
from observatoire.db.models import TargetRow
from observatoire.outcomes import OUTCOMES_FR
from observatoire.publish.formatting import environment

OWN_AUTH = ("/api/captures", "/captures/")
API_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Language": "fr",
}
#: Small text fields of a multipart body.
MAX_FIELD = 4096


@dataclass
class RateLimiter:
    """At most `limit` events per key within `window` seconds (sliding window)."""

    limit: int
    window: float
    events: dict[object, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def wait(self, key: object, now: float | None = None) -> float | None:
        """The seconds to wait before `key` may act again, or None (nothing counted)."""
        now = time.monotonic() if now is None else now
        seen = self.events[key]
        while seen and now - seen[0] > self.window:
            seen.popleft()
        if len(seen) >= self.limit:
            return max(1.0, self.window - (now - seen[0]))
        return None

    def allow(self, key: object, now: float | None = None) -> float | None:
        """None when allowed (and counted); else the seconds to wait."""
        now = time.monotonic() if now is None else now
        wait = self.wait(key, now)
        if wait is None:
            self.events[key].append(now)
        return wait


@dataclass
class CaptureRoutes:
    service: CaptureService
    clock: Clock
    #: A person records an attempt every few minutes at most; a flood is a fault or abuse.
    per_contributor: RateLimiter = field(default_factory=lambda: RateLimiter(30, 600.0))
    bad_tokens: RateLimiter = field(default_factory=lambda: RateLimiter(10, 600.0))

    def __post_init__(self) -> None:
        self.env = environment()

    # -- helpers --------------------------------------------------------------------------
    def _json(self, data: dict[str, object], status: int = 200, **headers: str) -> web.Response:
        response = web.json_response(data, status=status)
        response.headers.update(API_HEADERS)
        response.headers.update(headers)
        return response

    def _page(self, template: str, status: int = 200, **context: object) -> web.Response:
        body = self.env.get_template(f"captures/{template}").render(
            outcome_fr=OUTCOMES_FR, **context
        )
        response = web.Response(text=body, status=status, content_type="text/html")
        response.headers.update(PAGE_HEADERS)
        return response

    def _who(self, request: web.Request, token: str) -> ContributorInfo | tuple[int, str]:
        """The contributor, or an HTTP status and a French refusal. Only refused tokens
        count against a client address: guessing tokens stops after a few tries."""
        remote = request.remote or "?"
        wait = self.bad_tokens.wait(remote)
        if wait is not None:
            return 429, f"Trop de jetons refusés : réessayez dans {int(wait)} s."
        who = authenticate(self.service.engine, token)
        if who is None:
            self.bad_tokens.allow(remote)
            return 401, "Jeton personnel inconnu ou révoqué."
        wait = self.per_contributor.allow(who.id)
        if wait is not None:
            return 429, f"Trop de captures en peu de temps : réessayez dans {int(wait)} s."
        return who

    async def _read_form(
        self, request: web.Request, limits: dict[str, int]
    ) -> dict[str, bytes] | str:
        """The multipart fields named in `limits`, each within its byte limit."""
        if not request.content_type.startswith("multipart/"):
            return "Envoi attendu au format multipart/form-data."
        fields: dict[str, bytes] = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                return "Envoi mal formé."
            name = part.name or ""
            limit = limits.get(name)
            if limit is None or name in fields:
                return f"Champ inattendu : {name!r}."
            data = bytearray()
            while chunk := await part.read_chunk(65536):
                data += chunk
                if len(data) > limit:
                    return f"Champ {name!r} trop lourd ({limit // (1024 * 1024) or 1} Mo au plus)."
            fields[name] = bytes(data)
        return fields

    # -- the extension --------------------------------------------------------------------
    async def preflight(self, request: web.Request) -> web.Response:
        return _empty(204)

    async def api_capture(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        who = self._who(request, token)
        if isinstance(who, tuple):
            return self._json({"error": who[1]}, status=who[0])
        form = await self._read_form(
            request,
            {
                "url": MAX_FIELD,
                "html": MAX_HTML_BYTES,
                "screenshot": MAX_IMAGE_BYTES,
                "client_time": MAX_FIELD,
                "extension_version": MAX_FIELD,
            },
        )
        if isinstance(form, str):
            return self._json({"error": form}, status=413 if "lourd" in form else 400)
        if "url" not in form or "html" not in form:
            return self._json({"error": "Champs « url » et « html » obligatoires."}, 400)
        try:
            result = await asyncio.to_thread(
                self.service.receive_page,
                who,
                form["html"],
                form["url"].decode("utf-8", "replace"),
                self.clock.now(),
                screenshot=form.get("screenshot") or None,
                client_time=_client_time(form.get("client_time")),
                user_agent=request.headers.get("User-Agent"),
            )
        except CaptureRefused as exc:
            return self._json({"error": str(exc)}, status=422)
        return self._json(result.as_json(), status=201)

    # -- phones -----------------------------------------------------------------------------
    def _targets(self) -> list[TargetRow]:
        with Session(self.service.engine) as session:
            rows = session.scalars(
                select(TargetRow).where(TargetRow.enabled.is_(True)).order_by(TargetRow.id)
            ).all()
            session.expunge_all()
            return list(rows)

    async def upload_form(
        self, request: web.Request, message: str = "", status: int = 200
    ) -> web.Response:
        return self._page("deposer.html", status, targets=self._targets(), message=message)

    async def upload(self, request: web.Request) -> web.Response:
        form = await self._read_form(
            request, {"jeton": MAX_FIELD, "cible": MAX_FIELD, "capture": MAX_IMAGE_BYTES}
        )
        if isinstance(form, str):
            return await self.upload_form(request, form, 400)
        who = self._who(request, form.get("jeton", b"").decode("utf-8", "replace").strip())
        if isinstance(who, tuple):
            return await self.upload_form(request, who[1], who[0])
        try:
            result: CaptureOutcome = await asyncio.to_thread(
                self.service.receive_screenshot,
                who,
                form.get("capture", b""),
                form.get("cible", b"").decode("utf-8", "replace"),
                self.clock.now(),
                user_agent=request.headers.get("User-Agent"),
            )
        except CaptureRefused as exc:
            return await self.upload_form(request, str(exc), 422)
        except OcrUnavailable:
            return await self.upload_form(
                request, "La lecture des images n'est pas installée sur ce serveur.", 503
            )
        return self._page(
            "resultat.html", 201, **(result.as_json() | {"received_at": result.received_at})
        )


def _empty(status: int) -> web.Response:
    response = web.Response(status=status)
    response.headers.update(API_HEADERS)
    return response


def _client_time(raw: bytes | None) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.decode("ascii").strip().replace("Z", "+00:00"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value.astimezone(UTC) if value.tzinfo else None


CAPTURES_KEY = web.AppKey("captures", CaptureRoutes)


def add_routes(app: web.Application, service: CaptureService, clock: Clock) -> CaptureRoutes:
    """Register the capture routes on `app` (the assist server's application)."""
    routes = CaptureRoutes(service, clock)
    app.add_routes(
        [
            web.options("/api/captures", routes.preflight),
            web.post("/api/captures", routes.api_capture),
            web.get("/captures/deposer", routes.upload_form),
            web.post("/captures/deposer", routes.upload),
        ]
    )
    app[CAPTURES_KEY] = routes
    return routes
