"""démarches-simplifiées ("démarche numérique"): `/commencer/<slug>` pages, open, closed
or absent (404). Anonymously nothing more is visible: the queue is internal."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from observatoire.simulator.http import Request, Response
from observatoire.simulator.scenario import DemarchesSite

if TYPE_CHECKING:
    from observatoire.simulator.server import SimulatorState


def _layout(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} · demarches-simplifiees.fr</title></head><body>"
        '<header class="fr-header"><p class="fr-header__service-title">demarches-simplifiees.fr'
        f'</p></header><main class="fr-container">{body}</main>'
        '<footer class="fr-footer">Direction interministérielle du numérique</footer></body></html>'
    )


class DemarchesModule:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def handle(self, site: DemarchesSite, rest: str, request: Request) -> Response:
        parts = [p for p in rest.split("/") if p]
        now = self.state.clock.now()
        if len(parts) >= 2 and parts[0] == "commencer":
            demarche = next((d for d in site.demarches if d.slug == parts[1]), None)
            if len(parts) > 2:
                self.state.violation("went past the démarche's public page", request)
            if demarche is not None and not any(
                p.contains(self.state.anchor, now) for p in demarche.absent
            ):
                closed = any(p.contains(self.state.anchor, now) for p in demarche.closed)
                self.state.record(
                    site=site.host, state="closed" if closed else "form_open", request=request
                )
                if closed:
                    body = (
                        f"<h1>{html.escape(demarche.title)}</h1>"
                        '<div class="fr-alert fr-alert--warning"><p>Cette démarche est close. '
                        "Il n'est plus possible de déposer de dossier.</p></div>"
                    )
                    return Response.html(_layout(demarche.title, body))
                body = (
                    f"<h1>{html.escape(demarche.title)}</h1>"
                    f'<div class="procedure-description">{html.escape(demarche.description)}</div>'
                    f'<a class="fr-btn" href="/{site.host}/commencer/{demarche.slug}/sign_in">'
                    "Commencer la démarche</a>"
                    f'<a class="fr-btn fr-btn--secondary" href="/{site.host}/users/sign_in">'
                    "J'ai déjà un compte</a>"
                )
                return Response.html(_layout(demarche.title, body))
            self.state.record(site=site.host, state="absent", request=request)
        body = "<h1>Page non trouvée</h1><p>La page que vous demandez n'existe pas ou plus.</p>"
        return Response.html(_layout("Page non trouvée", body), 404)
