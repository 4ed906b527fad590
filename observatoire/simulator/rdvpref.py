"""The national RDV-Préfecture platform as its pages really are (the project's platform
notes §2, checked against public sources in 2026): the landing page, the conditions page
with the State's captcha (CaptchEtat, 2025 widget by default, the older one as a per-site
option), the wrong-answer path, the slot page (`rdv-choix-tranche`) in every state the
reference lists, session expiry, and the "Vos informations" page the robot must never
reach.

Why so literal: the adapters were once tested against a simulator built from the same
guesses as the adapters, and passed while they would have misread the real site (a
"next availability" week read as no slot). The markup and texts below are written from
the reference and its sources, never from the adapters (which this module must not
import). What the sources settled:

- The captcha service is not the site's: CaptchEtat answers on PISTE's host
  (`CAPTCHA_HOST`), called by the page's own script with a bearer token that the page
  carries (the open-source `rbignon/woob` client, module `rdvprefecture`, 2024; a request
  captured from the site's pages in 2026; the API's published description). The 2025
  widget asks it for `get=image` (JSON: `uuid`, `imageb64` as a `data:` URL) when the page
  loads, writes the uuid into the form's hidden `captchaId`, and fetches `get=sound` with
  the same token when asked, playing it from a blob (a media element cannot send the
  token). The older widget asks for `get=html` first (BotDetect markup), then the image.
  So the conditions page holds neither the image nor the captcha id: only the widget's
  element, its endpoint and its token.
- The page data is the JSON of `<script id="vui-init-data" type="application/json">`
  (`{"vueData": …, "componentStates": …, "uiMessageStack": …}`), as every Vertigo-UI page
  carries it (`vertigo-io/vertigo-libs`, vertigo-ui's `vue-data.html`).
- The week shown starts on its Monday (`premierJour`, which the front-end script calls
  `dateLundi`); the engine skips the days before `dateMin` (today), which stay empty
  columns (`vertigo-io/vertigo-modules`, vertigo-planning's consultation plugins).
- An empty desktop column is its header and an empty list; the desktop grid is drawn
  whenever the calendar is displayed, slots or not; the last reachable week says
  "Aucun créneau disponible à partir de cette date.", a line break, "Veuillez réessayer
  ultérieurement." in one element (the platform's front-end script).

The captcha answer is derived from the seed and the captcha id. It never appears in a
page: tests read it through `answer()` or the `/_sim/captcha/<id>` hook, exactly as a
volunteer would read the image.

What the slot page shows follows the slot truth (`SimulatorState.slots_now`) and the
site's options (`RdvPrefectureSite`): slots in the displayed week → the week grid
(desktop or phone); slots only later → "Aucun créneau disponible sur cette semaine" and
"Prochaine disponibilité le …"; nothing → the site's empty view. The release banners
(`banners`) appear only where the script writes them: when the calendar is not
displayed, or on the last reachable week. Each look is recorded as truth (state `open`,
`next_availability` or `no_slot`, the view served, the first slot and the number of
slot radios rendered).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import secrets
import struct
import threading
import uuid
import wave
import zlib
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from observatoire.clock import PARIS
from observatoire.simulator.availability import SlotState, release_instant, unit, week_opened
from observatoire.simulator.http import Request, Response
from observatoire.simulator.scenario import Profile, RdvDemarche, RdvPrefectureSite

if TYPE_CHECKING:
    from observatoire.simulator.server import SimulatorState

ROUTE = re.compile(
    r"^/rdvpref/reservation/demarche/(\d+)/?(cgu/?|_validerCaptcha|creneau/?|informations/?)?$"
)
#: The State's captcha service, a host of its own (PISTE), served by this module.
CAPTCHA_HOST = "api.piste.gouv.fr"
#: Its endpoint per widget: the older one (BotDetect behind PISTE, until late 2024) and
#: the 2025 one (CaptchEtat v2): `get=image` → JSON {uuid, imageb64};
#: `get=sound&t=<uuid>` → audio/x-wav. Both want `Authorization: Bearer <token>`.
CAPTCHA_ENDPOINTS = {
    "v1": "/piste/captcha/simple-captcha-endpoint",
    "v2": "/piste/captchetat/v2/simple-captcha-endpoint",
}
CAPTCHA_STYLE = "captchaFR"
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
#: The DSFR stepper's six steps (the slot step's "next step" is "Vos informations").
STEPS = (
    "Accueil",
    "Constituez votre dossier",
    "Choisissez votre créneau",
    "Vos informations",
    "Récapitulatif",
    "Confirmation",
)
SUBMIT = ' type="submit"'
BUTTON = ' type="button"'
#: Days shown by the slot page: `premierJour` (a Monday) and the five following.
WEEK_DAYS = 6
#: How far ahead the agenda opens (`dateMax`): the engine's default is two months.
HORIZON = timedelta(days=60)
#: How long the captcha service keeps a captcha it issued.
CAPTCHA_LIFETIME = timedelta(minutes=60)


#: The application's static files, loaded by every page as a single-page app's are.
STATIC = {
    "app.js": (
        "document.documentElement.setAttribute('data-app', 'ready');",
        "text/javascript; charset=utf-8",
    ),
    "dsfr.css": (
        "body{font-family:sans-serif;margin:1rem}.fr-btn,.q-btn{background:#000091;color:#fff}"
        ".blocCreneauSelection{display:inline-block;vertical-align:top;margin:0 .5rem}"
        ".captcha img,#captchaFR_CaptchaImage{border:1px solid #333;min-width:200px;"
        "min-height:70px}",
        "text/css; charset=utf-8",
    ),
}


def _page_data(vue_data: dict[str, object]) -> str:
    """Vertigo-UI's inlined page data: raw JSON in a script element the front-end parses
    (`JSON.parse(…innerHTML)`), next to the page's root element."""
    payload = {
        "vueData": vue_data,
        "componentStates": {"pendingAction": {"actionNames": []}},
        "uiMessageStack": {
            "globalErrors": [],
            "globalWarnings": [],
            "globalInfos": [],
            "globalSuccess": [],
            "objectFieldErrors": {},
            "objectFieldWarnings": {},
            "objectFieldInfos": {},
        },
        "authz": [],
        "vuiLang": "fr",
    }
    text = json.dumps(payload, ensure_ascii=False).replace("</", "<\\/")
    return f'<script id="vui-init-data" type="application/json">{text}</script>'


