"""eAppointment (Val-de-Marne, Rhône): postal code → motive choice → either a JavaScript
alert saying no appointment is possible, or a page of proposed days and times.

The alert is raised by the page's own script after a DWR-style call, as on the real
platform, so only a real browser sees it.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
from typing import TYPE_CHECKING

from observatoire.simulator.availability import SlotState
from observatoire.simulator.http import Request, Response
from observatoire.simulator.legacy import french_date
from observatoire.simulator.scenario import EAppointmentSite, Motive

if TYPE_CHECKING:
    from observatoire.simulator.server import SimulatorState

NO_APPOINTMENT = (
    "Aucun rendez-vous n'est possible pour les motifs sélectionnés ou le créneau horaire "
    "sélectionné."
)


def _page(site: EAppointmentSite, title: str, body: str, script: str = "") -> str:
    return (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>"
        f'<div id="header"><h1>Prise de rendez-vous - Préfecture</h1></div>'
        f'<div id="content">{body}</div>'
        f"<script>{script}</script></body></html>"
    )


class EAppointmentModule:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.lock = threading.Lock()
        self.sessions: dict[str, dict[str, object]] = {}

    def _offered(self, site: EAppointmentSite) -> list[Motive]:
        now = self.state.clock.now()
        return [
            m
            for m in site.motives
            if not any(p.contains(self.state.anchor, now) for p in m.missing)
        ]

    def slots(self, site: EAppointmentSite, motive: Motive) -> SlotState:
        return self.state.slots_now(f"eappointment/{site.host}/{motive.key}", motive.profile)

    def handle(self, site: EAppointmentSite, rest: str, request: Request) -> Response:
        prefix = f"/{site.app}/"
        if not rest.startswith(prefix):
            return Response.html("<h1>Not Found</h1>", 404)
        path = rest[len(prefix) :]
        base = f"/{site.host}/{site.app}"
        sid = request.cookies.get("JSESSIONID")
        with self.lock:
            session = self.sessions.get(sid or "")
            if session is None:
                sid = secrets.token_hex(12).upper()
                session = self.sessions[sid] = {}
        response = self._route(site, path, request, session, base)
        response.headers.append(("Set-Cookie", f"JSESSIONID={sid}; Path=/{site.host}/{site.app}"))
        return response

    def _route(
        self,
        site: EAppointmentSite,
        path: str,
        request: Request,
        session: dict[str, object],
        base: str,
    ) -> Response:
        if path == f"element/jsp/specific/{site.entry}":
            body = (
                f'<form id="cpForm" method="get" action="{base}/appointment.do">'
                f'<input type="hidden" name="sitekey" value="{site.sitekey}">'
                '<label for="CPId">Votre code postal</label>'
                '<input type="text" id="CPId" name="CP" maxlength="5">'
                '<input type="submit" id="submitCP" value="Continuer"></form>'
            )
            return Response.html(_page(site, "Prise de rendez-vous", body))
        if path == "appointment.do":
            postal = request.query.get("CP", "")
            if request.query.get("sitekey") != site.sitekey or postal not in site.postal_codes:
                body = '<p class="error">Le code postal saisi n\'est pas pris en charge.</p>'
                return Response.html(_page(site, "Prise de rendez-vous", body))
            session["cp"] = postal
            return Response.redirect(f"{base}/element/jsp/appointment.jsp")
        if path == "element/jsp/appointment.jsp":
            if "cp" not in session:
                return Response.redirect(f"{base}/element/jsp/specific/{site.entry}")
            offered = self._offered(site)
            self.state.record(
                site=site.host,
                state="motives",
                request=request,
                offered=[i for i, m in enumerate(site.motives) if m in offered],
            )
            rows = "".join(
                f'<div class="motive"><input type="checkbox" name="selectedMotiveKeyList" '
                f'id="motive_{m.key}" value="{m.key}"><label for="motive_{m.key}">'
                f"{html.escape(m.label)}</label></div>"
                for m in offered
            )
            body = (
                "<h2>Choix du motif de rendez-vous</h2>"
                f'<form id="motiveForm">{rows}'
                '<input type="button" id="nextButtonId" value="Etape suivante"></form>'
            )
            script = (
                "document.getElementById('nextButtonId').addEventListener('click', function () {"
                "var keys = Array.from(document.querySelectorAll("
                "'input[name=selectedMotiveKeyList]:checked')).map(function (c) {"
                " return c.value; });"
                f"fetch('{base}/dwr/call/plaincall/AjaxSelectionFormFeeder.getClosedDaysList.dwr',"
                "{method: 'POST', headers: {'Content-Type': 'text/plain'},"
                " body: 'c0-param0=' + keys.join(',')})"
                ".then(function (r) { return r.json(); })"
                ".then(function (days) { if (days.length === 0) { alert("
                f"{json.dumps(NO_APPOINTMENT)}); }} else {{ window.location.href = "
                f"'{base}/element/jsp/appointmentDate.jsp'; }} }}); }});"
            )
            return Response.html(_page(site, "Choix du motif", body, script))
        if path.startswith("dwr/call/plaincall/"):
            keys = [k for k in (request.field("c0-param0") or "").split(",") if k]
            offered = {m.key: m for m in self._offered(site)}
            chosen = [offered[k] for k in keys if k in offered]
            session["motives"] = [m.key for m in chosen]
            days: list[str] = []
            for motive in chosen:
                state = self.slots(site, motive)
                self.state.record(
                    site=site.host,
                    state="open" if state.open else "no_slot",
                    first_slot=state.first,
                    slots=len(state.slots),
                    request=request,
                )
                days += [s.isoformat() for s in state.slots]
            return Response(200, json.dumps(sorted(set(days))).encode(), "application/json")
        if path == "element/jsp/appointmentDate.jsp":
            chosen = [m for m in site.motives if m.key in session.get("motives", [])]  # type: ignore[operator]
            slots = sorted({s for m in chosen for s in self.slots(site, m).slots})
            items = "".join(
                f'<li class="slot"><span class="date">{french_date(s.date())}</span> '
                f'<span class="heure">{s:%H:%M}</span></li>'
                for s in slots
            )
            body = (
                "<h2>Choix de la date du rendez-vous</h2>"
                f'<ul id="slotList">{items}</ul>'
                '<input type="button" id="nextButtonId" value="Etape suivante">'
            )
            return Response.html(_page(site, "Choix de la date", body))
        if path.startswith("element/jsp/") and request.method == "POST" or "confirm" in path:
            self.state.violation("eAppointment booking step reached", request)
        return Response.html("<h1>Not Found</h1>", 404)
