"""Adapter for the legacy prefecture booking module (eZ Publish `booking/create`).

Flow (shared/reference/platforms.md §1): GET the conditions page, POST the accepted
conditions, choose the counter if asked, read the availability result, and — only
when the result offers to continue — read the read-only week calendar to date the
first free slots. It never goes past the result page: no captcha, no personal data.

Outcomes:
- `no_slot` only on the module's own message, both sentences, word for word;
- `available` only when the calendar shows at least one "plage libre" cell;
- `procedure_missing` when the configured counter is not offered;
- `error`/`target_retired` on "Ce lien a été désactivé définitivement";
- `error`/`module_closed` on the closed-module page; `blocked`/`overloaded` on
  "Service surchargé"; anything else is `unrecognized`.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

import httpx
from lxml import html as lxml_html

from observatoire.adapters import register
from observatoire.adapters.base import (
    Adapter,
    ProbeContext,
    ProbeStop,
    blocked_sign,
    check_status,
    normalize_text,
    page_text,
    parse_html,
)
from observatoire.clock import PARIS
from observatoire.config import Target
from observatoire.french import MONTH_NUMBER
from observatoire.outcomes import Outcome, ProbeResult

NO_SLOT_MESSAGE = normalize_text(
    "Il n'existe plus de plage horaire libre pour votre demande de rendez-vous. "
    "Veuillez recommencer ultérieurement."
)
RESULT_HEADING = "Vérification de disponibilité"
RETIRED = "Ce lien a été désactivé définitivement"
CLOSED = "Cette page n'est pas disponible pour le moment"
OVERLOADED = "Service surchargé"
FREE_CELL = "plage libre"
CONDITIONS_SUBMIT = "Effectuer une demande de rendez-vous"
NEXT_SUBMIT = "Etape suivante"

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
        raise stop(Outcome.ERROR, "target_retired")
    if CLOSED in text:
        raise stop(Outcome.ERROR, "module_closed")
    if OVERLOADED in text:
        raise stop(Outcome.BLOCKED, "overloaded")
    sign = blocked_sign(doc, text)
    if sign:
        raise stop(Outcome.BLOCKED, sign)


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
    tables = doc.xpath(".//table")
    if not tables:
        raise ValueError("no calendar table")
    slots: list[datetime] = []
    for row in tables[0].xpath(".//tbody/tr | ./tr"):
        head = row.xpath("./th")
        if not head:
            continue
        match = HHMM.match(normalize_text(head[0].text_content()))
        if not match:
            raise ValueError("row without a time")
        at = time(int(match.group(1)), int(match.group(2)))
        for column, cell in enumerate(row.xpath("./td")):
            if FREE_CELL in " ".join(cell.text_content().lower().split()):
                slots.append(datetime.combine(monday + timedelta(days=column), at, PARIS))
    return slots


@register
class LegacyBookingAdapter(Adapter):
    name = "legacy_booking"
    version = "1.0"
    transport = "http"

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        site, form_id = split_url(target.url)
        base = f"{site}/booking/create/{form_id}"
        wanted = target.options.get("planning")

        response = await ctx.http.get(f"{base}/0")
        page = self._page(response)
        doc = parse_html(response.text)
        _common_signs(doc, page_text(doc), response, response.content)
        if not doc.xpath('//form[@id="FormBookingCreate"]//input[@name="condition"]'):
            raise self._stop(Outcome.UNRECOGNIZED, "conditions_page", response)

        response = await ctx.http.post(
            f"{base}/0",
            {"condition": "on", "nextButton": CONDITIONS_SUBMIT},
            referer=f"{base}/0",
        )
        page = self._page(response)
        doc = parse_html(response.text)
        _common_signs(doc, page_text(doc), response, page)

        radios = doc.xpath('//form[@id="FormBookingCreate"]//input[@name="planning"]')
        if radios or doc.xpath('//fieldset[@id="fchoix_Booking"]'):
            offered = [r.get("value") for r in radios if r.get("value")]
            if not offered:
                raise self._stop(Outcome.PROCEDURE_MISSING, "no_counter_offered", response)
            if wanted is not None and str(wanted) not in offered:
                raise self._stop(Outcome.PROCEDURE_MISSING, "counter_not_offered", response)
            chosen = str(wanted) if wanted is not None else offered[0]
            response = await ctx.http.post(
                f"{base}/1", {"planning": chosen, "nextButton": NEXT_SUBMIT}, referer=f"{base}/1"
            )
            wanted = int(chosen)
            page = self._page(response)
            doc = parse_html(response.text)
            _common_signs(doc, page_text(doc), response, page)

        text = page_text(doc)
        headings = [normalize_text(h.text_content()) for h in doc.xpath("//h1|//h2|//h3")]
        if NO_SLOT_MESSAGE in text:
            return self._result(Outcome.NO_SLOT, "", response)
        if RESULT_HEADING not in headings or not doc.xpath(
            '//form[@id="FormBookingCreate"]//input[@name="nextButton"]'
        ):
            raise self._stop(Outcome.UNRECOGNIZED, "result_page", response)
        if wanted is None:
            raise self._stop(Outcome.UNRECOGNIZED, "planning_unknown", response)

        # The result offers to continue: date the free slots from the read-only calendar.
        # Slots are counted over `calendar_days`; when none falls in that window the walk
        # goes on (up to 120 days) only to date the first one.
        now = ctx.clock.now()
        window = int(target.options.get("calendar_days") or 60)
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
            _common_signs(None, week.text, week, response.content)
            try:
                found.update(s for s in parse_week(week.text) if s >= now)
            except ValueError as exc:
                raise self._stop(Outcome.UNRECOGNIZED, f"calendar:{exc}", response) from None
        if not found:
            raise self._stop(Outcome.UNRECOGNIZED, "calendar_empty", response)
        horizon = now + timedelta(days=window)
        in_window = [s for s in found if s <= horizon]
        ordered = sorted(found)
        return ProbeResult(
            Outcome.AVAILABLE,
            "",
            first_slot_at=ordered[0],
            second_slot_at=ordered[1] if len(ordered) > 1 else None,
            slots_count=len(in_window),
            http_status=response.status_code,
            final_url=str(response.url),
            page=response.content,
        )

    @staticmethod
    def _page(response: httpx.Response) -> bytes:
        check_status(response)
        return response.content

    @staticmethod
    def _result(outcome: Outcome, detail: str, response: httpx.Response) -> ProbeResult:
        return ProbeResult(
            outcome,
            detail,
            http_status=response.status_code,
            final_url=str(response.url),
            page=response.content,
        )

    def _stop(self, outcome: Outcome, detail: str, response: httpx.Response) -> ProbeStop:
        return ProbeStop(self._result(outcome, detail, response))

    def classify(self, page: bytes, url: str | None = None) -> ProbeResult:
        text_raw = page.decode("utf-8", errors="replace")
        try:
            doc = parse_html(text_raw)
            text = page_text(doc)
            _common_signs(doc, text, None, page)
        except ProbeStop as stop:
            return stop.result
        if NO_SLOT_MESSAGE in text:
            return ProbeResult(Outcome.NO_SLOT, "", page=page, final_url=url)
        if WEEK_HEADING.search(text):
            try:
                slots = sorted(parse_week(text_raw))
            except ValueError as exc:
                return ProbeResult(Outcome.UNRECOGNIZED, f"calendar:{exc}", page=page)
            if slots:
                return ProbeResult(
                    Outcome.AVAILABLE,
                    "calendar",
                    first_slot_at=slots[0],
                    second_slot_at=slots[1] if len(slots) > 1 else None,
                    slots_count=len(slots),
                    page=page,
                    final_url=url,
                )
            return ProbeResult(Outcome.UNRECOGNIZED, "calendar_empty", page=page)
        radios = doc.xpath('//form[@id="FormBookingCreate"]//input[@name="planning"]')
        if doc.xpath('//fieldset[@id="fchoix_Booking"]') and not radios:
            return ProbeResult(Outcome.PROCEDURE_MISSING, "no_counter_offered", page=page)
        return ProbeResult(Outcome.UNRECOGNIZED, "page", page=page, final_url=url)