def _layout(title: str, body: str, root: str, vue_data: dict[str, object]) -> str:
    return (
        '<!DOCTYPE html><html lang="fr" data-fr-scheme="system"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} - Rendez-vous en préfecture</title>"
        f'<link rel="stylesheet" href="{root}/static/dsfr.css">'
        f'<script src="{root}/static/app.js" defer></script></head><body>'
        '<header role="banner" class="fr-header"><div class="fr-header__body">'
        '<p class="fr-header__service-title">Rendez-vous en préfecture</p></div></header>'
        '<div id="q-app" data-v-app=""><div class="q-layout q-layout--standard">'
        f'<main role="main" id="contenu" class="fr-container fr-py-4w"><div id="page">{body}'
        f"</div>{_page_data(vue_data)}</main></div></div>"
        '<div id="tarteaucitronRoot"></div></body></html>'
    )


def _stepper(step: int) -> str:
    """The DSFR stepper: "Étape N sur 6", then "Étape suivante : <next step>"."""
    following = (
        f'<p class="fr-stepper__details"><span class="fr-text--bold">Étape suivante :</span> '
        f"{STEPS[step]}</p>"
        if step < len(STEPS)
        else ""
    )
    return (
        '<div class="fr-stepper"><h2 class="fr-stepper__title">'
        f'{STEPS[step - 1]}<span class="fr-stepper__state">Étape {step} sur {len(STEPS)}'
        f'</span></h2><div class="fr-stepper__steps" data-fr-current-step="{step}" '
        f'data-fr-steps="{len(STEPS)}"></div>{following}</div>'
    )


def _q_btn(label: str, *, href: str | None = None, attrs: str = "") -> str:
    """A Quasar button as rendered: the label sits in nested spans."""
    classes = (
        "q-btn q-btn-item non-selectable no-outline q-btn--standard q-btn--rectangle "
        "bg-primary text-white q-btn--actionable q-focusable q-hoverable fr-btn"
    )
    inner = (
        '<span class="q-focus-helper"></span><span class="q-btn__content text-center col '
        f'items-center q-anchor--skip justify-center row"><span class="block">{label}</span>'
        "</span>"
    )
    if href is not None:
        return f'<a class="{classes}" tabindex="0" href="{href}"{attrs}>{inner}</a>'
    return f'<button class="{classes}" tabindex="0"{attrs}>{inner}</button>'


def _dmy(d: date) -> str:
    return f"{d:%d/%m/%Y}"


