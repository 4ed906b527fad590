"""démarche numérique (formerly démarches-simplifiées), as its open-source controller
and views behave (platforms.md §4; markup read in demarche-numerique/
demarche.numerique.gouv.fr at e1338d79, January 2026):

- every page: the application layout, whose `<main id="contenu">` starts with the flash
  container `#flash_messages > #flash_message.center` (empty when there is no flash);
- open: `GET /commencer/<slug>` → 200; in `.procedure-preview` the logos, the libellé
  as `h1.fr-h2`, then (anonymous visitor) the DSFR call-out titled "Commencer la
  démarche" with FranceConnect, "Créer un compte", "J’ai déjà un compte", then the
  description accordion;
- closed: 302 to `/fermeture/<slug>`, whose h1 reads "La démarche <libellé> est close
  depuis le <date>" (Rails `l(date, format: :long)` in French: `%e %B %Y`, the day
  space-padded, no "1er"), then the closing details in a paragraph;
- absent: 302 to the home page `/`, which shows the alert flash "La démarche n’existe
  pas" as the bare text of `div.alert.alert-danger[role=alert]` in the flash container
  (kept in a cookie for one page, as a Rails flash lives in the session). `/fermeture/`
  of an unknown slug ends there too;
- replaced: 302 to the successor's `/commencer/<new slug>`.

Anonymously nothing more is visible: the queue is internal.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from observatoire.clock import PARIS
from observatoire.simulator.http import Request, Response
from observatoire.simulator.legacy import MONTHS_FR
from observatoire.simulator.scenario import Demarche, DemarchesSite, Period

if TYPE_CHECKING:
    from observatoire.simulator.server import SimulatorState

FLASH_COOKIE = "_dn_flash"
#: The classes the platform's `flash_class` helper gives an `alert` flash, and the
#: padding the partial adds.
ALERT_CLASSES = "alert alert-danger fr-icon-error-line fr-icon--sm fr-text--sm fr-mb-0 fr-p-2w"
#: What an administrator may write as closing details (shown under the heading).
CLOSING_DETAILS = "Les demandes se font désormais sur rendez-vous au guichet."


def _flash_container(alert: str) -> str:
    """The layout's flash partial: always present, the alert inside only when set."""
    if not alert:
        return (
            '<div id="flash_messages" tabindex="-1" data-turbo-force="server">'
            '<div id="flash_message" class="center "></div></div>'
        )
    return (
        '<div id="flash_messages" tabindex="-1" data-turbo-force="server" '
        'data-controller="autofocus"><div id="flash_message" class="center ">'
        f'<div class="{ALERT_CLASSES}" role="alert">\n{html.escape(alert)}\n</div>'
        "</div></div>"
    )


def _layout(title: str, content: str, alert: str = "") -> str:
    return (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} · démarche.numerique.gouv.fr</title></head>"
        '<body id="" class="" data-controller="turbo"><div class="page-wrapper">'
        '<header role="banner" class="fr-header"><div class="fr-header__service">'
        '<p class="fr-header__service-title">démarche numérique</p></div></header>'
        f'<main id="contenu" role="main">{_flash_container(alert)}{content}</main>'
        '<footer class="fr-footer" role="contentinfo">Direction interministérielle du '
        "numérique</footer></div></body></html>"
    )


def _preview(inner: str) -> str:
    """The column the démarche's pages (procedure_context and closing_details layouts)
    put their content in."""
    return (
        '<div class="fr-container fr-mt-5w"><div class="fr-grid-row">'
        '<div class="fr-col-12 fr-col-md-8 fr-col-offset-md-2">'
        f'<div class="procedure-preview fr-mb-5w">{inner}</div></div></div></div>'
    )


def _long_date(at: datetime) -> str:
    """`%e %B %Y`: the day padded with a space, the month in full."""
    local = at.astimezone(PARIS)
    return f"{local.day:>2} {MONTHS_FR[local.month - 1]} {local.year}"


