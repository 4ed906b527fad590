"""Adapter for the legacy prefecture booking module (eZ Publish `booking/create`).

Flow (the project's platform notes §1): GET the conditions page, POST the accepted
conditions, choose the counter if asked, read the availability result, and — only
when the result offers to continue — read the read-only week calendar to date the
first free slots. It never goes past the result page: no captcha, no personal data.

Outcomes:
- `no_slot` only by *agreement* (see `judge_no_slot`): the module's own message, word
  for word, in its place (the result form under "Vérification de disponibilité", or
  the `ul.error` list for "Il n'y a pas calendrier disponible…", detail
  `no_calendar`), on a page of the target's site and form, with no contrary sign
  (a continue button, radios, free calendar cells, a hidden copy, a login form).
  A message that fails any check gives `unrecognized` with the check in `detail`;
- `available` only when the calendar shows at least one "plage libre" cell, or when
  the module jumped to step 4 ("Première plage horaire libre") and no calendar can
  date it (detail `first_free_slot_offered`, no date);
- `procedure_missing` when the configured counter is not offered;
- `error`/`target_retired` on "Ce lien a été désactivé définitivement";
- `error`/`module_closed` on the closed-module page; `blocked`/`overloaded` on
  "Service surchargé"; anything else is `unrecognized`.

Pages are decoded as they declare themselves (`Content-Type`, else `<meta charset>`):
old eZ Publish sites serve ISO-8859-1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urljoin, urlsplit

import httpx
from lxml import html as lxml_html

from observatoire.adapters.base import (
    Adapter,
    ProbeContext,
    ProbeStop,
    blocked_sign,
    check_status,
    decode_page,
    element_xpath,
    normalize_text,
    parse_html,
    response_text,
    visible_text,
)
from observatoire.clock import PARIS
from observatoire.config import Target
from observatoire.french import MONTH_NUMBER
from observatoire.outcomes import TARGET_RETIRED, Outcome, ProbeResult
from observatoire.platforms import LegacyBookingOptions, Platform

NO_SLOT_MESSAGE = normalize_text(
    "Il n'existe plus de plage horaire libre pour votre demande de rendez-vous. "
    "Veuillez recommencer ultérieurement."
)
#: The second real no-slot message (sic), in a `ul.error` list right after the
#: conditions: no counter is open for booking.
NO_CALENDAR_MESSAGE = normalize_text(
    "Il n'y a pas calendrier disponible pour effectuer une demande de rendez-vous"
)
RESULT_HEADING = "Vérification de disponibilité"
RETIRED = "Ce lien a été désactivé définitivement"
CLOSED = "Cette page n'est pas disponible pour le moment"
OVERLOADED = "Service surchargé"
FREE_CELL = "plage libre"
CONDITIONS_SUBMIT = "Effectuer une demande de rendez-vous"
NEXT_SUBMIT = "Etape suivante"
FIRST_FREE_SLOT = "Première plage horaire libre"
#: Buttons that mean "go on": slots exist, whatever else the page says.
CONTINUE_LABEL = re.compile(
    r"suivant|continuer|plage horaire libre|choisir|réserver|valider|confirmer", re.I
)
BUTTONS = "//input[@type='submit' or @type='button' or @type='image'] | //button"

FORM_URL = re.compile(r"^(?P<site>.+?)/booking/create/(?P<form>\d+)")
WEEK_HEADING = re.compile(
    r"Semaine du \w+ (?P<day>\d{1,2}) (?P<month>[a-zéû]+) (?P<year>\d{4})", re.I
)
MONTHS = MONTH_NUMBER
HHMM = re.compile(r"^(\d{1,2})[:h](\d{2})$")
#: How far the calendar is walked, at most, to date a first slot beyond the window.
LOOKAHEAD_DAYS = 120


def split_url(url: str) -> tuple[str, int]:
    match = FORM_URL.match(url)
    if not match:
        raise ValueError(f"not a booking/create URL: {url}")
    return match.group("site"), int(match.group("form"))


def _site_key(site: str) -> tuple[str, str]:
    """A site as compared for ownership: host (lower case, no trailing dot, no default
    port) and path prefix, with an `index.php` front controller folded away (the module
    is reachable with and without it)."""
    parts = urlsplit(site)
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    path = parts.path.rstrip("/").removesuffix("/index.php").rstrip("/")
    return host, path.lower()


@dataclass(frozen=True)
class Owner:
    """Whose page it should be: the target's site and form id."""

    site: tuple[str, str] | None
    form_id: int

    @classmethod
    def of(cls, url: str | None) -> Owner | None:
        if not url:
            return None
        try:
            site, form_id = split_url(url)
        except ValueError:
            return None
        return cls(_site_key(site), form_id)