def _demarche_data(demarche: RdvDemarche) -> dict[str, object]:
    return {"demarche": {"id": demarche.id, "libelle": demarche.title}}


class RdvPrefectureModule:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.lock = threading.Lock()
        self.sessions: dict[str, dict[str, object]] = {}
        self._latest: str | None = None
        #: The `get` of every captcha-service call (test hook: who asked for the audio).
        self.api_calls: list[str] = []
        #: Bearer tokens the site handed to its pages (the captcha service accepts them).
        self.tokens: set[str] = set()
        #: Captchas the service issued: id -> (widget, issued at, already validated).
        self.captchas: dict[str, tuple[str, datetime, bool]] = {}

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

    # -- routing ------------------------------------------------------------------------
    def handle(self, site: RdvPrefectureSite | None, rest: str, request: Request) -> Response:
        """A request to a site's host, or (`site` None) to the captcha service's."""
        if site is None:
            return self._captcha_service(rest, request)
        root = f"/{site.host}/rdvpref"
        if rest.startswith("/rdvpref/static/") and rest.rsplit("/", 1)[1] in STATIC:
            text, content_type = STATIC[rest.rsplit("/", 1)[1]]
            return Response(
                200,
                text.encode(),
                content_type,
                headers=[("Cache-Control", "public, max-age=86400")],
            )
        sid, session = self._session(request)
        match = ROUTE.match(rest)
        if not match:
            page = _layout("Page introuvable", "<h1>Page introuvable</h1>", root, {})
            return Response.html(page, 404)
        demarche = next((d for d in site.demarches if d.id == int(match.group(1))), None)
        now = self.state.clock.now()
        if demarche is None or any(p.contains(self.state.anchor, now) for p in demarche.missing):
            self.state.record(site=site.host, state="missing", request=request)
            body = "<h1>Cette démarche n'est pas disponible</h1>"
            return Response.html(_layout("Démarche indisponible", body, root, {}), 404)
        base = f"{root}/reservation/demarche/{demarche.id}"
        step = (match.group(2) or "").strip("/")
        response = self._route(site, demarche, step, request, session, base, root)
        response.headers.append(("Set-Cookie", f"SESSION={sid}; Path=/{site.host}; HttpOnly"))
        return response

    def _session(self, request: Request) -> tuple[str, dict[str, object]]:
        sid = request.cookies.get("SESSION", "")
        with self.lock:
            session = self.sessions.get(sid)
            if session is None:
                sid = secrets.token_hex(16)
                session = self.sessions[sid] = {}
        return sid, session

    def _expired(self, site: RdvPrefectureSite, session: dict[str, object], key: str) -> bool:
        """Whether the session's `key` instant is older than the site's session lifetime
        (the simulator's clock): then the session is over and its state is dropped."""
        since = session.get(key)
        if not isinstance(since, datetime):
            return False
        if self.state.clock.now() - since < timedelta(minutes=site.session_minutes):
            return False
        session.clear()
        return True

    def _route(
        self,
        site: RdvPrefectureSite,
        demarche: RdvDemarche,
        step: str,
        request: Request,
        session: dict[str, object],
        base: str,
        root: str,
    ) -> Response:
        data = _demarche_data(demarche)
        if step == "":
            return Response.html(_layout("Accueil", self._landing(demarche, base), root, data))
        if step == "cgu":
            session["captcha_at"] = self.state.clock.now()
            body = self._conditions(site, demarche, base, request)
            return Response.html(_layout("Constituez votre dossier", body, root, data))
        if step == "_validerCaptcha":
            return self._validate(site, demarche, request, session, base)
        if step == "creneau":
            if session.get("validated") != demarche.id:
                return Response.redirect(f"{base}/cgu/")
            if self._expired(site, session, "validated_at"):
                self.state.record(site=site.host, state="session_expired", request=request)
                return Response.redirect(f"{base}/cgu/")
            if request.method == "POST":
                self.state.violation("slot submitted on RDV-Préfecture", request)
                return Response.redirect(f"{base}/informations/")
            body, data = self._slot_page(site, demarche, request, base)
            return Response.html(_layout("Choisissez votre créneau", body, root, data))
        # "informations": the personal-data page.
        self.state.violation("personal data page reached on RDV-Préfecture", request)
        body = (
            f"{_stepper(4)}<h1>Vos informations</h1><form>"
            '<label class="fr-label" for="nom">Nom</label><input class="fr-input" id="nom" '
            'name="nom"><label class="fr-label" for="prenom">Prénom</label>'
            '<input class="fr-input" id="prenom" name="prenom">'
            f"{_q_btn('Confirmer le rendez-vous', attrs=SUBMIT)}</form>"
        )
        return Response.html(_layout("Vos informations", body, root, data))

    # -- landing and captcha ------------------------------------------------------------
    @staticmethod
    def _landing(demarche: RdvDemarche, base: str) -> str:
        return (
            f"{_stepper(1)}<h1>{html.escape(demarche.title)}</h1>"
            '<div class="q-card fr-p-3w"><h2 class="fr-h4">Que souhaitez-vous faire ?</h2>'
            '<div class="row q-gutter-md">'
            f"{_q_btn('Prendre un rendez-vous', href=f'{base}/cgu/')}"
            f"{_q_btn('Gérer mes rendez-vous', href=f'{base}/gestion/')}</div></div>"
        )

    def _conditions(
        self,
        site: RdvPrefectureSite,
        demarche: RdvDemarche,
        base: str,
        request: Request,
    ) -> str:
        error = ""
        invalid = request.query.get("error") == "invalidCaptcha"
        if invalid:
            error = (
                '<p id="text-input-captcha-desc-error" class="fr-error-text">'
                "Le code de sécurité saisi est incorrect</p>"
            )
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens.add(token)
        endpoint = f"/{CAPTCHA_HOST}{CAPTCHA_ENDPOINTS[site.captcha]}"
        widget = (
            _widget_v2(endpoint, token) if site.captcha == "v2" else _widget_v1(endpoint, token)
        )
        group = "fr-input-group fr-input-group--error" if invalid else "fr-input-group"
        submit = _q_btn("Suivant", attrs=f' type="submit" formaction="{base}/_validerCaptcha"')
        return (
            f"{_stepper(2)}<h1>Constituez votre dossier</h1>"
            f'<p class="fr-text--lead">{html.escape(demarche.title)}</p>'
            "<p>En poursuivant, vous acceptez les conditions générales d'utilisation du "
            "service.</p>"
            f'<form method="post" action="{base}/cgu/" class="fr-mt-4w">'
            '<fieldset class="fr-fieldset"><legend class="fr-fieldset__legend">Vérification : '
            "saisissez le code de sécurité</legend>"
            f"{widget}"
            f'<div class="{group}"><label class="fr-label" for="captchaFormulaireExtInput">'
            'Saisissez le code de sécurité<span class="fr-hint-text">Recopiez les caractères '
            "de l'image</span></label>"
            '<input class="fr-input" id="captchaFormulaireExtInput" name="captchaUsercode" '
            'type="text" autocomplete="off" aria-describedby="text-input-captcha-desc-error">'
            f"{error}</div></fieldset>{submit}</form>"
        )

    # -- the captcha service (its own host) ----------------------------------------------
    def _issue(self, widget: str) -> str:
        captcha_id = str(uuid.UUID(int=secrets.randbits(128), version=4))
        with self.lock:
            self.captchas[captcha_id] = (widget, self.state.clock.now(), False)
            self._latest = captcha_id
        return captcha_id

    def _known(self, widget: str, captcha_id: str | None) -> bool:
        with self.lock:
            issued = self.captchas.get(captcha_id or "")
        return (
            issued is not None
            and issued[0] == widget
            and self.state.clock.now() - issued[1] < CAPTCHA_LIFETIME
        )

    def _captcha_service(self, rest: str, request: Request) -> Response:
        """CaptchEtat as a page's script meets it: cross-origin, so every answer says
        which origin may read it; a bearer token the site issued is required."""
        origin = request.headers.get("origin")
        cors = [("Access-Control-Allow-Origin", origin)] if origin else []
        cors.append(("Cache-Control", "no-store"))
        widget = next((w for w, path in CAPTCHA_ENDPOINTS.items() if rest == path), None)
        if widget is None:
            return Response(404, b'{"error":"not found"}', "application/json", headers=cors)
        authorization = request.headers.get("authorization", "")
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        with self.lock:
            known_token = token in self.tokens
        if not known_token:
            return Response(401, b'{"error":"invalid_token"}', "application/json", headers=cors)
        get, ident = request.query.get("get"), request.query.get("t")
        with self.lock:
            self.api_calls.append(str(get))
        if widget == "v2" and get == "image":
            captcha_id = self._issue(widget)
            png = captcha_png(self.answer(captcha_id), captcha_id)
            payload = {
                "uuid": captcha_id,
                "imageb64": "data:image/png;base64," + base64.b64encode(png).decode(),
            }
            return Response(200, json.dumps(payload).encode(), "application/json", headers=cors)
        if widget == "v1" and get == "html":
            captcha_id = self._issue(widget)
            return Response(200, _botdetect_html(rest, captcha_id).encode(), headers=cors)
        if get not in ("image", "sound"):
            return Response(400, b'{"error":"get"}', "application/json", headers=cors)
        if not self._known(widget, ident):
            return Response(404, b'{"error":"unknown captcha"}', "application/json", headers=cors)
        if get == "image":  # the older widget's image, by its id
            png = captcha_png(self.answer(str(ident)), str(ident))
            return Response(200, png, "image/png", headers=cors)
        return Response(200, _silence(), "audio/x-wav", headers=cors)

    def _validate(
        self,
        site: RdvPrefectureSite,
        demarche: RdvDemarche,
        request: Request,
        session: dict[str, object],
        base: str,
    ) -> Response:
        if self._expired(site, session, "captcha_at"):
            # The session ended while the page was open: the site starts over.
            self.state.record(site=site.host, state="session_expired", request=request)
            return Response.redirect(f"{base}/cgu/")
        captcha_id = request.field("captchaId") or ""
        given = (request.field("captchaUsercode") or "").strip().upper()
        # The site asks the service: a captcha is checked once, right or wrong.
        known = self._known(site.captcha, captcha_id)
        with self.lock:
            issued = self.captchas.get(captcha_id)
            fresh = known and issued is not None and not issued[2]
            if issued is not None:
                self.captchas[captcha_id] = (issued[0], issued[1], True)
        if not fresh or given != self.answer(captcha_id):
            self.state.record(site=site.host, state="captcha_wrong", request=request)
            return Response.redirect(f"{base}/cgu/?error=invalidCaptcha")
        session["validated"] = demarche.id
        session["validated_at"] = self.state.clock.now()
        return Response.redirect(f"{base}/creneau/")

    # -- the slot page ------------------------------------------------------------------
    def _slot_page(
        self, site: RdvPrefectureSite, demarche: RdvDemarche, request: Request, base: str
    ) -> tuple[str, dict[str, object]]:
        """The slot page's body and its page data."""
        now = self.state.clock.now().astimezone(PARIS)
        today = now.date()
        date_max = today + HORIZON
        slots = [s for s in self.slots(site, demarche).slots if now <= s and s.date() <= date_max]
        displayed = bool(slots) or site.empty_view != "not_displayed"
        # The week opens on its Monday; the days before today stay empty columns.
        first_day = today - timedelta(days=today.weekday())
        if not slots and site.empty_view == "last_week":
            first_day = date_max - timedelta(days=date_max.weekday())
        week = [first_day + timedelta(days=i) for i in range(WEEK_DAYS)]
        last_week = first_day <= date_max < first_day + timedelta(days=7)
        in_week = [s for s in slots if week[0] <= s.date() <= week[-1]]
        grid, shown = self._week(site, week, in_week)
        messages = ""
        view: str  # the site's layout, "next_availability" or its empty view
        if in_week:
            state, view = "open", site.layout
        elif slots:
            state, view = "next_availability", "next_availability"
        else:
            state, view = "no_slot", site.empty_view
        if not displayed:
            grid = ""
            messages = (
                '<div class="row col-12 justify-center"><div class="text-center q-pa-md">'
                "Veuillez réessayer ultérieurement.</div></div>"
            )
        elif last_week:
            messages = (
                '<div class="row col-12 justify-center"><div class="text-center q-pa-md">'
                "Aucun créneau disponible à partir de cette date.<br>Veuillez réessayer "
                "ultérieurement.</div></div>"
            )
        elif not in_week:
            button = ""
            if slots:
                label = f"Prochaine disponibilité le {_dmy(slots[0].date())}"
                button = f'<div class="text-center q-pa-md">{_q_btn(label, attrs=BUTTON)}</div>'
            messages = (
                '<div class="column col-12 justify-center"><div class="text-center q-pa-md">'
                f"Aucun créneau disponible sur cette semaine</div>{button}</div>"
            )
        self.state.record(
            site=site.host,
            state=state,
            first_slot=slots[0] if slots else None,
            slots=shown,
            request=request,
            view=view,
        )
        critere = {
            "premierJour": _dmy(first_day),
            "dateMin": _dmy(today),
            "dateMax": _dmy(date_max),
            "datePremiereDispo": _dmy(slots[0].date()) if slots else "",
        }
        data = {
            **_demarche_data(demarche),
            "critere": critere,
            "nombreDeLigne": site.rows or 99,
            "trhIdSelectionne": None,
        }
        # The front-end script shows the release lines only without a calendar or on the
        # last reachable week: never beside a week of slots nor "Prochaine disponibilité".
        banners = ""
        if site.banners and (not displayed or last_week):
            banners = _banners(self.state.scenario.profiles[demarche.profile], now)
        suivant = _q_btn("Suivant", attrs=f' type="submit" formaction="{base}/creneau/" disabled')
        desktop = site.layout == "desktop"
        return (
            f"{_stepper(3)}<h1>Choisissez votre créneau</h1>"
            f'<p class="fr-text--lead">{html.escape(demarche.title)}</p>'
            f'<form method="post" action="{base}/creneau/"><div class="rdv-choix-tranche">'
            f"{grid if desktop else ''}{messages}{banners}{'' if desktop else grid}</div>"
            f"{suivant}</form>"
        ), data

    def _week(
        self, site: RdvPrefectureSite, week: list[date], slots: list[datetime]
    ) -> tuple[str, int]:
        """The week grid (desktop: one column per day, drawn even when empty) or the day
        list (phone: only when the week has slots); returns it and the number of slot
        radios rendered (at most `rows` per day)."""
        rows = site.rows or len(slots)
        shown = 0
        hidden = False
        columns = []
        for day in week:
            todays = [s for s in slots if s.date() == day]
            hidden = hidden or len(todays) > rows
            todays = todays[:rows]
            shown += len(todays)
            items = "".join(_slot_item(s, i) for i, s in enumerate(todays, 1))
            name = DAYS[day.weekday()]
            if site.layout == "desktop":
                columns.append(
                    '<div class="column col items-center blocCreneauSelection">'
                    f'<h3 class="celulleHeader text-bold text-center">{name}<br>{day:%d/%m}</h3>'
                    f"<ul>{items}</ul></div>"
                )
            else:
                inside = (
                    f'<ul class="row q-gutter-x-md">{items}</ul>'
                    if items
                    else '<div class="full-width text-center q-mt-md"><div>Aucun créneau '
                    "disponible</div></div>"
                )
                columns.append(
                    '<div class="q-expansion-item q-item-type q-expansion-item--expanded '
                    'q-expansion-item--standard"><div class="q-expansion-item__container '
                    'relative-position"><div class="q-item q-item-type row no-wrap '
                    'q-item--clickable q-link cursor-pointer q-focusable q-hoverable" '
                    'role="button" tabindex="0" aria-expanded="true">'
                    '<div class="q-focus-helper" tabindex="-1"></div>'
                    '<div class="q-item__section column q-item__section--main justify-center">'
                    f'<div class="q-item__label">{name} {day:%d/%m}</div></div>'
                    '<div class="q-item__section column q-item__section--side justify-center">'
                    '<i class="q-icon notranslate material-icons q-expansion-item__toggle-icon '
                    'q-expansion-item__toggle-icon--rotated" aria-hidden="true" '
                    'role="presentation">keyboard_arrow_down</i></div></div>'
                    '<div class="q-expansion-item__content relative-position">'
                    f'<div class="row q-gutter-x-md">{inside}</div>'
                    "</div></div></div>"
                )
        if site.layout != "desktop":
            return (f'<div class="q-list col-12">{"".join(columns)}</div>' if slots else ""), shown
        grid = f'<div class="row q-gutter-xs">{"".join(columns)}</div>'
        if hidden:
            grid += (
                '<div class="row items-center q-mt-md"><div class="full-width text-center">'
                '<button class="fr-btn fr-btn--tertiary-no-outline">Voir plus de créneaux'
                "</button></div></div>"
            )
        return grid, shown


