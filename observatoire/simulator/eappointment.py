"""eAppointment (Val-de-Marne, Rhône), as platforms.md §3 describes it.

- Entry page `…/element/jsp/specific/<entry>`: postal code `#CPId` (name `CP`) and
  "Continuer" as a plain `input type="button"` (Enter in the field works too). The
  page's own script maps the postal code to a site key and navigates to
  `appointment.do?sitekey=<key>`; the postal code itself is never sent. An unknown
  postal code gets the alert "Veuillez saisir un code postal valide.".
- Motive page: checkboxes `selectedMotiveKeyList`, `#nextButtonId`, `#previousButtonId`.
  The choice goes to a DWR-style call (`AjaxMotive.motiveMultiSiteSubmit`) whose reply
  carries `foundAvailabilities` and a server-supplied message, shown with `alert()`:
  the text is a per-instance scenario option (default: the Val-de-Marne text, typos
  and all).
- Date step: `#dayValueId` (disabled when nothing is available), `#hourValueSelect`, a
  jQuery-UI-like date picker (`div.ui-datepicker-group` per month), `#timeareaempty`
  and a `.soonestText`.

Only a real browser sees the alert: it is raised by the page's script after a fetch.
"""

from __future__ import annotations

import calendar
import html
import json
import secrets
import threading
from datetime import date, datetime
from typing import TYPE_CHECKING

from observatoire.clock import PARIS
from observatoire.simulator.availability import SlotState
from observatoire.simulator.http import Request, Response
from observatoire.simulator.scenario import EAppointmentSite, Motive

if TYPE_CHECKING:
    from observatoire.simulator.server import SimulatorState

#: The Val-de-Marne alert, verbatim with its typos (two independent sources).
VAL_DE_MARNE_ALERT = (
    "Aucun rendez-vous n'est possible pour les motifs selectionnnés "
    "ou le créneau horaire séléctionné."
)
POSTAL_ALERT = "Veuillez saisir un code postal valide."
MONTHS = (
    "Janvier",
    "Février",
    "Mars",
    "Avril",
    "Mai",
    "Juin",
    "Juillet",
    "Août",
    "Septembre",
    "Octobre",
    "Novembre",
    "Décembre",
)
WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


def _page(title: str, body: str, script: str = "") -> str:
    return (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>"
        '<div id="header"><span class="titre">Préfecture - prise de rendez-vous</span></div>'
        f'<div id="content" class="container">{body}</div>'
        f"<script>{script}</script></body></html>"
    )


