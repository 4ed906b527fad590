"""The national RDV-Préfecture platform: landing, conditions page with the State's
captcha (CaptchEtat), wrong-answer path, the slot page, and the "Vos informations"
page that the robot must never reach.

The captcha answer is derived from the seed and the captcha id. It never appears in a
page: tests read it through `answer()` or the `/_sim/captcha/<id>` hook, exactly as a
volunteer would read the image.
"""

from __future__ import annotations

import html
import io
import re
import secrets
import threading
import wave
from typing import TYPE_CHECKING

from observatoire.simulator.availability import SlotState, unit
from observatoire.simulator.http import Request, Response
from observatoire.simulator.legacy import french_date
from observatoire.simulator.scenario import RdvDemarche, RdvPrefectureSite

if TYPE_CHECKING:
    from observatoire.simulator.server import SimulatorState

ROUTE = re.compile(
    r"^/rdvpref/reservation/demarche/(\d+)/?(cgu/?|_validerCaptcha|creneau/?|"
    r"informations/?|captcha/(\w+)\.(svg|wav))?$"
)
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


#: The application's static files, loaded by every page as a single-page app's are.
STATIC = {
    "app.js": (
        "document.documentElement.setAttribute('data-app', 'ready');",
        "text/javascript; charset=utf-8",
    ),
    "dsfr.css": (
        "body{font-family:sans-serif;margin:1rem}.fr-btn{background:#000091;color:#fff}",
        "text/css; charset=utf-8",
    ),
}


def _layout(title: str, body: str, root: str) -> str:
    return (
        '<!DOCTYPE html><html lang="fr" data-fr-scheme="system"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} - RDV Préfecture</title>"
        f'<link rel="stylesheet" href="{root}/static/dsfr.css">'
        f'<script src="{root}/static/app.js" defer></script></head><body>'
        '<header class="fr-header"><p class="fr-header__service-title">Rendez-vous en préfecture'
        f'</p></header><main id="q-app" class="fr-container">{body}</main>'
        '<div id="tarteaucitronRoot"></div></body></html>'
    )


