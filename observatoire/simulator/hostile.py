"""A standing hostile test site: wrong-but-plausible pages, each with the outcomes an
honest robot may give.

Every case lives under its own host prefix, `/<case>.hostile/…`, and mimics one
platform closely enough to lure an adapter into a false verdict: a no-slot message
hidden with `display:none` on a page that offers to continue, the message on a page
whose form belongs to another form and prefecture, a redirect to another form's
result, an open démarche whose FAQ says "n'existe pas", a Cloudflare page served with
200, a login page, ISO-8859-1 declared only in a `<meta>`, a truncated body…

Written from platforms.md like the rest of the simulator, never from the adapters.
Used only by tests (`tests/test_hostile_site.py`); production code never imports it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from observatoire.simulator.http import Request, Response
from observatoire.simulator.server import Conduct, _Handler, _Server

#: The two real no-slot texts, as the module prints them (apostrophe escaped by eZ).
LEGACY_NO_SLOT = (
    "Il n&#039;existe plus de plage horaire libre pour votre demande de rendez-vous. "
    "Veuillez recommencer ultérieurement."
)
LEGACY_NO_CALENDAR = (
    "Il n&#039;y a pas calendrier disponible pour effectuer une demande de rendez-vous"
)
EA_ALERT = (
    "Aucun rendez-vous n'est possible pour les motifs selectionnnés "
    "ou le créneau horaire séléctionné."
)
FREE_CALENDAR = (
    '<div class="planning_Booking"><h4>Semaine du lundi 09 mars 2026 au dimanche 15 mars '
    "2026</h4><table><tr><th>Horaire</th><th>lun. 09/03</th><th>mar. 10/03</th></tr>"
    '<tr><th>09:30</th><td class="libre"><a href="#">plage libre</a></td>'
    '<td class="occupe">-</td></tr></table></div>'
)
CLOUDFLARE_BLOCK_200 = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Attention Required! | Cloudflare'
    '</title></head><body><div id="cf-wrapper"><div id="cf-error-details">'
    "<h1>Sorry, you have been blocked</h1><p>You are unable to access this site.</p>"
    "<p>Cloudflare Ray ID: <strong>81aa02bb03cc04dd</strong></p></div></div></body></html>"
)
CLOUDFLARE_CHALLENGE_200 = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title></head><body>'
    "<h2>Verify you are human by completing the action below.</h2>"
    '<input type="hidden" name="cf-turnstile-response">'
    "<script>window._cf_chl_opt={cType: 'managed'};</script>"
    "<p>Ray ID: <code>81aa02bb03cc04de</code></p></body></html>"
)


@dataclass(frozen=True)
class HostileCase:
    """One trap: which adapter it targets, what it tries, what an honest robot says."""

    name: str
    adapter: str
    trap: str
    #: Outcomes an honest robot may give on this page.
    allowed: frozenset[str]


def _case(name: str, adapter: str, trap: str, *allowed: str) -> HostileCase:
    return HostileCase(name, adapter, trap, frozenset(allowed))


L, D, E = "legacy_booking", "demarches_simplifiees", "eappointment"
U = "unrecognized"
CASES: tuple[HostileCase, ...] = (
    # -- the three false no_slots found in the legacy adapter ---------------------------
    _case(
        "continue-hidden-message",
        L,
        "a result offering to continue, a free calendar, and a display:none copy of the "
        "no-slot message",
        U,
        "available",
    ),
    _case(
        "other-form-other-prefecture",
        L,
        "the no-slot message on a page whose form posts to another form of another prefecture",
        U,
    ),
    _case("redirect-other-form", L, "a redirect to another form's no-slot result", U),
    _case("redirect-other-site", L, "a redirect to another prefecture's no-slot result", U),
    # -- the message where a visitor cannot see it ----------------------------------------
    _case("message-in-comment", L, "the message only in an HTML comment", U),
    _case("message-in-script", L, "the message only in a script string", U),
    _case("message-hidden-attribute", L, "the message in an element with `hidden`", U),
    _case("message-visibility-hidden", L, "the message in visibility:hidden", U),
    _case("message-in-attribute", L, "the message in a title attribute", U),
    _case("message-outside-form", L, "the message in the footer, not in the result form", U),
    _case("partial-message", L, "only the first sentence of the message", U),
    # -- the message with a contrary sign ------------------------------------------------
    _case("message-and-radios", L, "the message next to slot radios", U),
    _case(
        "message-and-free-calendar", L, "the message next to free calendar cells", U, "available"
    ),
    _case("message-and-continue", L, "the message next to an 'Etape suivante' button", U),
    _case("message-on-login-page", L, "the message on a login form", U),
    _case("step4-other-form", L, "a 'Première plage horaire libre' page of another form", U),
    _case("no-calendar-in-paragraph", L, "'pas calendrier' in help text, not ul.error", U),
    # -- transport, blocking, encodings ---------------------------------------------------
    _case("cloudflare-block-200", L, "Cloudflare's block page with status 200", "blocked"),
    _case("cloudflare-challenge-200", L, "Cloudflare's challenge with status 200", "blocked"),
    _case("truncated-result", L, "the genuine no-slot page cut in the middle", "error", U),
    _case("empty-result", L, "an empty 200 body", U),
    _case("latin1-labelled-utf8", L, "ISO-8859-1 bytes labelled UTF-8", U),
    # -- genuine pages: an honest robot must still see the truth --------------------------
    _case(
        "latin1-meta-only", L, "a genuine no-slot page in ISO-8859-1, meta charset only", "no_slot"
    ),
    _case("no-calendar-genuine", L, "the genuine 'pas calendrier' answer", "no_slot"),
    # -- démarche numérique -------------------------------------------------------------
    _case("dn-open-faq", D, "an open démarche whose FAQ says 'n'existe pas'", "form_open"),
    _case("dn-home-text-not-flash", D, "home page with 'n'existe pas' in body text", U),
    _case("dn-flash-on-form", D, "the absent flash on the démarche's own page", U, "form_open"),
    _case("dn-fermeture-no-heading", D, "/fermeture/<slug> without the closing heading", U),
    _case("dn-fermeture-other-slug", D, "a redirect to another démarche's closing page", U),
    _case("dn-flash-dsfr-alert", D, "the absent message in a DSFR fr-alert, not the flash", U),
    _case("dn-flash-hidden", D, "the genuine absent flash, display:none", U),
    _case("dn-flash-with-start", D, "the absent flash on a home page offering to start", U),
    _case("dn-absent-other-site", D, "a redirect to another site's genuine absent page", U),
    _case("dn-closed-with-start", D, "the closing heading next to the start call-out", U),
    _case("dn-cloudflare-200", D, "Cloudflare's block page with status 200", "blocked"),
    _case("dn-absent-genuine", D, "the genuine absent answer", "procedure_missing"),
    _case("dn-closed-genuine", D, "the genuine closed answer", "procedure_missing"),
    # -- eAppointment (browser) ---------------------------------------------------------
    _case("ea-corrected-spelling", E, "the alert with its typos corrected", U),
    _case("ea-alert-with-datepicker", E, "the alert over a date picker offering days", U),
    _case("ea-alert-other-site", E, "the alert raised on another instance's page", U),
    _case("ea-genuine", E, "the genuine Val-de-Marne alert", "no_slot"),
)
BY_NAME = {c.name: c for c in CASES}
LEGACY_FORM = 5000
SLUG = "titre-sejour"
EA_APP = "eAppointmenthostile"


def target_url(base_url: str, case: HostileCase) -> str:
    """The URL a target for `case` would be configured with."""
    host = f"{base_url}/{case.name}.hostile"
    if case.adapter == L:
        return f"{host}/booking/create/{LEGACY_FORM}"
    if case.adapter == D:
        return f"{host}/commencer/{SLUG}"
    return f"{host}/{EA_APP}/element/jsp/specific/entry.jsp"


# -- legacy pages -----------------------------------------------------------------------
def _legacy_page(inner: str, charset: str = "utf-8", extra: str = "") -> str:
    return (
        f'<!DOCTYPE html><html lang="fr"><head><meta charset="{charset}"><title>Prise de '
        'rendez-vous - Préfecture</title></head><body><div id="global_Booking">'
        '<ol class="progress_Booking"><li>Prise de rendez-vous</li><li>Descriptif</li>'
        "<li>Choix d'une plage</li><li>Contrôle de sécurité</li><li>Cordonnées personnelles"
        "</li><li>Valider et terminer</li></ol>"
        f'<div id="inner_Booking">{inner}</div></div>{extra}</body></html>'
    )


def _form(action: str, body: str) -> str:
    return (
        f'<form name="create" id="FormBookingCreate" class="jqTransform FormValidate" '
        f'method="post" action="{action}">{body}</form>'
    )


FINISH = '<input type="submit" name="finishButton" value="Terminer">'
HEADING = "<h2>Vérification de disponibilité</h2>"


def _legacy_result(case: str, base: str) -> Response:
    """The page the case shows where the result should be (`base` = its form's path)."""
    genuine = HEADING + _form(f"{base}/2", f"\n{LEGACY_NO_SLOT}\n{FINISH}")
    pages = {
        "continue-hidden-message": HEADING
        + _form(
            f"{base}/2",
            "<p>Des plages horaires sont disponibles.</p>"
            f'{FREE_CALENDAR}<div style="display: none">{LEGACY_NO_SLOT}</div>'
            '<input type="submit" name="nextButton" value="Etape suivante">',
        ),
        "other-form-other-prefecture": HEADING
        + _form(
            "https://www.val-doise.gouv.fr/booking/create/11404/2",
            f"{LEGACY_NO_SLOT}{FINISH}",
        ),
        "message-in-comment": HEADING + _form(f"{base}/2", f"<!-- {LEGACY_NO_SLOT} -->{FINISH}"),
        "message-in-script": HEADING
        + _form(f"{base}/2", f'<script>var m = "{LEGACY_NO_SLOT}";</script>{FINISH}'),
        "message-hidden-attribute": HEADING
        + _form(f"{base}/2", f"<p hidden>{LEGACY_NO_SLOT}</p>{FINISH}"),
        "message-visibility-hidden": HEADING
        + _form(f"{base}/2", f'<p style="visibility:hidden">{LEGACY_NO_SLOT}</p>{FINISH}'),
        "message-in-attribute": HEADING
        + _form(f"{base}/2", f'<span title="{LEGACY_NO_SLOT}">?</span>{FINISH}'),
        "message-outside-form": HEADING + _form(f"{base}/2", FINISH),
        "partial-message": HEADING
        + _form(
            f"{base}/2",
            "Il n&#039;existe plus de plage horaire libre pour votre demande de "
            f"rendez-vous.{FINISH}",
        ),
        "message-and-radios": HEADING
        + _form(
            f"{base}/2",
            f'{LEGACY_NO_SLOT}<p><input type="radio" name="slot" value="1">mardi 10 mars '
            f"09:30</p>{FINISH}",
        ),
        "message-and-free-calendar": HEADING
        + _form(f"{base}/2", f"{LEGACY_NO_SLOT}{FREE_CALENDAR}{FINISH}"),
        "message-and-continue": HEADING
        + _form(
            f"{base}/2",
            f'{LEGACY_NO_SLOT}<input type="submit" name="nextButton" value="Etape suivante">',
        ),
        "message-on-login-page": "<h2>Vérification de disponibilité</h2>"
        + _form(
            f"{base}/2",
            f'{LEGACY_NO_SLOT}<label for="login">Identifiant</label><input id="login" '
            'name="login"><input type="password" name="password">'
            '<input type="submit" name="finishButton" value="Terminer">',
        ),
        "step4-other-form": "<h2>Choix d'une plage</h2>"
        + _form(
            base.replace(f"/{LEGACY_FORM}", "/7777") + "/4",
            '<input type="submit" name="nextButton" value="Première plage horaire libre">',
        ),
        "truncated-result": genuine,
    }
    if case == "cloudflare-block-200":
        return Response.html(CLOUDFLARE_BLOCK_200)
    if case == "cloudflare-challenge-200":
        return Response.html(CLOUDFLARE_CHALLENGE_200)
    if case == "empty-result":
        return Response(200, b"", "text/html; charset=utf-8")
    if case == "latin1-meta-only":
        page = _legacy_page(genuine, charset="iso-8859-1")
        return Response(200, page.encode("iso-8859-1"), "text/html")
    if case == "latin1-labelled-utf8":
        page = _legacy_page(genuine)
        return Response(200, page.encode("iso-8859-1"), "text/html; charset=utf-8")
    if case == "message-outside-form":
        extra = f'<div id="footer"><p>{LEGACY_NO_SLOT}</p></div>'
        return Response.html(_legacy_page(pages[case], extra=extra))
    response = Response.html(_legacy_page(pages.get(case, genuine)))
    if case == "truncated-result":
        response.action = "truncate"
    return response


def _legacy(case: str, rest: str, request: Request) -> Response:
    prefix = f"/{case}.hostile"
    parts = rest.strip("/").split("/")
    if parts[:2] != ["booking", "create"] or len(parts) < 3:
        return Response.html("<h1>Page introuvable</h1>", 404)
    form_id = parts[2]
    step = parts[3] if len(parts) > 3 else "0"
    base = f"{prefix}/booking/create/{form_id}"
    if step == "0" and request.method == "GET":
        body = (
            '<div id="condition_Booking"><input type="checkbox" name="condition" '
            'id="condition"><label for="condition">Veuillez cocher la case pour accepter '
            "les conditions d'utilisation</label></div>"
            '<div id="submit_Booking"><input type="submit" name="nextButton" '
            'value="Effectuer une demande de rendez-vous"></div>'
        )
        return Response.html(_legacy_page(_form(f"{base}/0", body)))
    if step == "0":
        if case == "redirect-other-form":
            return Response.redirect(f"{prefix}/booking/create/7777/2")
        if case == "redirect-other-site":
            return Response.redirect(f"/genuine.hostile/booking/create/{form_id}/2")
        if case == "step4-other-form":
            return Response.redirect(f"{base}/4")
        if case in ("no-calendar-genuine", "no-calendar-in-paragraph"):
            return Response.redirect(f"{base}/1")
        return Response.redirect(f"{base}/2")
    if step == "1" and case == "no-calendar-genuine":
        inner = f'<h2>Titre de séjour</h2><ul class="error"><li>{LEGACY_NO_CALENDAR}</li></ul>'
        return Response.html(_legacy_page(inner))
    if step == "1" and case == "no-calendar-in-paragraph":
        inner = (
            f"<h2>Titre de séjour</h2><p>Aide : le message « {LEGACY_NO_CALENDAR} » signifie "
            "qu'aucun guichet n'est ouvert.</p>"
            + _form(
                f"{base}/1",
                '<fieldset id="fchoix_Booking"><legend>Que souhaitez-vous '
                'effectuer ?</legend><p class="Bligne"><input type="radio" name="planning" '
                'value="5001" id="p5001"><label for="p5001">Guichet 1</label></p></fieldset>'
                '<input type="submit" name="nextButton" value="Etape suivante">',
            )
        )
        return Response.html(_legacy_page(inner))
    if case in ("redirect-other-form", "redirect-other-site") or case == "genuine":
        genuine = HEADING + _form(f"{base}/2", f"\n{LEGACY_NO_SLOT}\n{FINISH}")
        return Response.html(_legacy_page(genuine))
    return _legacy_result(case, base)


# -- démarche numérique pages -------------------------------------------------------------
def _dn_page(title: str, body: str, flash: str = "", flash_style: str = "") -> str:
    """The platform's layout: the flash partial at the top of `<main>`, an alert flash
    as the bare text of `div.alert.alert-danger[role=alert]`."""
    style = f' style="{flash_style}"' if flash_style else ""
    alert = (
        f'<div class="alert alert-danger fr-p-2w" role="alert"{style}>{flash}</div>'
        if flash
        else ""
    )
    return (
        f'<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>{title}</title>'
        '</head><body><header class="fr-header">démarche numérique</header>'
        '<main id="contenu" role="main"><div id="flash_messages" tabindex="-1">'
        f'<div id="flash_message" class="center">{alert}</div></div>'
        f'<div class="fr-container">{body}</div></main></body></html>'
    )


OPEN_BODY = (
    '<h1 class="fr-h2">Titre de séjour - Préfecture</h1>'
    '<div class="fr-callout"><h2 class="fr-callout__title">Commencer la démarche</h2>'
    '<a class="fr-btn" href="sign_up">Créer un compte</a>'
    '<a class="fr-btn" href="sign_in">J’ai déjà un compte</a></div>'
)

#: The open page's start call-out alone, to set next to a negative message.
START_CALLOUT = OPEN_BODY.split("</h1>", 1)[1]


def _demarches(case: str, rest: str) -> Response:
    prefix = f"/{case}.hostile"
    parts = [p for p in rest.split("/") if p]
    if not parts:
        if case == "dn-home-text-not-flash":
            body = "<h1>Accueil</h1><p>La démarche n’existe pas</p>"
            return Response.html(_dn_page("Accueil", body))
        if case == "dn-flash-dsfr-alert":
            body = (
                '<div class="fr-alert fr-alert--error" role="alert"><p>La démarche '
                "n’existe pas</p></div><h1>Accueil</h1>"
            )
            return Response.html(_dn_page("Accueil", body))
        if case == "dn-flash-hidden":
            return Response.html(
                _dn_page("Accueil", "<h1>Accueil</h1>", "La démarche n’existe pas", "display:none")
            )
        if case == "dn-flash-with-start":
            body = "<h1>Accueil</h1>" + START_CALLOUT
            return Response.html(_dn_page("Accueil", body, "La démarche n’existe pas"))
        flash = "La démarche n’existe pas" if case == "dn-absent-genuine" else ""
        return Response.html(_dn_page("Accueil", "<h1>Accueil</h1>", flash))
    if parts[0] == "fermeture":
        if case == "dn-fermeture-no-heading":
            return Response.html(_dn_page("Erreur", "<h1>Une erreur est survenue</h1>"))
        heading = (
            f"<h1>La démarche Titre de séjour ({parts[1]}) est close depuis le  3 février 2026</h1>"
        )
        if case == "dn-closed-with-start":
            heading += START_CALLOUT
        return Response.html(_dn_page("Close", heading))
    if parts[0] != "commencer":
        return Response.html(_dn_page("Introuvable", "<h1>Page non trouvée</h1>"), 404)
    if case in (
        "dn-home-text-not-flash",
        "dn-absent-genuine",
        "dn-flash-dsfr-alert",
        "dn-flash-hidden",
        "dn-flash-with-start",
    ):
        return Response.redirect(f"{prefix}/")
    if case == "dn-absent-other-site":
        return Response.redirect("/dn-absent-genuine.hostile/")
    if case in ("dn-fermeture-no-heading", "dn-closed-genuine", "dn-closed-with-start"):
        return Response.redirect(f"{prefix}/fermeture/{SLUG}")
    if case == "dn-fermeture-other-slug":
        return Response.redirect(f"{prefix}/fermeture/autre-demarche")
    if case == "dn-cloudflare-200":
        return Response.html(CLOUDFLARE_BLOCK_200)
    if case == "dn-open-faq":
        faq = (
            "<section><h2>Questions fréquentes</h2><p>Si votre démarche n'existe pas, "
            "contactez la préfecture. La démarche n’existe pas pour les ressortissants "
            "européens.</p></section>"
        )
        return Response.html(_dn_page("Titre de séjour", OPEN_BODY + faq))
    if case == "dn-flash-on-form":
        return Response.html(_dn_page("Titre de séjour", OPEN_BODY, "La démarche n’existe pas"))
    return Response.html(_dn_page("Titre de séjour", OPEN_BODY))


# -- eAppointment pages -------------------------------------------------------------------
def _ea_page(title: str, body: str, script: str = "") -> str:
    return (
        f'<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body>{body}<script>{script}</script></body></html>"
    )


def _eappointment(case: str, rest: str) -> Response:
    motive_host = "elsewhere" if case == "ea-alert-other-site" else case
    motive_url = f"/{motive_host}.hostile/{EA_APP}/element/jsp/appointment.jsp"
    if rest.endswith("/specific/entry.jsp"):
        body = (
            '<input type="text" id="CPId" name="CP"><input type="button" value="Continuer" '
            'class="btn btn-primary" onclick="go()">'
        )
        script = f"function go() {{ window.location.href = '{motive_url}'; }}"
        return Response.html(_ea_page("Entrée", body, script))
    if rest.endswith("/element/jsp/appointment.jsp"):
        message = EA_ALERT
        if case == "ea-corrected-spelling":
            message = (
                "Aucun rendez-vous n'est possible pour les motifs sélectionnés ou le créneau "
                "horaire sélectionné."
            )
        picker = ""
        if case == "ea-alert-with-datepicker":
            picker = (
                '<div class="ui-datepicker-group"><div class="ui-datepicker-header">'
                '<span class="ui-datepicker-month">Avril</span> '
                '<span class="ui-datepicker-year">2026</span></div><table><tr>'
                '<td data-handler="selectDay"><a href="#">14</a></td></tr></table></div>'
                '<input id="dayValueId" name="dayValue" value="14/04/2026">'
            )
        body = (
            '<form><input type="checkbox" name="selectedMotiveKeyList" value="TS">'
            f"<label>Titre de séjour</label>{picker}"
            '<input type="button" id="nextButtonId" value="Suivant"></form>'
        )
        script = (
            "document.getElementById('nextButtonId').addEventListener('click', function () {"
            f" setTimeout(function () {{ alert({json.dumps(message)}); }}, 10); }});"
        )
        return Response.html(_ea_page("Motif", body, script))
    return Response.html("<h1>Not Found</h1>", 404)


# -- server -------------------------------------------------------------------------------
@dataclass
class HostileState:
    """What the simulator's request handler needs: routing, conduct counters, and how
    long a hanging answer lasts."""

    conduct: Conduct = field(default_factory=Conduct)
    hang_seconds: float = 2.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[str] = field(default_factory=list)

    def dispatch(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(f"{request.method} {request.path}")
        _, _, rest = request.path.partition("/")
        host, slash, tail = rest.partition("/")
        name = host.removesuffix(".hostile")
        tail = slash + tail
        if name in ("genuine", "elsewhere"):
            if name == "elsewhere":
                return _eappointment("ea-alert-other-site", tail)
            return _legacy("genuine", tail, request)
        case = BY_NAME.get(name)
        if case is None:
            return Response.html("<h1>Not Found</h1>", 404)
        if case.adapter == L:
            return _legacy(case.name, tail, request)
        if case.adapter == D:
            return _demarches(case.name, tail)
        return _eappointment(case.name, tail)


@dataclass
class RunningHostileSite:
    server: Any
    thread: threading.Thread
    state: HostileState

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningHostileSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_hostile_site(host: str = "127.0.0.1") -> RunningHostileSite:
    """Serve the hostile cases on loopback (a free port) in a daemon thread."""
    if not host.startswith("127."):
        raise ValueError("the hostile site only listens on loopback")
    state = HostileState()
    server: _Server[HostileState] = _Server((host, 0), _Handler)
    server.state = state
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return RunningHostileSite(server, thread, state)
