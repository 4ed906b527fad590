"""The legacy prefecture booking module (eZ Publish `booking/create`), as documented in
the project's platform notes (§1): conditions → counter choice → availability result,
the continuation when slots exist, the read-only week calendar, and the closed,
overloaded and deactivated pages.

Paths are prefixed by the simulated site's host name, so many sites share one port:
`/<host>/booking/create/<formId>/<step>`. The captcha and personal-data steps exist
only to be reported as conduct violations when reached.
"""

from __future__ import annotations

import html
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from observatoire.clock import PARIS
from observatoire.simulator.availability import SlotState
from observatoire.simulator.http import Request, Response
from observatoire.simulator.scenario import LegacyForm, LegacySite, Period, Planning

if TYPE_CHECKING:
    from observatoire.simulator.server import SimulatorState

NEW_WORDING = "Aucune plage horaire n'est disponible pour le moment. Merci de réessayer plus tard."
#: The same words in a new structure (a redesign that keeps the texts).
LAYOUT_CHANGES = (
    ('name="create" id="FormBookingCreate"', 'name="rdv" id="booking-form-v2"'),
    ('id="global_Booking"', 'class="page-rdv"'),
    ('id="inner_Booking"', 'class="contenu-rdv"'),
    ('id="fchoix_Booking"', 'class="choix"'),
    ("<h2>", '<p class="titre">'),
    ("</h2>", "</p>"),
)
#: The result page's message (platforms.md §1), as eZ Publish prints it: its template
#: escapes the apostrophe to `&#039;` and breaks the line between the two sentences.
NO_SLOT_TEXT = (
    "Il n&#039;existe plus de plage horaire libre pour votre demande de rendez-vous.\n"
    "            Veuillez recommencer ultérieurement."
)
#: The second real no-slot text (sic: "pas calendrier"), shown in a `ul.error` list.
NO_CALENDAR_TEXT = (
    "Il n&#039;y a pas calendrier disponible pour effectuer une demande de rendez-vous"
)
STEPS = (
    "Prise de rendez-vous",
    "Descriptif",
    "Choix d'une plage",
    "Contrôle de sécurité",
    "Cordonnées personnelles",
    "Valider et terminer",
)
DAYS_FR = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS_FR = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)

BOOKING = re.compile(r"^(/index\.php)?/booking/create/(\d+)(?:/(\d+))?/?$")
CALENDAR = re.compile(r"^/ezjscore/call/bookingserver::planning::assign::(\d+)::(\d+)::(\d+)$")
CAPTCHA = re.compile(r"^/ezjscore/call/bookingserver::captcha")


@dataclass
class Session:
    form_id: int
    accepted: bool = False
    planning: int | None = None
    #: The module sent this session to step 4 itself ("Première plage horaire libre").
    jumped: bool = False


@dataclass
class LegacySessions:
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_id: dict[str, Session] = field(default_factory=dict)


def french_date(d: date) -> str:
    return f"{DAYS_FR[d.weekday()]} {d.day:02d} {MONTHS_FR[d.month - 1]} {d.year}"


def _page(site: LegacySite, title: str, inner: str, step: int | None) -> str:
    progress = ""
    if step is not None:
        items = "".join(
            f'<li class="{"active" if i == step else ""}">{html.escape(s)}</li>'
            for i, s in enumerate(STEPS)
        )
        progress = f'<ol class="progress_Booking">{items}</ol>'
    full_title = html.escape(f"{title} - {site.prefecture}")
    return f"""<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>{full_title}</title></head>
<body><div id="header"><a href="/{site.host}/">{html.escape(site.prefecture)}</a></div>
<div id="global_Booking">{progress}
<div id="inner_Booking">{inner}</div></div>
<div id="footer">Les services de l'État</div></body></html>"""


def _step4_page(site: LegacySite, form: LegacyForm, base: str) -> str:
    """Step 4 reached directly: the progress bar drawn with images (the active step's
    image ends in `r`) and the button offering the first free slot."""
    images = "".join(
        f'<img src="/{site.host}/design/booking/images/etape_{i}{"r" if i == 4 else ""}.png" '
        f'alt="{html.escape(label)}">'
        for i, label in enumerate(STEPS, start=1)
    )
    body = _form(
        f"{base}/4",
        "<p>Cliquez sur le bouton ci-dessous pour obtenir la première plage horaire "
        "disponible.</p>"
        '<input type="submit" name="nextButton" class="Bbutton" '
        'value="Première plage horaire libre">',
    )
    full_title = html.escape(f"{form.title} - {site.prefecture}")
    return f"""<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>{full_title}</title></head>
<body><div id="header"><a href="/{site.host}/">{html.escape(site.prefecture)}</a></div>
<div id="global_Booking"><div class="etapes_Booking">{images}</div>
<div id="inner_Booking"><h2>Choix d'une plage</h2>{body}</div></div>
<div id="footer">Les services de l'État</div></body></html>"""