def ownership_problem(
    doc: lxml_html.HtmlElement, final_url: str | None, owner: Owner | None
) -> str | None:
    """Why the page does not belong to the target (`other_site`, `other_form`,
    `not_a_booking_page`), or None.

    Both the address the page was served from and every form's action must name the
    target's site and form id: a redirect to another form's result, or a page whose
    form posts to another prefecture's form, is not the target's answer."""
    if final_url:
        seen = Owner.of(final_url)
        if seen is None:
            return "not_a_booking_page"
        if owner is None:
            owner = seen
        elif seen.site != owner.site:
            return "other_site"
        elif seen.form_id != owner.form_id:
            return "other_form"
    base = final_url or "http://site.invalid/"
    for form in doc.xpath("//form[@action]"):
        action = (form.get("action") or "").strip()
        if not action or action.startswith("#"):
            continue
        absolute = urljoin(base, action)
        seen = Owner.of(absolute)
        if seen is None:
            return "other_form_action"
        if owner is None:
            owner = seen if final_url or action.startswith("http") else Owner(None, seen.form_id)
            continue
        relative_unknown = not final_url and not action.startswith("http")
        if not relative_unknown and owner.site is not None and seen.site != owner.site:
            return "other_site"
        if seen.form_id != owner.form_id:
            return "other_form"
    return None


def _button_label(button: lxml_html.HtmlElement) -> str:
    return normalize_text(button.get("value") or button.text_content() or "")


def contrary_sign(doc: lxml_html.HtmlElement, text: str) -> str | None:
    """A sign, on the visible page, that booking can go on: then no message means
    "no slot", whatever it says."""
    if doc.xpath("//input[@type='password']"):
        return "contrary_sign:login_page"
    if doc.xpath("//input[@type='radio']"):
        return "contrary_sign:slot_radios"
    for button in doc.xpath(BUTTONS):
        label = _button_label(button)
        if button.get("name") == "finishButton" or label == "Terminer":
            continue
        if label == CONDITIONS_SUBMIT:
            continue  # the conditions page's own button, not a step towards a slot
        if CONTINUE_LABEL.search(label) or button.get("name") == "nextButton":
            return "contrary_sign:continue_button"
    if FREE_CELL in text.lower() or doc.xpath("//td[contains(@class, 'libre')]"):
        return "contrary_sign:free_calendar"
    return None