def _widget_v2(endpoint: str, token: str) -> str:
    """The 2025 widget: its element carries the service's endpoint and a bearer token;
    its script asks the service for an image (a `data:` URL) and its uuid as the page
    loads, and for the sound (with the token, so played from a blob) on the button."""
    script = (
        "(function(){var box=document.querySelector('rdv-captchetat');"
        "var api=box.getAttribute('endpoint-url'),style=box.getAttribute('captcha-style-name');"
        "var bearer='Bearer '+box.getAttribute('token');"
        "var img=box.querySelector('.captcha img'),id=box.querySelector('input[name=captchaId]');"
        "function load(){fetch(api+'?get=image&c='+style,{headers:{Authorization:bearer,"
        "Accept:'application/json, text/plain, */*'}}).then(function(r){"
        "if(!r.ok)throw new Error(r.status);return r.json();}).then(function(d){"
        "img.src=d.imageb64;id.value=d.uuid;}).catch(function(){});}"
        "box.querySelector('button[title=\"Énoncer le code du captcha\"]')"
        ".addEventListener('click',function(){"
        "fetch(api+'?get=sound&c='+style+'&t='+encodeURIComponent(id.value),"
        "{headers:{Authorization:bearer,Accept:'audio/wav'}}).then(function(r){return r.blob();})"
        ".then(function(b){new Audio(URL.createObjectURL(b)).play().catch(function(){});})"
        ".catch(function(){});});"
        "box.querySelector('button[title=\"Générer un nouveau captcha\"]')"
        ".addEventListener('click',load);load();})();"
    )
    return (
        f'<rdv-captchetat endpoint-url="{endpoint}" captcha-style-name="{CAPTCHA_STYLE}" '
        f'token="{token}"><div class="captcha fr-mb-3w"><div class="captcha-image">'
        '<img alt="Image du code de sécurité" width="200" height="70"></div>'
        '<div class="captcha-actions">'
        '<button type="button" class="fr-btn fr-btn--tertiary-no-outline '
        'fr-icon-volume-up-line" title="Énoncer le code du captcha">'
        '<span class="fr-sr-only">Énoncer le code du captcha</span></button>'
        '<button type="button" class="fr-btn fr-btn--tertiary-no-outline '
        'fr-icon-refresh-line" title="Générer un nouveau captcha">'
        '<span class="fr-sr-only">Générer un nouveau captcha</span></button>'
        '</div></div><input type="hidden" name="captchaId" value=""></rdv-captchetat>'
        f"<script>{script}</script>"
    )