class DemarchesModule:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def _active(self, periods: list[Period]) -> Period | None:
        now = self.state.clock.now()
        return next((p for p in periods if p.contains(self.state.anchor, now)), None)

    def handle(self, site: DemarchesSite, rest: str, request: Request) -> Response:
        parts = [p for p in rest.split("/") if p]
        if not parts:
            return self._home(site, request)
        if len(parts) >= 2 and parts[0] == "fermeture":
            return self._closing(site, parts[1])
        if len(parts) >= 2 and parts[0] == "commencer":
            if len(parts) > 2:
                self.state.violation("went past the démarche's public page", request)
            demarche = self._find(site, parts[1])
            if demarche is None or self._active(demarche.absent):
                self.state.record(site=site.host, state="absent", request=request)
                return self._not_found(site)
            if demarche.replaced_by and self._active(demarche.replaced):
                self.state.record(site=site.host, state="replaced", request=request)
                return Response.redirect(f"/{site.host}/commencer/{demarche.replaced_by}")
            if self._active(demarche.closed):
                self.state.record(site=site.host, state="closed", request=request)
                return Response.redirect(f"/{site.host}/fermeture/{demarche.slug}")
            self.state.record(site=site.host, state="form_open", request=request)
            return Response.html(_layout(demarche.title, _preview(self._open(site, demarche))))
        body = (
            '<div class="fr-container fr-my-7w"><h1>Page non trouvée</h1>'
            "<p>La page que vous demandez n’existe pas.</p></div>"
        )
        return Response.html(_layout("Page non trouvée", body), 404)

    @staticmethod
    def _home(site: DemarchesSite, request: Request) -> Response:
        """The landing page, with the flash the previous redirect left."""
        flash = request.cookies.get(FLASH_COOKIE, "")
        alert = "La démarche n’existe pas" if flash == "absent" else ""
        landing = (
            '<div class="landing"><div class="fr-py-6w"><div class="container">'
            '<div class="hero-wrapper"><div class="hero-text"><h1 class="fr-mb-0">'
            "Vos formulaires administratifs, en ligne</h1></div></div></div></div>"
            '<div class="fr-background-alt--blue-france fr-py-6w"><div class="container">'
            "<h2>Usagers</h2>"
            '<a class="fr-btn fr-btn--lg" href="/faq">Retrouver un formulaire</a>'
            '<a class="fr-btn fr-btn--secondary fr-btn--lg" href="/users/sign_in">'
            "Se connecter</a></div></div></div>"
        )
        response = Response.html(_layout("Accueil", landing, alert))
        if flash:
            response.headers.append(
                ("Set-Cookie", f"{FLASH_COOKIE}=; Path=/{site.host}/; Max-Age=0")
            )
        return response

    @staticmethod
    def _not_found(site: DemarchesSite) -> Response:
        """`procedure_not_found`: an alert flash, then a 302 to the home page."""
        response = Response.redirect(f"/{site.host}/")
        response.headers.append(("Set-Cookie", f"{FLASH_COOKIE}=absent; Path=/{site.host}/"))
        return response

    def _closing(self, site: DemarchesSite, slug: str) -> Response:
        """`closing_details`: an unknown slug is `procedure_not_found`, a démarche that
        is not closed goes back to its `/commencer/` page."""
        demarche = self._find(site, slug)
        if demarche is None or self._active(demarche.absent):
            return self._not_found(site)
        closed = self._active(demarche.closed)
        if closed is None:
            return Response.redirect(f"/{site.host}/commencer/{slug}")
        since = self.state.anchor + timedelta(days=closed.from_day)
        column = (
            '<div class="fr-container"><div class="fr-grid-row"><div class="fr-col-12">'
            f"<h1>La démarche {html.escape(demarche.title)} est close depuis le "
            f"{_long_date(since)}</h1><p>{CLOSING_DETAILS}</p>"
            '<div class="text-center"><img src="/assets/landing/hero/dematerialiser.svg" '
            'aria-hidden="true" alt=""></div></div></div></div>'
        )
        return Response.html(_layout(demarche.title, _preview(column)))

    @staticmethod
    def _find(site: DemarchesSite, slug: str) -> Demarche | None:
        return next((d for d in site.demarches if d.slug == slug), None)

    @staticmethod
    def _open(site: DemarchesSite, demarche: Demarche) -> str:
        """An anonymous visitor's view: libellé, start call-out, description."""
        start = f"/{site.host}/commencer/{demarche.slug}"
        france_connect = (
            '<div class="france-connect-login"><h3 class="fr-h6">Passer par FranceConnect'
            "</h3><p>Un seul identifiant pour les services publics en ligne.</p>"
            '<div class="fr-connect-group fr-my-2w">'
            f'<a class="fr-btn fr-connect" href="{start}/france_connect">'
            '<span class="fr-connect__login">S’identifier avec</span>'
            '<span class="fr-connect__brand">FranceConnect</span></a>'
            '<p><a href="https://franceconnect.gouv.fr/" target="_blank" rel="noopener">'
            "FranceConnect, en savoir plus</a></p></div>"
            '<p class="fr-hr-or">ou</p></div>'
        )
        accounts = (
            '<ul class="fr-btns-group fr-btns-group--inline">'
            f'<li><a class="fr-btn" href="{start}/sign_up">Créer un compte'
            '<span class="optional-on-small-screens fr-ml-1v">démarche numérique</span></a>'
            f'</li><li><a class="fr-btn fr-btn--secondary" href="{start}/sign_in">'
            "J’ai déjà un compte</a></li></ul>"
        )
        description = (
            '<div class="fr-accordions-group fr-mb-3w"><section class="fr-accordion">'
            '<h2 class="fr-accordion__title"><button class="fr-accordion__btn" '
            'aria-controls="accordion-114" aria-expanded="true">Description</button></h2>'
            f'<div id="accordion-114" class="fr-collapse"><p>'
            f"{html.escape(demarche.description)}</p></div></section></div>"
        )
        return (
            '<div class="procedure-logos"><img src="/assets/marianne.png" alt=""></div>'
            f'<h1 class="fr-h2">{html.escape(demarche.title)}</h1>'
            '<div class="commencer form">'
            '<div class="fr-callout fr-background-alt--blue-france">'
            '<h2 class="fr-callout__title">Commencer la démarche</h2>'
            f'<div class="fr-callout__text">{france_connect}{accounts}</div></div></div>'
            f"{description}"
        )