def _form(action: str, body: str) -> str:
    return (
        f'<form name="create" id="FormBookingCreate" class="jqTransform FormValidate '
        f'validateIdentity" method="post" action="{action}">{body}</form>'
    )


def _planning_key(site: LegacySite, form: LegacyForm, planning: Planning) -> str:
    return f"legacy/{site.host}/{form.id}/{planning.id}"


def _in(periods: list[Period], anchor: datetime, at: datetime) -> bool:
    return any(p.contains(anchor, at) for p in periods)


def offered_plannings(form: LegacyForm, anchor: datetime, at: datetime) -> list[Planning]:
    return [p for p in form.plannings if not _in(p.missing, anchor, at)]


class LegacyModule:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.sessions = LegacySessions()

    # -- helpers ---------------------------------------------------------------------
    def _session(self, request: Request, site: LegacySite, form_id: int) -> tuple[str, Session]:
        sid = request.cookies.get("eZSESSID")
        with self.sessions.lock:
            if sid and sid in self.sessions.by_id and self.sessions.by_id[sid].form_id == form_id:
                return sid, self.sessions.by_id[sid]
            sid = secrets.token_hex(16)
            session = Session(form_id)
            self.sessions.by_id[sid] = session
            return sid, session

    def _with_cookie(self, response: Response, site: LegacySite, sid: str) -> Response:
        response.headers.append(("Set-Cookie", f"eZSESSID={sid}; Path=/{site.host}; HttpOnly"))
        return response

    def state_of(self, site: LegacySite, form: LegacyForm, planning: Planning) -> SlotState:
        return self.state.slots_now(_planning_key(site, form, planning), planning.profile)

    # -- routing ---------------------------------------------------------------------
    def handle(self, site: LegacySite, rest: str, request: Request) -> Response:
        # eZ Publish answers with and without its `index.php` front controller.
        endpoint = rest.removeprefix("/index.php")
        if CAPTCHA.match(endpoint):
            self.state.violation("captcha endpoint reached", request)
            return Response(200, b"\x89PNG fake captcha", "image/png")
        match = CALENDAR.match(endpoint)
        if match:
            return self._encode(
                site, self.calendar(site, request, *map(int, match.groups())), fragment=True
            )
        match = BOOKING.match(rest)
        if not match:
            return self._encode(
                site,
                Response.html(
                    _page(site, "Page introuvable", "<h1>Page introuvable</h1>", None), 404
                ),
            )
        front = match.group(1) or ""
        form_id = int(match.group(2))
        step = int(match.group(3) or 0)
        form = next((f for f in site.forms if f.id == form_id), None)
        if form is None:
            return self._encode(
                site,
                Response.html(
                    _page(site, "Page introuvable", "<h1>Page introuvable</h1>", None), 404
                ),
            )
        now = self.state.clock.now()
        if form.retired:
            self.state.record(site=site.host, form=form.id, state="retired", request=request)
            return self._encode(
                site,
                Response.html(
                    _page(
                        site,
                        "Prise de rendez-vous",
                        "<p>Ce lien a été désactivé définitivement.</p>",
                        None,
                    )
                ),
            )
        if _in(form.overloaded, self.state.anchor, now):
            self.state.record(site=site.host, form=form.id, state="overloaded", request=request)
            page = (
                '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Service '
                "surchargé</title></head><body><h1>Service surchargé</h1><p>Le service est "
                "momentanément surchargé. Veuillez réessayer ultérieurement.</p></body></html>"
            )
            return self._encode(site, Response.html(page))
        if _in(form.closed, self.state.anchor, now):
            self.state.record(site=site.host, form=form.id, state="closed", request=request)
            closed = (
                "<p>Attention : Cette page n'est pas disponible pour le moment !</p>"
                "<p>Elle sera très prochainement remise en ligne.</p>"
            )
            return self._encode(
                site, Response.html(_page(site, "Prise de rendez-vous", closed, None))
            )
        sid, session = self._session(request, site, form.id)
        base = f"/{site.host}{front}/booking/create/{form.id}"
        if request.method == "POST" and any(
            k.startswith("eZBookingAdditionalField") or k in ("firstname", "lastname", "email")
            for k in request.form
        ):
            self.state.violation("personal data submitted", request)
        sent_there = step == 4 and request.method == "GET" and session.jumped
        if step >= 3 and not sent_there:
            self.state.violation(
                f"booking continued past the availability result (step {step})", request
            )
        response = self._step(site, form, session, step, request, base, now)
        if request.fault in ("changed_layout", "new_wording") and response.body:
            page = response.body.decode("utf-8")
            if request.fault == "new_wording":
                page = page.replace(NO_SLOT_TEXT, NEW_WORDING)
            else:
                for old, new in LAYOUT_CHANGES:
                    page = page.replace(old, new)
            response.body = page.encode("utf-8")
        return self._encode(site, self._with_cookie(response, site, sid))

    @staticmethod
    def _encode(site: LegacySite, response: Response, fragment: bool = False) -> Response:
        """Serve an ISO-8859-1 site as old eZ Publish sites do: the encoding declared
        only in the page's `<meta charset>` (a fragment: in the header), none in the
        `Content-Type`."""
        if site.encoding == "utf-8" or not response.content_type.startswith("text/html"):
            return response
        text = response.body.decode("utf-8")
        if fragment:
            response.content_type = "text/html; charset=iso-8859-1"
        else:
            text = text.replace('<meta charset="utf-8">', '<meta charset="iso-8859-1">')
            response.content_type = "text/html"
        response.body = text.encode("iso-8859-1", errors="xmlcharrefreplace")
        return response

    def _step(
        self,
        site: LegacySite,
        form: LegacyForm,
        session: Session,
        step: int,
        request: Request,
        base: str,
        now: datetime,
    ) -> Response:
        offered = offered_plannings(form, self.state.anchor, now)
        single = len(form.plannings) == 1
        no_calendar = _in(form.no_calendar, self.state.anchor, now)
        if step == 0:
            if request.method == "POST":
                if request.field("condition") != "on":
                    return Response.redirect(f"{base}/0")
                session.accepted = True
                if single and not no_calendar:
                    session.planning = form.plannings[0].id if offered else None
                    return self._after_choice(site, form, session, base)
                return Response.redirect(f"{base}/1")
            return Response.html(_page(site, form.title, self._conditions(form, base), 0))
        if not session.accepted:
            return Response.redirect(f"{base}/0")
        if step == 1:
            if no_calendar:
                self.state.record(
                    site=site.host, form=form.id, state="no_calendar", request=request
                )
                error = f'<ul class="error"><li>{NO_CALENDAR_TEXT}</li></ul>'
                return Response.html(_page(site, form.title, error, 1))
            if request.method == "POST":
                chosen = request.field("planning")
                if (
                    chosen is None
                    or not chosen.isdigit()
                    or int(chosen) not in {p.id for p in offered}
                ):
                    return Response.redirect(f"{base}/1")
                session.planning = int(chosen)
                return self._after_choice(site, form, session, base)
            self.state.record(
                site=site.host,
                form=form.id,
                state="counters",
                request=request,
                offered=[p.id for p in offered],
            )
            return Response.html(_page(site, form.title, self._counters(offered, base), 1))
        planning = next((p for p in form.plannings if p.id == session.planning), None)
        if step == 2:
            if request.method == "POST":
                return Response.redirect(f"{base}/3")
            if planning is None or planning not in offered:
                self.state.record(site=site.host, form=form.id, state="missing", request=request)
                return Response.html(_page(site, form.title, self._result(None, base), 2))
            slots = self.state_of(site, form, planning)
            self.state.record(
                site=site.host,
                form=form.id,
                planning=planning.id,
                state="open" if slots.open else "no_slot",
                first_slot=slots.first,
                slots=len(slots.slots),
                request=request,
            )
            return Response.html(_page(site, form.title, self._result(slots, base), 2))
        if planning is None:
            return Response.redirect(f"{base}/0")
        slots = self.state_of(site, form, planning)
        if step == 3:
            body = _form(
                f"{base}/4",
                '<input type="submit" name="nextButton" value="Première plage horaire libre">',
            )
            return Response.html(_page(site, form.title, "<h2>Choix d'une plage</h2>" + body, 2))
        if step == 4 and request.method == "GET" and session.jumped:
            self.state.record(
                site=site.host,
                form=form.id,
                planning=planning.id,
                state="open" if slots.open else "no_slot",
                first_slot=slots.first,
                slots=len(slots.slots),
                request=request,
            )
            return Response.html(_step4_page(site, form, base))
        if step == 4 and slots.first is not None:
            first = slots.first
            body = (
                f"<h2>Choix d'une plage</h2><label>Date</label><span>{french_date(first)} "
                f"à {first:%H:%M}</span>"
            )
            return Response.html(_page(site, form.title, _form(f"{base}/5", body), 2))
        return Response.html(_page(site, form.title, "<h2>Contrôle de sécurité</h2>", 3))

    def _after_choice(
        self, site: LegacySite, form: LegacyForm, session: Session, base: str
    ) -> Response:
        """Where the module sends the visitor once the counter is known: the result page,
        or — on forms that do so, when slots exist — straight to step 4."""
        planning = next((p for p in form.plannings if p.id == session.planning), None)
        if form.jump_to_step4 and planning is not None and self.state_of(site, form, planning).open:
            session.jumped = True
            return Response.redirect(f"{base}/4")
        return Response.redirect(f"{base}/2")

    # -- pages -----------------------------------------------------------------------
    def _conditions(self, form: LegacyForm, base: str) -> str:
        body = (
            f"<h2>{html.escape(form.title)}</h2>"
            '<div id="condition_Booking"><input type="checkbox" name="condition" '
            'id="condition" value="on"><label for="condition">Veuillez cocher la case pour '
            "accepter les conditions d'utilisation avant de continuer le processus de prise "
            "de rendez-vous.</label></div>"
            '<div id="submit_Booking"><input type="submit" name="nextButton" class="Bbutton" '
            'value="Effectuer une demande de rendez-vous"></div>'
        )
        return _form(f"{base}/0", body)

    def _counters(self, offered: list[Planning], base: str) -> str:
        rows = "".join(
            f'<p class="Bligne"><input type="radio" class="radio" name="planning" '
            f'id="planning{p.id}" value="{p.id}"><label for="planning{p.id}">'
            f"{html.escape(p.label)}</label></p>"
            for p in offered
        )
        body = (
            "<h2>Choix de la nature du rendez-vous</h2>"
            f'<fieldset id="fchoix_Booking"><legend>Que souhaitez-vous effectuer ?</legend>'
            f"{rows}</fieldset>"
            '<input type="submit" name="nextButton" class="Bbutton" value="Etape suivante">'
        )
        return _form(f"{base}/1", body)

    def _result(self, slots: SlotState | None, base: str) -> str:
        if slots is None or not slots.open:
            finish = '<input type="submit" name="finishButton" class="Bbutton" value="Terminer">'
            return "<h2>Vérification de disponibilité</h2>" + _form(
                f"{base}/2", f"\n            {NO_SLOT_TEXT}\n            {finish}"
            )
        body = (
            "<p>Des plages horaires sont disponibles pour votre demande.</p>"
            '<input type="submit" name="nextButton" class="Bbutton" value="Etape suivante">'
        )
        return "<h2>Vérification de disponibilité</h2>" + _form(f"{base}/2", body)

    def calendar(
        self, site: LegacySite, request: Request, form_id: int, planning_id: int, day_index: int
    ) -> Response:
        form = next((f for f in site.forms if f.id == form_id), None)
        planning = form and next((p for p in form.plannings if p.id == planning_id), None)
        sid = request.cookies.get("eZSESSID")
        with self.sessions.lock:
            session = self.sessions.by_id.get(sid or "")
        if form is None or planning is None or session is None or not session.accepted:
            return Response(403, b"<h1>Forbidden</h1>")
        now = self.state.clock.now()
        today = now.astimezone(PARIS).date() + timedelta(days=day_index)
        monday = today - timedelta(days=today.weekday())
        sunday = monday + timedelta(days=6)
        slots = (
            self.state_of(site, form, planning)
            if planning in offered_plannings(form, self.state.anchor, now)
            else SlotState(False, ())
        )
        self.state.record(
            site=site.host,
            form=form.id,
            planning=planning.id,
            state="calendar",
            slots=len(slots.slots),
            request=request,
        )
        free = {(s.date(), s.strftime("%H:%M")) for s in slots.slots}
        days = [monday + timedelta(days=i) for i in range(7)]
        head = "".join(f"<th>{DAYS_FR[d.weekday()]} {d:%d/%m}</th>" for d in days)
        rows = []
        for half_hour in range(14):
            hhmm = f"{9 + half_hour // 2:02d}:{30 * (half_hour % 2):02d}"
            cells = "".join(
                '<td class="libre"><a href="#">plage libre</a></td>'
                if (d, hhmm) in free
                else '<td class="occupe">-</td>'
                for d in days
            )
            rows.append(f"<tr><th>{hhmm}</th>{cells}</tr>")
        fragment = (
            f'<div class="planning_Booking"><h4>Semaine du {french_date(monday)} au '
            f"{french_date(sunday)}</h4><table><thead><tr><th>Horaire</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
        return Response.html(fragment)