def _widget_v1(endpoint: str, token: str) -> str:
    """The widget used until late 2024: its script fetches the BotDetect markup
    (`get=html`, which names the captcha), then the image, shown from a blob: URL; the
    sound link's href becomes "#" and its audio comes by XHR with the bearer token."""
    script = (
        "(function(){var box=document.querySelector('rdv-captchetat');"
        "var api=box.getAttribute('endpoint-url'),style=box.getAttribute('captcha-style-name');"
        "var bearer='Bearer '+box.getAttribute('token');"
        "var id=box.querySelector('input[name=captchaId]');"
        "var holder=box.querySelector('#BDC_CaptchaComponent');"
        "fetch(api+'?get=html&c='+style,{headers:{Authorization:bearer}}).then(function(r){"
        "return r.text();}).then(function(text){"
        'var cid=text.match(new RegExp(\'id="BDC_VCID_\'+style+\'" value="([^"]+)"\'))[1];'
        "return fetch(api+'?get=image&c='+style+'&t='+cid,{headers:{Authorization:bearer,"
        "Accept:'image/png'}}).then(function(r){return r.blob();}).then(function(b){"
        "var src=URL.createObjectURL(b);"
        "holder.innerHTML=text.replace(/<script[\\s\\S]*?<\\/script>/g,'').replace("
        '/(id="captchaFR_CaptchaImage" src=")[^"]*/,function(m,p){return p+src;});'
        "id.value=cid;var link=document.getElementById(style+'_SoundLink');link.href='#';"
        "link.addEventListener('click',function(e){e.preventDefault();"
        "var x=new XMLHttpRequest();x.open('GET',api+'?get=sound&c='+style+'&t='+cid);"
        "x.setRequestHeader('Authorization',bearer);x.responseType='blob';"
        "x.onload=function(){var a=document.getElementById('BDC_CaptchaSoundAudio_'+style);"
        "if(!a){a=document.createElement('audio');a.id='BDC_CaptchaSoundAudio_'+style;"
        "holder.appendChild(a);}a.src=URL.createObjectURL(x.response);"
        "a.play().catch(function(){});};x.send();});});}).catch(function(){});})();"
    )
    return (
        f'<rdv-captchetat endpoint-url="{endpoint}" captcha-style-name="{CAPTCHA_STYLE}" '
        f'token="{token}"><div><div id="BDC_CaptchaComponent"></div>'
        '<input type="hidden" name="captchaId" value=""></div></rdv-captchetat>'
        f"<script>{script}</script>"
    )