def _has_class(cls: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {cls} ')"


def judge_no_slot(
    doc: lxml_html.HtmlElement,
    text: str,
    hidden: list[str],
    final_url: str | None,
    owner: Owner | None,
) -> tuple[Outcome, str] | None:
    """Whether the page is the module's no-slot answer for this target.

    `doc` and `text` are the *visible* page (hidden elements dropped); `hidden` the
    dropped texts. None when no no-slot message is present at all (visible or not).
    Otherwise `(no_slot, detail)` when every check agrees, else `(unrecognized,
    <the check that failed>)`."""
    messages = [m for m in (NO_SLOT_MESSAGE, NO_CALENDAR_MESSAGE) if m in text]
    if any(m in h for h in hidden for m in (NO_SLOT_MESSAGE, NO_CALENDAR_MESSAGE)):
        return Outcome.UNRECOGNIZED, "no_slot_message_hidden"
    if not messages:
        return None
    if len(messages) > 1:
        return Outcome.UNRECOGNIZED, "no_slot_messages_disagree"
    message = messages[0]
    if message == NO_SLOT_MESSAGE:
        places = doc.xpath("//*[@id='inner_Booking']//form[@id='FormBookingCreate']")
        if not any(message in normalize_text(p.text_content()) for p in places):
            return Outcome.UNRECOGNIZED, "no_slot_message_out_of_place"
        headings = [normalize_text(h.text_content()) for h in doc.xpath("//h1|//h2|//h3")]
        if RESULT_HEADING not in headings:
            return Outcome.UNRECOGNIZED, "no_result_heading"
        detail = ""
    else:
        places = doc.xpath(f"//ul[{_has_class('error')}]")
        if not any(message in normalize_text(p.text_content()) for p in places):
            return Outcome.UNRECOGNIZED, "no_slot_message_out_of_place"
        detail = "no_calendar"
    problem = ownership_problem(doc, final_url, owner)
    if problem:
        return Outcome.UNRECOGNIZED, problem
    sign = contrary_sign(doc, text)
    if sign:
        return Outcome.UNRECOGNIZED, sign
    return Outcome.NO_SLOT, detail


def is_step4(doc: lxml_html.HtmlElement) -> bool:
    """The module jumped to step 4: its form offers "Première plage horaire libre"."""
    return any(
        _button_label(b) == FIRST_FREE_SLOT
        for b in doc.xpath("//form[@id='FormBookingCreate']//input[@name='nextButton']")
    )


def is_result_continue(doc: lxml_html.HtmlElement) -> bool:
    """The availability result offering to continue (slots exist)."""
    headings = [normalize_text(h.text_content()) for h in doc.xpath("//h1|//h2|//h3")]
    return RESULT_HEADING in headings and bool(
        doc.xpath('//form[@id="FormBookingCreate"]//input[@name="nextButton"]')
    )


def _common_signs(
    doc: lxml_html.HtmlElement | None, text: str, response: httpx.Response | None, page: bytes
) -> None:
    """Pages that end a probe wherever they appear in the flow."""
    status = response.status_code if response is not None else None
    final = str(response.url) if response is not None else None

    def stop(outcome: Outcome, detail: str) -> ProbeStop:
        return ProbeStop(
            ProbeResult(outcome, detail, http_status=status, final_url=final, page=page)
        )

    if RETIRED in text:
        raise stop(Outcome.ERROR, TARGET_RETIRED)
    if CLOSED in text:
        raise stop(Outcome.ERROR, "module_closed")
    if OVERLOADED in text:
        raise stop(Outcome.BLOCKED, "overloaded")
    sign = blocked_sign(doc, text)
    if sign:
        raise stop(Outcome.BLOCKED, sign)


# The week calendar's parts, compiled once (parse_week runs on every week fetched).
_TABLES = element_xpath(".//table")
_ROWS = element_xpath(".//tbody/tr | ./tr")
_ROW_HEAD = element_xpath("./th")
_ROW_CELLS = element_xpath("./td")


def parse_week(fragment: str) -> list[datetime]:
    """Free slots in one week fragment, as Europe/Paris datetimes.

    Raises ValueError when the fragment is not a week calendar we recognise.
    """
    doc = lxml_html.fragment_fromstring(fragment, create_parent="div")
    text = normalize_text(doc.text_content())
    heading = WEEK_HEADING.search(text)
    if not heading or heading.group("month").lower() not in MONTHS:
        raise ValueError("no week heading")
    monday = date(
        int(heading.group("year")),
        MONTHS[heading.group("month").lower()],
        int(heading.group("day")),
    )
    tables = _TABLES(doc)
    if not tables:
        raise ValueError("no calendar table")
    slots: list[datetime] = []
    for row in _ROWS(tables[0]):
        head = _ROW_HEAD(row)
        if not head:
            continue
        match = HHMM.match(normalize_text(head[0].text_content()))
        if not match:
            raise ValueError("row without a time")
        at = time(int(match.group(1)), int(match.group(2)))
        for column, cell in enumerate(_ROW_CELLS(row)):
            if FREE_CELL in " ".join(cell.text_content().lower().split()):
                slots.append(datetime.combine(monday + timedelta(days=column), at, PARIS))
    return slots


@dataclass
class _Page:
    """One page of the flow, decoded as declared, with its visible text."""

    response: httpx.Response
    doc: lxml_html.HtmlElement
    text: str
    hidden: list[str]


def _read(response: httpx.Response) -> _Page:
    check_status(response)
    doc = parse_html(response_text(response))
    text, hidden = visible_text(doc)
    _common_signs(doc, text, response, response.content)
    return _Page(response, doc, text, hidden)


class LegacyBookingAdapter(Adapter):
    name = "legacy_booking"
    version = "2.0"
    transport = "http"

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        site, form_id = split_url(target.url)
        base = f"{site}/booking/create/{form_id}"
        owner = Owner.of(target.url)
        options = target.options_as(LegacyBookingOptions)
        wanted = options.planning

        current = _read(await ctx.http.get(f"{base}/0"))
        if not current.doc.xpath('//form[@id="FormBookingCreate"]//input[@name="condition"]'):
            raise self._stop(Outcome.UNRECOGNIZED, "conditions_page", current.response)

        current = _read(
            await ctx.http.post(
                f"{base}/0",
                {"condition": "on", "nextButton": CONDITIONS_SUBMIT},
                referer=f"{base}/0",
            )
        )
        judged = self._judge(current, owner)
        if judged is not None:
            return judged

        doc = current.doc
        radios = doc.xpath('//form[@id="FormBookingCreate"]//input[@name="planning"]')
        if radios or doc.xpath('//fieldset[@id="fchoix_Booking"]'):
            problem = ownership_problem(doc, str(current.response.url), owner)
            if problem:
                raise self._stop(Outcome.UNRECOGNIZED, problem, current.response)
            offered = [r.get("value") for r in radios if r.get("value")]
            if not offered:
                raise self._stop(Outcome.PROCEDURE_MISSING, "no_counter_offered", current.response)
            if wanted is not None and str(wanted) not in offered:
                raise self._stop(Outcome.PROCEDURE_MISSING, "counter_not_offered", current.response)
            chosen = str(wanted) if wanted is not None else offered[0]
            current = _read(
                await ctx.http.post(
                    f"{base}/1",
                    {"planning": chosen, "nextButton": NEXT_SUBMIT},
                    referer=f"{base}/1",
                )
            )
            wanted = int(chosen)
            judged = self._judge(current, owner)
            if judged is not None:
                return judged

        response = current.response
        step4 = is_step4(current.doc)
        if not step4 and not is_result_continue(current.doc):
            raise self._stop(Outcome.UNRECOGNIZED, "result_page", response)
        problem = ownership_problem(current.doc, str(response.url), owner)
        if problem:
            raise self._stop(Outcome.UNRECOGNIZED, problem, response)
        if wanted is None:
            if step4:
                # The module itself offers the first free slot; without a counter id
                # the read-only calendar cannot date it.
                return self._result(Outcome.AVAILABLE, "first_free_slot_offered", response)
            raise self._stop(Outcome.UNRECOGNIZED, "planning_unknown", response)

        # The result offers to continue: date the free slots from the read-only calendar.
        # Slots are counted over `calendar_days`; when none falls in that window the walk
        # goes on (up to 120 days) only to date the first one.
        now = ctx.clock.now()
        window = options.calendar_days
        found: set[datetime] = set()
        for day_index in range(0, max(window, LOOKAHEAD_DAYS), 7):
            if day_index >= window and found:
                break
            week = await ctx.http.get(
                f"{site}/ezjscore/call/bookingserver::planning::assign::"
                f"{form_id}::{wanted}::{day_index}",
                referer=f"{base}/2",
            )
            check_status(week)
            fragment = response_text(week)
            _common_signs(None, fragment, week, response.content)
            try:
                found.update(s for s in parse_week(fragment) if s >= now)
            except ValueError as exc:
                raise self._stop(Outcome.UNRECOGNIZED, f"calendar:{exc}", response) from None
        if not found:
            raise self._stop(Outcome.UNRECOGNIZED, "calendar_empty", response)
        horizon = now + timedelta(days=window)
        in_window = [s for s in found if s <= horizon]
        return ProbeResult.with_slots(found, count=len(in_window), response=response)

    def _judge(self, current: _Page, owner: Owner | None) -> ProbeResult | None:
        """The no-slot verdict on a page of the flow, when it carries a no-slot message."""
        verdict = judge_no_slot(
            current.doc, current.text, current.hidden, str(current.response.url), owner
        )
        if verdict is None:
            return None
        return self._result(verdict[0], verdict[1], current.response)

    @staticmethod
    def _result(outcome: Outcome, detail: str, response: httpx.Response) -> ProbeResult:
        return ProbeResult.from_response(outcome, detail, response)

    def _stop(self, outcome: Outcome, detail: str, response: httpx.Response) -> ProbeStop:
        return ProbeStop(self._result(outcome, detail, response))

    def classify(self, page: bytes, url: str | None = None) -> ProbeResult:
        """A saved page. With `url` (the address it was served from) the page must also
        belong to that site and form to be read as `no_slot`."""
        text_raw = decode_page(page)
        try:
            doc = parse_html(text_raw)
            text, hidden = visible_text(doc)
            _common_signs(doc, text, None, page)
        except ProbeStop as stop:
            return stop.result

        def result(
            outcome: Outcome,
            detail: str = "",
            *,
            first_slot_at: datetime | None = None,
            second_slot_at: datetime | None = None,
            slots_count: int | None = None,
        ) -> ProbeResult:
            return ProbeResult(
                outcome,
                detail,
                first_slot_at=first_slot_at,
                second_slot_at=second_slot_at,
                slots_count=slots_count,
                page=page,
                final_url=url,
            )

        verdict = judge_no_slot(doc, text, hidden, url, None)
        if verdict is not None:
            return result(*verdict)
        if WEEK_HEADING.search(text):
            try:
                slots = sorted(parse_week(text_raw))
            except ValueError as exc:
                return result(Outcome.UNRECOGNIZED, f"calendar:{exc}")
            if slots:
                return result(
                    Outcome.AVAILABLE,
                    "calendar",
                    first_slot_at=slots[0],
                    second_slot_at=slots[1] if len(slots) > 1 else None,
                    slots_count=len(slots),
                )
            return result(Outcome.UNRECOGNIZED, "calendar_empty")
        if is_step4(doc):
            problem = ownership_problem(doc, url, None)
            if problem:
                return result(Outcome.UNRECOGNIZED, problem)
            return result(Outcome.AVAILABLE, "first_free_slot_offered")
        radios = doc.xpath('//form[@id="FormBookingCreate"]//input[@name="planning"]')
        if doc.xpath('//fieldset[@id="fchoix_Booking"]') and not radios:
            return result(Outcome.PROCEDURE_MISSING, "no_counter_offered")
        return result(Outcome.UNRECOGNIZED, "page")


PLATFORM = Platform(
    adapter=LegacyBookingAdapter,
    label="Module de réservation des sites de préfecture",
    options=LegacyBookingOptions,
    url_pattern=re.compile(r"^https?://[^/]+(/.*)?/booking/create/\d+/?$"),
    url_hint="https://www.<département>.gouv.fr/booking/create/<formId>",
)
