"""démarche numérique (formerly démarches-simplifiées), as its open-source controller
behaves (platforms.md §4):

- open: `GET /commencer/<slug>` → 200, the call-out "Commencer la démarche",
  FranceConnect, "Créer un compte", "J’ai déjà un compte";
- closed: 302 to `/fermeture/<slug>`, whose h1 reads "La démarche <libellé> est close
  depuis le <date longue>";
- absent: 302 to the home page `/`, which shows the flash "La démarche n’existe pas"
  (kept in a cookie for one page, as a Rails flash lives in the session);
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


def _layout(title: str, body: str, flash: str = "") -> str:
    flashes = ""
    if flash:
        flashes = (
            '<div id="flash_messages"><div class="fr-alert fr-alert--error fr-alert--sm">'
            f"<p>{html.escape(flash)}</p></div></div>"
        )
    return (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} · démarche.numerique.gouv.fr</title></head><body>"
        '<header class="fr-header"><p class="fr-header__service-title">démarche numérique'
        f'</p></header>{flashes}<main class="fr-container">{body}</main>'
        '<footer class="fr-footer">Direction interministérielle du numérique</footer>'
        "</body></html>"
    )


def _long_date(at: datetime) -> str:
    local = at.astimezone(PARIS)
    day = "1er" if local.day == 1 else str(local.day)
    return f"{day} {MONTHS_FR[local.month - 1]} {local.year}"


class DemarchesModule:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def _active(self, periods: list[Period]) -> Period | None:
        now = self.state.clock.now()
        return next((p for p in periods if p.contains(self.state.anchor, now)), None)

    def handle(self, site: DemarchesSite, rest: str, request: Request) -> Response:
        parts = [p for p in rest.split("/") if p]
        home = f"/{site.host}/"
        if not parts:
            flash = request.cookies.get(FLASH_COOKIE, "")
            message = "La démarche n’existe pas" if flash == "absent" else ""
            body = (
                "<h1>Démarches en ligne</h1><p>Simplifiez vos démarches administratives "
                "en ligne.</p>"
            )
            response = Response.html(_layout("Accueil", body, message))
            if flash:
                response.headers.append(
                    ("Set-Cookie", f"{FLASH_COOKIE}=; Path=/{site.host}/; Max-Age=0")
                )
            return response
        if len(parts) >= 2 and parts[0] == "fermeture":
            demarche = self._find(site, parts[1])
            closed = self._active(demarche.closed) if demarche is not None else None
            if demarche is None or closed is None:
                return Response.redirect(f"/{site.host}/commencer/{parts[1]}")
            since = self.state.anchor + timedelta(days=closed.from_day)
            body = (
                f"<h1>La démarche {html.escape(demarche.title)} est close depuis le "
                f"{_long_date(since)}</h1>"
                '<div class="fr-callout"><p>Cette démarche n’accepte plus de nouveaux '
                "dossiers.</p></div>"
            )
            return Response.html(_layout(demarche.title, body))
        if len(parts) >= 2 and parts[0] == "commencer":
            if len(parts) > 2:
                self.state.violation("went past the démarche's public page", request)
            demarche = self._find(site, parts[1])
            if demarche is None or self._active(demarche.absent):
                self.state.record(site=site.host, state="absent", request=request)
                response = Response.redirect(home)
                response.headers.append(
                    ("Set-Cookie", f"{FLASH_COOKIE}=absent; Path=/{site.host}/")
                )
                return response
            if demarche.replaced_by and self._active(demarche.replaced):
                self.state.record(site=site.host, state="replaced", request=request)
                return Response.redirect(f"/{site.host}/commencer/{demarche.replaced_by}")
            if self._active(demarche.closed):
                self.state.record(site=site.host, state="closed", request=request)
                return Response.redirect(f"/{site.host}/fermeture/{demarche.slug}")
            self.state.record(site=site.host, state="form_open", request=request)
            return Response.html(_layout(demarche.title, self._open(site, demarche)))
        body = "<h1>Page non trouvée</h1><p>La page que vous demandez n’existe pas.</p>"
        return Response.html(_layout("Page non trouvée", body), 404)

    @staticmethod
    def _find(site: DemarchesSite, slug: str) -> Demarche | None:
        return next((d for d in site.demarches if d.slug == slug), None)

    @staticmethod
    def _open(site: DemarchesSite, demarche: Demarche) -> str:
        start = f"/{site.host}/commencer/{demarche.slug}"
        return (
            f"<h1>{html.escape(demarche.title)}</h1>"
            f'<div class="procedure-description">{html.escape(demarche.description)}</div>'
            '<div class="fr-callout"><h2 class="fr-callout__title">Commencer la démarche</h2>'
            f'<a class="fr-btn fr-connect" href="{start}/france_connect">'
            "S’identifier avec FranceConnect</a>"
            f'<a class="fr-btn" href="{start}/sign_up">Créer un compte démarche numérique</a>'
            f'<a class="fr-btn fr-btn--secondary" href="{start}/sign_in">'
            "J’ai déjà un compte</a></div>"
        )