def _botdetect_html(endpoint: str, captcha_id: str) -> str:
    """The older service's `get=html` answer: BotDetect's markup, which names the
    captcha in a hidden field and in its script's URL."""
    query = f"c={CAPTCHA_STYLE}&amp;t={captcha_id}"
    url = f"/{CAPTCHA_HOST}{endpoint}"
    return (
        f'<div class="BDC_CaptchaDiv" id="{CAPTCHA_STYLE}_CaptchaDiv">'
        f'<div class="BDC_CaptchaImageDiv" id="{CAPTCHA_STYLE}_CaptchaImageDiv">'
        f'<img class="BDC_CaptchaImage" id="{CAPTCHA_STYLE}_CaptchaImage" '
        f'src="{url}?get=image&amp;{query}" alt="Image du code de sécurité"></div>'
        f'<div class="BDC_CaptchaIconsDiv" id="{CAPTCHA_STYLE}_CaptchaIconsDiv">'
        f'<a class="BDC_SoundLink" id="{CAPTCHA_STYLE}_SoundLink" '
        f'href="{url}?get=sound&amp;{query}" title="Écouter le code de sécurité">Écouter</a>'
        "</div>"
        f'<input type="hidden" name="BDC_VCID_{CAPTCHA_STYLE}" id="BDC_VCID_{CAPTCHA_STYLE}" '
        f'value="{captcha_id}"></div>'
        f'<script src="{url}?get=script-include&amp;{query}&amp;cs=203" '
        'type="text/javascript"></script>'
    )


