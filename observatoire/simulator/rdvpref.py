"""The national RDV-Préfecture platform as its pages really are (the
project's platform notes §2, verified 2026): the landing page, the conditions page with the State's
captcha (CaptchEtat, 2025 widget by default, the older one as a per-site option), the
wrong-answer path, the slot page (`rdv-choix-tranche`) in every state the reference
lists, session expiry, and the "Vos informations" page the robot must never reach.

Why so literal: the adapters were once tested against a simulator built from the same
guesses as the adapters, and passed while they would have misread the real site (a
"next availability" week read as no slot). The markup and texts below are written from
the reference, never from the adapters (which this module must not import).

The captcha answer is derived from the seed and the captcha id. It never appears in a
page: tests read it through `answer()` or the `/_sim/captcha/<id>` hook, exactly as a
volunteer would read the image.

What the slot page shows follows the slot truth (`SimulatorState.slots_now`) and the
site's options (`RdvPrefectureSite`): slots in the displayed week → the week grid
(desktop or phone); slots only later → "Aucun créneau disponible sur cette semaine" and
"Prochaine disponibilité le …"; nothing → the site's empty view. Each look is recorded
as truth (state `open`, `next_availability` or `no_slot`, the view served, the first
slot and the number of slot radios rendered).
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
#: The captcha service's endpoint (CaptchEtat's "simple captcha endpoint"), proxied by
#: the site: `get=image` → JSON {imageb64, uuid} (v2) or the PNG of `t` (v1);
#: `get=sound&t=<uuid>` → audio/x-wav.
CAPTCHA_API = "/rdvpref/api/captcha/simple-captcha-endpoint"
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
#: Days shown by the slot page: `premierJour` and the five following.
WEEK_DAYS = 6
#: How far ahead the agenda opens (`dateMax`): the engine's default is two months.
HORIZON = timedelta(days=60)


#: The application's static files, loaded by every page as a single-page app's are.
STATIC = {
    "app.js": (
        "document.documentElement.setAttribute('data-app', 'ready');",
        "text/javascript; charset=utf-8",
    ),
    "dsfr.css": (
        "body{font-family:sans-serif;margin:1rem}.fr-btn,.q-btn{background:#000091;color:#fff}"
        ".blocCreneauSelection{display:inline-block;vertical-align:top;margin:0 .5rem}"
        ".captcha img{border:1px solid #333}",
        "text/css; charset=utf-8",
    ),
}


def _layout(title: str, body: str, root: str) -> str:
    return (
        '<!DOCTYPE html><html lang="fr" data-fr-scheme="system"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} - Rendez-vous en préfecture</title>"
        f'<link rel="stylesheet" href="{root}/static/dsfr.css">'
        f'<script src="{root}/static/app.js" defer></script></head><body>'
        '<header role="banner" class="fr-header"><div class="fr-header__body">'
        '<p class="fr-header__service-title">Rendez-vous en préfecture</p></div></header>'
        '<div id="q-app" data-v-app=""><div class="q-layout q-layout--standard">'
        f'<main role="main" id="contenu" class="fr-container fr-py-4w">{body}</main>'
        '</div></div><div id="tarteaucitronRoot"></div></body></html>'
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


class RdvPrefectureModule:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.lock = threading.Lock()
        self.sessions: dict[str, dict[str, object]] = {}
        self._latest: str | None = None
        #: The `get` of every captcha-service call (test hook: who asked for the audio).
        self.api_calls: list[str] = []

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
        sid, session = self._session(request)
        if rest == CAPTCHA_API:
            response = self._captcha_api(site, request, session)
        else:
            match = ROUTE.match(rest)
            if not match:
                page = _layout("Page introuvable", "<h1>Page introuvable</h1>", root)
                return Response.html(page, 404)
            demarche = next((d for d in site.demarches if d.id == int(match.group(1))), None)
            now = self.state.clock.now()
            if demarche is None or any(
                p.contains(self.state.anchor, now) for p in demarche.missing
            ):
                self.state.record(site=site.host, state="missing", request=request)
                body = "<h1>Cette démarche n'est pas disponible</h1>"
                return Response.html(_layout("Démarche indisponible", body, root), 404)
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
        if step == "":
            return Response.html(_layout("Accueil", self._landing(demarche, base), root))
        if step == "cgu":
            captcha_id = self._new_captcha(session)
            body = self._conditions(site, demarche, base, root, captcha_id, request)
            return Response.html(_layout("Constituez votre dossier", body, root))
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
            body = self._slot_page(site, demarche, request, base)
            return Response.html(_layout("Choisissez votre créneau", body, root))
        # "informations": the personal-data page.
        self.state.violation("personal data page reached on RDV-Préfecture", request)
        body = (
            f"{_stepper(4)}<h1>Vos informations</h1><form>"
            '<label class="fr-label" for="nom">Nom</label><input class="fr-input" id="nom" '
            'name="nom"><label class="fr-label" for="prenom">Prénom</label>'
            '<input class="fr-input" id="prenom" name="prenom">'
            f"{_q_btn('Confirmer le rendez-vous', attrs=SUBMIT)}</form>"
        )
        return Response.html(_layout("Vos informations", body, root))

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

    def _new_captcha(self, session: dict[str, object]) -> str:
        captcha_id = str(uuid.UUID(int=secrets.randbits(128), version=4))
        session["captcha"] = captcha_id
        session["captcha_at"] = self.state.clock.now()
        with self.lock:
            self._latest = captcha_id
        return captcha_id

    def _conditions(
        self,
        site: RdvPrefectureSite,
        demarche: RdvDemarche,
        base: str,
        root: str,
        captcha_id: str,
        request: Request,
    ) -> str:
        error = ""
        invalid = request.query.get("error") == "invalidCaptcha"
        if invalid:
            error = (
                '<p id="text-input-captcha-desc-error" class="fr-error-text">'
                "Le code de sécurité saisi est incorrect</p>"
            )
        widget = (
            self._widget_v2(captcha_id, root)
            if site.captcha == "v2"
            else self._widget_v1(captcha_id, root)
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
            f'<input type="hidden" name="captchaId" value="{captcha_id}">'
            f"{widget}"
            f'<div class="{group}"><label class="fr-label" for="captchaFormulaireExtInput">'
            'Saisissez le code de sécurité<span class="fr-hint-text">Recopiez les caractères '
            "de l'image</span></label>"
            '<input class="fr-input" id="captchaFormulaireExtInput" name="captchaUsercode" '
            'type="text" autocomplete="off" aria-describedby="text-input-captcha-desc-error">'
            f"{error}</div></fieldset>{submit}</form>"
        )

    def _widget_v2(self, captcha_id: str, root: str) -> str:
        """The 2025 widget: a base64 PNG, an audio button and a new-image button, both
        driven by the page's own script."""
        image = base64.b64encode(captcha_png(self.answer(captcha_id), captcha_id)).decode()
        api = json.dumps(f"{root}/api/captcha/simple-captcha-endpoint")
        script = (
            "(function(){var api=" + api + ";"
            "var box=document.querySelector('.captcha');"
            "var img=box.querySelector('img');"
            "var id=document.querySelector('input[name=captchaId]');"
            "box.querySelector('button[title=\"Énoncer le code du captcha\"]')"
            ".addEventListener('click',function(){"
            "fetch(api+'?get=sound&c=captchaFR&t='+encodeURIComponent(id.value),"
            "{credentials:'same-origin'}).then(function(r){return r.blob();})"
            ".then(function(b){var a=new Audio(URL.createObjectURL(b));"
            "a.play().catch(function(){});}).catch(function(){});});"
            "box.querySelector('button[title=\"Générer un nouveau captcha\"]')"
            ".addEventListener('click',function(){"
            "fetch(api+'?get=image&c=captchaFR',{credentials:'same-origin'})"
            ".then(function(r){return r.json();}).then(function(d){"
            "img.src='data:image/png;base64,'+d.imageb64;id.value=d.uuid;})"
            ".catch(function(){});});})();"
        )
        return (
            '<div class="captcha fr-mb-3w"><div class="captcha-image">'
            f'<img src="data:image/png;base64,{image}" alt="Image du code de sécurité" '
            'width="200" height="70"></div><div class="captcha-actions">'
            '<button type="button" class="fr-btn fr-btn--tertiary-no-outline '
            'fr-icon-volume-up-line" title="Énoncer le code du captcha">'
            '<span class="fr-sr-only">Énoncer le code du captcha</span></button>'
            '<button type="button" class="fr-btn fr-btn--tertiary-no-outline '
            'fr-icon-refresh-line" title="Générer un nouveau captcha">'
            '<span class="fr-sr-only">Générer un nouveau captcha</span></button>'
            f"</div></div><script>{script}</script>"
        )

    @staticmethod
    def _widget_v1(captcha_id: str, root: str) -> str:
        """The widget used until late 2024: the image shown from a blob: URL and a sound
        link whose href is "#", both fetched by script with a bearer token."""
        token = secrets.token_hex(12)
        api = json.dumps(f"{root}/api/captcha/simple-captcha-endpoint")
        script = (
            "(function(){var api="
            + api
            + ";var h={headers:{Authorization:'Bearer "
            + token
            + "'},credentials:'same-origin'};"
            "var id=document.querySelector('input[name=captchaId]');"
            "fetch(api+'?get=image&c=captchaFR&t='+encodeURIComponent(id.value),h)"
            ".then(function(r){return r.blob();}).then(function(b){"
            "document.getElementById('captchaFR_CaptchaImage').src=URL.createObjectURL(b);})"
            ".catch(function(){});"
            "document.getElementById('captchaFR_SoundLink').addEventListener('click',"
            "function(e){e.preventDefault();var x=new XMLHttpRequest();"
            "x.open('GET',api+'?get=sound&c=captchaFR&t='+encodeURIComponent(id.value));"
            "x.setRequestHeader('Authorization','Bearer " + token + "');"
            "x.responseType='blob';x.onload=function(){"
            "new Audio(URL.createObjectURL(x.response)).play().catch(function(){});};"
            "x.send();});})();"
        )
        return (
            f'<rdv-captchetat token="{token}" captcha-style-name="captchaFR">'
            '<div id="captchaFR" class="captchaFR"><div class="captchaFR_CaptchaImageDiv">'
            '<img id="captchaFR_CaptchaImage" alt="Image du code de sécurité"></div>'
            '<div class="captchaFR_CaptchaSoundDiv"><a id="captchaFR_SoundLink" href="#" '
            'title="Écouter le code de sécurité">Écouter</a></div></div></rdv-captchetat>'
            f"<script>{script}</script>"
        )

    def _captcha_api(
        self, site: RdvPrefectureSite, request: Request, session: dict[str, object]
    ) -> Response:
        get, token = request.query.get("get"), request.query.get("t")
        with self.lock:
            self.api_calls.append(str(get))
        if get == "image" and token is None and site.captcha == "v2":
            captcha_id = self._new_captcha(session)
            png = captcha_png(self.answer(captcha_id), captcha_id)
            payload = {"imageb64": base64.b64encode(png).decode(), "uuid": captcha_id}
            return Response(
                200,
                json.dumps(payload).encode(),
                "application/json",
                headers=[("Cache-Control", "no-store")],
            )
        if token is None or token != session.get("captcha"):
            return Response(404, b'{"error":"unknown captcha"}', "application/json")
        if site.captcha == "v1" and not request.headers.get("authorization", "").startswith(
            "Bearer "
        ):
            return Response(401, b'{"error":"token"}', "application/json")
        if get == "image" and site.captcha == "v1":
            png = captcha_png(self.answer(token), token)
            return Response(200, png, "image/png", headers=[("Cache-Control", "no-store")])
        if get == "sound":
            return Response(200, _silence(), "audio/x-wav", headers=[("Cache-Control", "no-store")])
        return Response(400, b'{"error":"get"}', "application/json")

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
        expected = session.get("captcha")
        given = (request.field("captchaUsercode") or "").strip().upper()
        if (
            not expected
            or request.field("captchaId") != expected
            or given != self.answer(str(expected))
        ):
            self.state.record(site=site.host, state="captcha_wrong", request=request)
            return Response.redirect(f"{base}/cgu/?error=invalidCaptcha")
        session["validated"] = demarche.id
        session["validated_at"] = self.state.clock.now()
        session.pop("captcha", None)
        return Response.redirect(f"{base}/creneau/")

    # -- the slot page ------------------------------------------------------------------
    def _slot_page(
        self, site: RdvPrefectureSite, demarche: RdvDemarche, request: Request, base: str
    ) -> str:
        now = self.state.clock.now().astimezone(PARIS)
        today = now.date()
        date_max = today + HORIZON
        slots = [s for s in self.slots(site, demarche).slots if s.date() <= date_max]
        first_day = today
        if not slots and site.empty_view == "last_week":
            first_day = date_max - timedelta(days=WEEK_DAYS - 1)
        week = [first_day + timedelta(days=i) for i in range(WEEK_DAYS)]
        in_week = [s for s in slots if week[0] <= s.date() <= week[-1]]
        view: str  # the site's layout, "next_availability" or its empty view
        if in_week:
            state, view = "open", site.layout
            calendar, shown = self._week(site, week, in_week)
        elif slots:
            state, view, shown = "next_availability", "next_availability", 0
            calendar = (
                '<div class="text-center q-pa-md"><p class="fr-text--lg fr-mb-2w">'
                "Aucun créneau disponible sur cette semaine</p>"
                f"{_q_btn(f'Prochaine disponibilité le {_dmy(slots[0].date())}', attrs=BUTTON)}"
                "</div>"
            )
        else:
            state, view, shown = "no_slot", site.empty_view, 0
            calendar = {
                "empty_week": '<div class="text-center q-pa-md"><p class="fr-text--lg">'
                "Aucun créneau disponible sur cette semaine</p></div>",
                "last_week": '<div class="text-center q-pa-md"><p class="fr-text--lg">'
                "Aucun créneau disponible à partir de cette date.</p>"
                "<p>Veuillez réessayer ultérieurement.</p></div>",
                "not_displayed": '<div class="text-center q-pa-md">'
                "<p>Veuillez réessayer ultérieurement.</p></div>",
            }[site.empty_view]
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
            "vueData": {
                "demarche": {"id": demarche.id, "libelle": demarche.title},
                "critere": critere,
                "nombreDeLigne": site.rows or 99,
                "trhIdSelectionne": None,
            }
        }
        banners = ""
        if site.banners:
            banners = _banners(self.state.scenario.profiles[demarche.profile], now)
        suivant = _q_btn("Suivant", attrs=f' type="submit" formaction="{base}/creneau/" disabled')
        return (
            f"{_stepper(3)}<h1>Choisissez votre créneau</h1>"
            f'<p class="fr-text--lead">{html.escape(demarche.title)}</p>'
            f'<script type="text/javascript">window.VertigoUi = window.VertigoUi || {{}};'
            f"VertigoUi.pageData = {json.dumps(data, ensure_ascii=False)};</script>"
            f'<form method="post" action="{base}/creneau/"><div class="rdv-choix-tranche">'
            f"{banners}{calendar}</div>{suivant}</form>"
        )

    def _week(
        self, site: RdvPrefectureSite, week: list[date], slots: list[datetime]
    ) -> tuple[str, int]:
        """The week grid (desktop) or the day list (phone); returns it and the number of
        slot radios rendered (at most `rows` per day)."""
        rows = site.rows or len(slots)
        shown = 0
        hidden = False
        columns = []
        for day in week:
            todays = [s for s in slots if s.date() == day]
            hidden = hidden or len(todays) > rows
            todays = todays[:rows]
            shown += len(todays)
            items = "".join(_slot_item(s) for s in todays)
            name = DAYS[day.weekday()]
            if site.layout == "desktop":
                columns.append(
                    '<div class="col blocCreneauSelection">'
                    f'<h3 class="celulleHeader">{name}<br>{day:%d/%m}</h3>'
                    f'<ul class="fr-p-0 fr-m-0">{items}</ul></div>'
                )
            else:
                inside = (
                    f'<ul class="fr-p-0 fr-m-0">{items}</ul>'
                    if items
                    else '<p class="text-center">Aucun créneau disponible</p>'
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
                    f'<div class="q-card"><div class="q-card__section">{inside}</div></div>'
                    "</div></div></div>"
                )
        grid = (
            f'<div class="row justify-center">{"".join(columns)}</div>'
            if site.layout == "desktop"
            else f'<div class="q-list">{"".join(columns)}</div>'
        )
        if hidden:
            grid += (
                '<div class="text-center fr-mt-2w">'
                f"{_q_btn('Voir plus de créneaux', attrs=BUTTON)}</div>"
            )
        return grid, shown


def _slot_item(slot: datetime) -> str:
    trh = int(slot.timestamp() // 60)
    return (
        '<li class="row cellule justify-center radio-card"><div class="fr-radio-group '
        f'fr-radio-rich"><input type="radio" name="trhId" id="trhId_{trh}" '
        f'data-value="{trh}" value="{trh}"><label class="fr-label" for="trhId_{trh}">'
        f"{slot:%H}h{slot:%M}</label></div></li>"
    )


def _banners(profile: Profile, now: datetime) -> str:
    """The "Dernière / Prochaine mise en ligne" lines, from the profile's weekly
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
                f'<p class="fr-mb-1w"><span class="fr-text--italic fr-text--bold">{label} : '
                f"le {at:%d/%m/%Y} à {at:%H:%M}</span> "
                f'<span class="fr-text--italic">pour des créneaux de la semaine du '
                f"{_dmy(opened)}</span></p>"
            )
    return f'<div class="fr-mb-2w">{"".join(lines)}</div>'


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