class RdvPrefectureModule:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.lock = threading.Lock()
        self.sessions: dict[str, dict[str, object]] = {}
        self._latest: str | None = None

    def latest_captcha(self) -> str | None:
        """The id of the captcha served last (test hook: stands for reading the image)."""
        with self.lock:
            return self._latest

    def answer(self, captcha_id: str) -> str:
        """The captcha's answer: for tests and the simulator's own image only."""
        seed = self.state.scenario.seed
        return "".join(
            ALPHABET[int(unit(seed, "captcha", captcha_id, i) * len(ALPHABET))] for i in range(6)
        )

    def slots(self, site: RdvPrefectureSite, demarche: RdvDemarche) -> SlotState:
        return self.state.slots_now(f"rdvpref/{site.host}/{demarche.id}", demarche.profile)

    def handle(self, site: RdvPrefectureSite, rest: str, request: Request) -> Response:
        root = f"/{site.host}/rdvpref"
        if rest.startswith("/rdvpref/static/") and rest.rsplit("/", 1)[1] in STATIC:
            text, content_type = STATIC[rest.rsplit("/", 1)[1]]
            return Response(
                200,
                text.encode(),
                content_type,
                headers=[("Cache-Control", "public, max-age=86400")],
            )
        match = ROUTE.match(rest)
        if not match:
            page = _layout("Page introuvable", "<h1>Page introuvable</h1>", root)
            return Response.html(page, 404)
        demarche = next((d for d in site.demarches if d.id == int(match.group(1))), None)
        now = self.state.clock.now()
        if demarche is None or any(p.contains(self.state.anchor, now) for p in demarche.missing):
            self.state.record(site=site.host, state="missing", request=request)
            body = "<h1>Cette démarche n'est pas disponible</h1>"
            return Response.html(_layout("Démarche indisponible", body, root), 404)
        sid = request.cookies.get("SESSION")
        with self.lock:
            session = self.sessions.get(sid or "")
            if session is None:
                sid = secrets.token_hex(16)
                session = self.sessions[sid] = {}
        base = f"/{site.host}/rdvpref/reservation/demarche/{demarche.id}"
        response = self._route(site, demarche, match, request, session, base)
        response.headers.append(("Set-Cookie", f"SESSION={sid}; Path=/{site.host}; HttpOnly"))
        return response

    def _route(
        self,
        site: RdvPrefectureSite,
        demarche: RdvDemarche,
        match: re.Match[str],
        request: Request,
        session: dict[str, object],
        base: str,
    ) -> Response:
        step = (match.group(2) or "").strip("/")
        title = demarche.title
        if step == "":
            body = (
                f"<h1>{html.escape(title)}</h1><p>Prenez rendez-vous en ligne.</p>"
                f'<a class="fr-btn" href="{base}/cgu/">Prendre un rendez-vous</a>'
            )
            return Response.html(_layout(title, body, base.split("/reservation/")[0]))
        if step.startswith("captcha"):
            captcha_id, kind = match.group(3), match.group(4)
            if kind == "svg":
                return Response(200, self._image(self.answer(captcha_id)), "image/svg+xml")
            return Response(200, _silence(), "audio/wav")
        if step == "cgu":
            captcha_id = secrets.token_hex(8)
            session["captcha"] = captcha_id
            with self.lock:
                self._latest = captcha_id
            error = ""
            if request.query.get("error") == "invalidCaptcha":
                error = (
                    '<p id="text-input-captcha-desc-error" class="fr-error-text">'
                    "Le code de sécurité saisi est incorrect.</p>"
                )
            body = (
                f"<h1>{html.escape(title)}</h1>"
                "<p>En poursuivant, vous acceptez les conditions générales d'utilisation.</p>"
                f'<form method="post" action="{base}/_validerCaptcha">'
                f'<rdv-captchetat token="{secrets.token_hex(6)}" captcha-style-name="captchaFR">'
                f'<img id="captchaFR_CaptchaImage" alt="Code de sécurité à recopier" '
                f'src="{base}/captcha/{captcha_id}.svg">'
                f'<a id="captchaFR_SoundLink" href="{base}/captcha/{captcha_id}.wav">'
                "Écouter le code</a>"
                f'<input type="hidden" name="captchaId" value="{captcha_id}">'
                "</rdv-captchetat>"
                '<label for="captchaFormulaireExtInput">Recopiez le code</label>'
                '<input id="captchaFormulaireExtInput" name="captchaUsercode" type="text">'
                f"{error}"
                '<button type="submit" class="fr-btn">Suivant</button></form>'
            )
            return Response.html(_layout(title, body, base.split("/reservation/")[0]))
        if step == "_validerCaptcha":
            expected = session.get("captcha")
            given = (request.field("captchaUsercode") or "").strip().upper()
            if (
                request.field("captchaId") != expected
                or not expected
                or (given != self.answer(str(expected)))
            ):
                self.state.record(site=site.host, state="captcha_wrong", request=request)
                return Response.redirect(f"{base}/cgu/?error=invalidCaptcha")
            session["validated"] = demarche.id
            session.pop("captcha", None)
            return Response.redirect(f"{base}/creneau/")
        if step == "creneau":
            if session.get("validated") != demarche.id:
                return Response.redirect(f"{base}/cgu/")
            if request.method == "POST":
                self.state.violation("slot submitted on RDV-Préfecture", request)
                return Response.redirect(f"{base}/informations/")
            slots = self.slots(site, demarche)
            self.state.record(
                site=site.host,
                state="open" if slots.open else "no_slot",
                first_slot=slots.first,
                slots=len(slots.slots),
                request=request,
            )
            session.pop("validated", None)  # one look per captcha
            if not slots.open:
                body = (
                    f"<h1>{html.escape(title)}</h1><h2>Aucun créneau disponible</h2>"
                    "<p>Tous les créneaux sont actuellement réservés. Veuillez réessayer "
                    "ultérieurement.</p>"
                )
                return Response.html(_layout(title, body, base.split("/reservation/")[0]))
            radios = "".join(
                f'<div class="fr-radio-group"><input type="radio" name="trhId" '
                f'id="trhId_{int(s.timestamp())}" value="{int(s.timestamp())}">'
                f'<label for="trhId_{int(s.timestamp())}">{french_date(s.date())} à '
                f"{s:%H:%M}</label></div>"
                for s in slots.slots
            )
            body = (
                f"<h1>{html.escape(title)}</h1><h2>Choisissez votre créneau</h2>"
                f'<form method="post" action="{base}/creneau/">{radios}'
                '<button type="submit" class="fr-btn">Suivant</button></form>'
            )
            return Response.html(_layout(title, body, base.split("/reservation/")[0]))
        # "informations": the personal-data page.
        self.state.violation("personal data page reached on RDV-Préfecture", request)
        body = (
            '<h1>Vos informations</h1><form><input name="nom"><input name="prenom">'
            "<button>Confirmer le rendez-vous</button></form>"
        )
        return Response.html(_layout(title, body, base.split("/reservation/")[0]))

    @staticmethod
    def _image(answer: str) -> bytes:
        letters = "".join(
            f'<text x="{14 + i * 26}" y="{38 + (i % 2) * 6}" transform="rotate({(-1) ** i * 8} '
            f'{14 + i * 26} 38)">{c}</text>'
            for i, c in enumerate(answer)
        )
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="180" height="60" '
            'viewBox="0 0 180 60"><rect width="180" height="60" fill="#eef"/>'
            '<path d="M0 30 Q45 5 90 30 T180 30" stroke="#99a" fill="none"/>'
            f'<g font-family="monospace" font-size="28" fill="#223">{letters}</g></svg>'
        ).encode()


def _silence() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(b"\x80" * 800)
    return buffer.getvalue()