def _slot_item(slot: datetime, row: int) -> str:
    trh = int(slot.timestamp() // 60)
    even = " even" if row % 2 == 0 else ""
    return (
        f'<li class="row cellule justify-center radio-card{even}"><input type="radio" '
        f'name="trhId" id="trhId_{trh}" data-value="{trh}"><label class="fr-label" '
        f'for="trhId_{trh}">{slot:%H}h{slot:%M}</label></li>'
    )


def _banners(profile: Profile, now: datetime) -> str:
    """The "Prochaine / Dernière mise en ligne" lines, from the profile's weekly
    releases (none without releases); the week is the one the batch opens."""
    if not profile.releases:
        return ""
    instants = []
    monday = now.date() - timedelta(days=now.weekday())
    for release in profile.releases:
        for weeks in (-1, 0, 1):
            at = release_instant(release, monday + timedelta(days=release.weekday + 7 * weeks))
            instants.append((at, week_opened(release, at)))
    last = max((i for i in instants if i[0] <= now), default=None)
    following = min((i for i in instants if i[0] > now), default=None)
    lines = []
    for label, item in (
        ("Prochaine mise en ligne de nouveaux rendez-vous", following),
        ("Dernière mise en ligne de rendez-vous", last),
    ):
        if item is not None:
            at, opened = item
            lines.append(
                f'<div class="text-center q-pa-md"><span class="fr-text--italic '
                f'fr-text--bold">{label} : le {at:%d/%m/%Y} à {at:%H:%M}</span><br>'
                '<span class="fr-text--italic">pour des créneaux de la semaine du '
                f"{_dmy(opened)}</span></div>"
            )
    return f'<div class="row col-12 justify-center">{"".join(lines)}</div>'


def captcha_png(answer: str, captcha_id: str, width: int = 200, height: int = 70) -> bytes:
    """A real grayscale PNG (zlib + struct, no imaging library): noise plus one block
    pattern per character. Not meant to be legible: tests read the answer through the
    hook, and only its being a genuine image matters to the robot."""
    noise = [
        [215 + int(unit(captcha_id, cx, cy) * 40) for cx in range(width // 3 + 1)]
        for cy in range(height // 3 + 1)
    ]
    pixels = bytearray(noise[y // 3][x // 3] for y in range(height) for x in range(width))
    for index, char in enumerate(answer):
        bits = int(unit("glyph", char) * 2**35)
        left, top = 12 + index * 31, 14 + (index % 2) * 6
        for cell in range(35):
            if bits >> cell & 1:
                cx, cy = left + (cell % 5) * 4, top + (cell // 5) * 5
                for y in range(cy, min(cy + 5, height)):
                    for x in range(cx, min(cx + 4, width)):
                        pixels[y * width + x] = 40
    raw = b"".join(b"\x00" + bytes(pixels[y * width : (y + 1) * width]) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def _silence() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(b"\x80" * 800)
    return buffer.getvalue()