def _month_table(year: int, month: int, free: set[date]) -> str:
    """One month of a jQuery-UI date picker: free days are links, others unselectable."""
    rows = []
    for week in calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
        cells = []
        for day in week:
            if day.month != month:
                cells.append(
                    '<td class="ui-datepicker-other-month ui-datepicker-unselectable '
                    'ui-state-disabled">&#xa0;</td>'
                )
            elif day in free:
                cells.append(
                    f'<td class="" data-handler="selectDay" data-event="click" '
                    f'data-month="{month - 1}" data-year="{year}">'
                    f'<a class="ui-state-default" href="#">{day.day}</a></td>'
                )
            else:
                cells.append(
                    '<td class="ui-datepicker-unselectable ui-state-disabled">'
                    f'<span class="ui-state-default">{day.day}</span></td>'
                )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(f'<th><span title="{d}">{d[:2].capitalize()}</span></th>' for d in WEEKDAYS)
    return (
        '<div class="ui-datepicker-group">'
        '<div class="ui-datepicker-header ui-widget-header ui-helper-clearfix ui-corner-all">'
        '<div class="ui-datepicker-title">'
        f'<span class="ui-datepicker-month">{MONTHS[month - 1]}</span>&#xa0;'
        f'<span class="ui-datepicker-year">{year}</span></div></div>'
        f'<table class="ui-datepicker-calendar"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
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
            return Response.html(self._entry(site, base))
        if path == "appointment.do":
            if request.query.get("sitekey") != site.sitekey:
                body = '<p class="error">Site inconnu.</p>'
                return Response.html(_page("Prise de rendez-vous", body), 404)
            session["sitekey"] = site.sitekey
            return Response.redirect(f"{base}/element/jsp/appointment.jsp")
        if path == "element/jsp/appointment.jsp":
            if "sitekey" not in session:
                return Response.redirect(f"{base}/element/jsp/specific/{site.entry}")
            return Response.html(self._motives(site, request, base))
        if path == "dwr/call/plaincall/AjaxMotive.motiveMultiSiteSubmit.dwr":
            return self._submit_motives(site, request, session)
        if path == "element/jsp/appointmentDate.jsp":
            return Response.html(self._dates(site, session))
        if path.startswith("element/jsp/") and request.method == "POST" or "confirm" in path:
            self.state.violation("eAppointment booking step reached", request)
        return Response.html("<h1>Not Found</h1>", 404)

    # -- pages -----------------------------------------------------------------------
    def _entry(self, site: EAppointmentSite, base: str) -> str:
        body = (
            '<form name="cpForm" id="cpForm" onsubmit="return false;">'
            '<label for="CPId">Veuillez saisir votre code postal :</label>'
            '<input type="text" id="CPId" name="CP" maxlength="5" class="form-control">'
            '<input type="button" value="Continuer" class="btn btn-primary" '
            'onclick="goToSite();"></form>'
        )
        mapping = {code: site.sitekey for code in site.postal_codes}
        script = (
            f"var sites = {json.dumps(mapping)};"
            "function goToSite() {"
            " var cp = document.getElementById('CPId').value.trim();"
            " if (sites[cp]) {"
            f" window.location.href = '{base}/appointment.do?sitekey=' + sites[cp];"
            f" }} else {{ alert({json.dumps(POSTAL_ALERT)}); }} }}"
            "document.getElementById('CPId').addEventListener('keydown', function (e) {"
            " if (e.key === 'Enter') { e.preventDefault(); goToSite(); } });"
        )
        return _page("Prise de rendez-vous", body, script)

    def _motives(self, site: EAppointmentSite, request: Request, base: str) -> str:
        offered = self._offered(site)
        self.state.record(
            site=site.host,
            state="motives",
            request=request,
            offered=[i for i, m in enumerate(site.motives) if m in offered],
        )
        rows = "".join(
            f'<div class="checkbox"><input type="checkbox" name="selectedMotiveKeyList" '
            f'id="motive_{m.key}" value="{m.key}"><label for="motive_{m.key}">'
            f"{html.escape(m.label)}</label></div>"
            for m in offered
        )
        body = (
            "<h2>Choix du motif de rendez-vous</h2>"
            f'<form id="motiveForm" name="motiveForm">{rows}'
            '<input type="button" id="previousButtonId" class="btn" value="Précédent">'
            '<input type="button" id="nextButtonId" class="btn btn-primary" value="Suivant">'
            "</form>"
        )
        script = (
            "document.getElementById('nextButtonId').addEventListener('click', function () {"
            "var keys = Array.from(document.querySelectorAll("
            "'input[name=selectedMotiveKeyList]:checked')).map(function (c) {"
            " return c.value; });"
            f"fetch('{base}/dwr/call/plaincall/AjaxMotive.motiveMultiSiteSubmit.dwr',"
            "{method: 'POST', headers: {'Content-Type': 'text/plain'},"
            " body: 'c0-param0=' + keys.join(',')})"
            ".then(function (r) { return r.json(); })"
            ".then(function (reply) { if (!reply.foundAvailabilities) { alert(reply.message); }"
            f" else {{ window.location.href = '{base}/element/jsp/appointmentDate.jsp'; }} }});"
            " });"
        )
        return _page("Choix du motif", body, script)

    def _submit_motives(
        self, site: EAppointmentSite, request: Request, session: dict[str, object]
    ) -> Response:
        raw = request.field("c0-param0") or ""
        keys = [k for k in raw.split(",") if k]
        offered = {m.key: m for m in self._offered(site)}
        chosen = [offered[k] for k in keys if k in offered]
        session["motives"] = [m.key for m in chosen]
        found = False
        for motive in chosen:
            state = self.slots(site, motive)
            found = found or state.open
            self.state.record(
                site=site.host,
                state="open" if state.open else "no_slot",
                first_slot=state.first,
                slots=len(state.slots),
                request=request,
            )
        reply = {
            "foundAvailabilities": found,
            "message": "" if found else (site.no_slot_message or VAL_DE_MARNE_ALERT),
        }
        return Response(200, json.dumps(reply).encode(), "application/json")

    def _dates(self, site: EAppointmentSite, session: dict[str, object]) -> str:
        keys = session.get("motives")  # the motive keys chosen on the previous step
        chosen = [m for m in site.motives if m.key in keys] if isinstance(keys, list) else []
        slots = sorted({s for m in chosen for s in self.slots(site, m).slots})
        local = [s.astimezone(PARIS) for s in slots]
        free = {s.date() for s in local}
        today = self.state.clock.now().astimezone(PARIS).date()
        months = [(today.year, today.month)]
        for _ in range(3):
            y, m = months[-1]
            months.append((y + (m == 12), m % 12 + 1))
        picker = "".join(_month_table(y, m, free) for y, m in months)
        first_day = local[0].date() if local else None
        hours = [s for s in local if first_day and s.date() == first_day]
        options = "".join(f'<option value="{s:%H:%M}">{s:%H:%M}</option>' for s in hours)
        disabled = "" if local else " disabled"
        day_value = f"{first_day:%d/%m/%Y}" if first_day else ""
        soonest = ""
        if first_day is not None:
            soonest = (
                '<p class="soonestText">Premier rendez-vous disponible : '
                f"{_long_date(local[0])}</p>"
            )
        empty = ' style="display:none"' if hours else ""
        body = (
            "<h2>Choix de la date du rendez-vous</h2>"
            f"{soonest}"
            '<div id="datepicker" class="ui-datepicker-inline ui-datepicker ui-widget '
            f'ui-datepicker-multi ui-datepicker-multi-3">{picker}</div>'
            f'<input type="text" id="dayValueId" name="dayValue" value="{day_value}" '
            f"readonly{disabled}>"
            f'<select id="hourValueSelect" name="hourValue">{options}</select>'
            f'<div id="timeareaempty"{empty}>'
            "Aucun horaire disponible pour cette date.</div>"
            '<input type="button" id="previousButtonId" class="btn" value="Précédent">'
            '<input type="button" id="nextButtonId" class="btn btn-primary" value="Suivant">'
        )
        return _page("Choix de la date", body)


def _long_date(at: datetime) -> str:
    return (
        f"{WEEKDAYS[at.weekday()]} {at.day} {MONTHS[at.month - 1].lower()} {at.year} "
        f"à {at:%H}h{at:%M}"
    )
