"""Adapter for eAppointment (Val-de-Marne, Rhône), in a real browser.

Flow (the project's platform notes §3): the entry page, the postal code (`#CPId`) when
asked — "Continuer" is an `input type="button"` whose script maps the postal code to a
site key and navigates to `appointment.do?sitekey=…` —, the motive checkbox
(`selectedMotiveKeyList`), then `#nextButtonId`. The server answers "no slot" with a
message the page shows in a JavaScript alert, which only a browser sees:

- an alert whose text is, exactly after folding spaces and apostrophes, one of the
  target's `no_slot_messages` (default: the Val-de-Marne text, typos included), raised
  on the target's own site, with no date picker offering days → `no_slot`;
- "Veuillez saisir un code postal valide." → `error`/`bad_postal_code` (the target's
  configuration is wrong: it says nothing about slots);
- the date step (jQuery-UI date picker, `#dayValueId`, `#hourValueSelect`) with
  selectable days → `available` (first day and hour, count of selectable days);
- the configured motive not offered → `procedure_missing`;
- any other alert or page → `unrecognized`. The raw alert text is always kept in
  `platform_message`. It never selects a date or goes further.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from urllib.parse import urlsplit

from lxml import html as lxml_html
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from observatoire.adapters.base import (
    STAMP,
    Adapter,
    ProbeContext,
    ProbeStop,
    drop_hidden,
    normalize_text,
    parse_html,
    read_saved_page,
)
from observatoire.adapters.browser_support import (
    DialogLog,
    browser_error_detail,
    capture,
    dialog_note,
    page_signs,
    settle,
    status_stop,
    wait_for,
)
from observatoire.clock import PARIS
from observatoire.config import Target
from observatoire.french import MONTH_NUMBER
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.platforms import EAppointmentOptions, Platform

BAD_POSTAL_CODE = normalize_text("Veuillez saisir un code postal valide.")
MOTIVES = "input[name=selectedMotiveKeyList]"
CONTINUE = (
    "input[type=button][value='Continuer'], input[type=submit][value='Continuer'], "
    "button:has-text('Continuer')"
)
WINDOW_DAYS = 60
#: The robot's stamp line for an alert (browser_support.dialog_note).
ALERT_NOTE = re.compile(r"Alerte JavaScript affichée par le site : (\".*\")")
HOUR = re.compile(r"^(\d{1,2})\s*[:hH]\s*(\d{2})")
DAY_VALUE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def _cls(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


@dataclass(frozen=True)
class DatePicker:
    """What the date step shows: the selectable days, the hours listed for the selected
    day, and whether the day field is enabled."""

    days: list[date]
    hours: list[time]
    selected: date | None
    day_field_disabled: bool


def parse_datepicker(doc: lxml_html.HtmlElement) -> DatePicker | None:
    """The jQuery-UI date picker of the date step, or None when the page has none.

    Each month is a `div.ui-datepicker-group` (or a single header + calendar) whose
    month is in `span.ui-datepicker-month`, year in `span.ui-datepicker-year` (else the
    cells' `data-year`); a selectable day is a link `td a` in a cell without the
    `ui-datepicker-unselectable` class. Raises ValueError on a month it cannot read."""
    groups = doc.xpath(f"//div[{_cls('ui-datepicker-group')}]")
    if not groups:
        groups = [
            h.getparent()
            for h in doc.xpath(f"//div[{_cls('ui-datepicker-header')}]")
            if h.getparent() is not None
        ]
    field = doc.xpath("//*[@id='dayValueId']")
    if not groups and not field:
        return None
    days: list[date] = []
    for group in groups:
        month_el = group.xpath(f".//span[{_cls('ui-datepicker-month')}]")
        month_name = normalize_text(month_el[0].text_content()).lower() if month_el else ""
        if month_name not in MONTH_NUMBER:
            raise ValueError(f"month {month_name!r}")
        year_el = group.xpath(f".//span[{_cls('ui-datepicker-year')}]")
        year_text = normalize_text(year_el[0].text_content()) if year_el else ""
        if not year_text.isdigit():
            years = {td.get("data-year") for td in group.xpath(".//td[@data-year]")}
            if len(years) != 1:
                raise ValueError("year")
            year_text = str(years.pop())
        for cell in group.xpath(
            f".//td[not({_cls('ui-datepicker-unselectable')}) and "
            f"not({_cls('ui-datepicker-other-month')})]/a"
        ):
            label = normalize_text(cell.text_content())
            if label.isdigit():
                days.append(date(int(year_text), MONTH_NUMBER[month_name], int(label)))
    hours: list[time] = []
    for option in doc.xpath("//select[@id='hourValueSelect']/option"):
        match = HOUR.match(normalize_text(option.get("value") or option.text_content() or ""))
        if match:
            hours.append(time(int(match.group(1)), int(match.group(2))))
    selected = None
    if field:
        match = DAY_VALUE.search(field[0].get("value") or "")
        if match:
            day, month, year = (int(g) for g in match.groups())
            selected = date(year, month, day)
    disabled = bool(field) and field[0].get("disabled") is not None
    return DatePicker(sorted(set(days)), sorted(hours), selected, disabled)


def _same_site(url: str | None, target_url: str) -> bool:
    """The same host and the same application (first path segments up to the
    `eAppointment…` one) as the target: an alert raised on another site is not the
    target's answer."""
    if not url:
        return True
    a, b = urlsplit(url), urlsplit(target_url)

    def app(path: str) -> str:
        parts = path.split("/")
        for index, part in enumerate(parts):
            if part.lower().startswith("eappointment"):
                return "/".join(parts[: index + 1]).lower()
        return ""

    return a.netloc.lower() == b.netloc.lower() and app(a.path) == app(b.path)


def no_slot_messages(target: Target | None) -> list[str]:
    """The instance's no-slot alert texts, folded: the target's, else the options
    model's default (the Val-de-Marne text)."""
    options = target.options_as(EAppointmentOptions) if target else EAppointmentOptions()
    return [normalize_text(m) for m in options.no_slot_messages]


def judge_alert(
    message: str,
    doc: lxml_html.HtmlElement | None,
    url: str | None,
    target_url: str | None,
    expected: list[str],
) -> tuple[Outcome, str]:
    """The verdict on an alert raised after the motive step.

    `no_slot` needs all of: the exact text, the target's site, no date picker offering
    days and no login form on the page it was raised on."""
    folded = normalize_text(message)
    if folded == BAD_POSTAL_CODE:
        return Outcome.ERROR, "bad_postal_code"
    if folded not in expected:
        return Outcome.UNRECOGNIZED, "dialog"
    if target_url and not _same_site(url, target_url):
        return Outcome.UNRECOGNIZED, "other_site"
    if doc is not None:
        if doc.xpath("//input[@type='password']"):
            return Outcome.UNRECOGNIZED, "contrary_sign:login_page"
        try:
            picker = parse_datepicker(doc)
        except ValueError:
            return Outcome.UNRECOGNIZED, "contrary_sign:datepicker"
        if picker is not None and (picker.days or not picker.day_field_disabled):
            return Outcome.UNRECOGNIZED, "contrary_sign:datepicker"
    return Outcome.NO_SLOT, ""


def read_datepicker(doc: lxml_html.HtmlElement, now: datetime | None) -> ProbeResult:
    """`available` from the date step, or `unrecognized` with the reason."""
    try:
        picker = parse_datepicker(doc)
    except ValueError as exc:
        return ProbeResult(Outcome.UNRECOGNIZED, f"datepicker:{exc}")
    if picker is None:
        return ProbeResult(Outcome.UNRECOGNIZED, "page")
    days = picker.days
    if now is not None:
        today = now.astimezone(PARIS).date()
        days = [d for d in days if d >= today]
    if not days:
        return ProbeResult(Outcome.UNRECOGNIZED, "datepicker_empty")
    if picker.day_field_disabled:
        return ProbeResult(Outcome.UNRECOGNIZED, "datepicker_disagrees")
    first_day = days[0]
    hours = picker.hours if picker.selected in (None, first_day) else []
    first = datetime.combine(first_day, hours[0] if hours else time(0), PARIS)
    if len(hours) > 1:
        second: datetime | None = datetime.combine(first_day, hours[1], PARIS)
    else:
        second = datetime.combine(days[1], time(0), PARIS) if len(days) > 1 else None
    horizon = first_day + timedelta(days=WINDOW_DAYS)
    if now is not None:
        horizon = now.astimezone(PARIS).date() + timedelta(days=WINDOW_DAYS)
    return ProbeResult(
        Outcome.AVAILABLE,
        "datepicker",
        first_slot_at=first,
        second_slot_at=second,
        slots_count=len([d for d in days if d <= horizon]),
    )


def _visible_doc(html: bytes) -> lxml_html.HtmlElement:
    doc = parse_html(html.decode("utf-8", errors="replace"))
    drop_hidden(doc)
    return doc


class EAppointmentAdapter(Adapter):
    name = "eappointment"
    version = "2.0"
    transport = "browser"

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        pool = ctx.require_browser()
        timeout = ctx.http.policy.read_timeout
        async with pool.page(ctx.http) as page:
            dialogs = DialogLog(page)
            try:
                return await self._flow(page, dialogs, target, ctx, timeout)
            except ProbeStop as stop:
                if stop.result.page is None and stop.result.outcome is not Outcome.ERROR:
                    html, shot = await capture(page, ctx.clock.now())
                    raise ProbeStop(
                        replace(stop.result, final_url=page.url, page=html, screenshot=shot)
                    ) from None
                raise
            except PlaywrightError as exc:
                return ProbeResult(
                    Outcome.ERROR, browser_error_detail(exc, ctx.http), final_url=page.url
                )

    async def _postal_code(
        self, page: Page, dialogs: DialogLog, target: Target, ctx: ProbeContext, timeout: float
    ) -> None:
        """Type the postal code and press "Continuer" (a plain button whose script
        navigates; Enter in the field when no such button is found)."""
        postal = target.options_as(EAppointmentOptions).postal_code
        if not postal:
            raise ProbeStop(ProbeResult(Outcome.ERROR, "postal_code_needed", final_url=page.url))
        await page.fill("#CPId", str(postal))
        seen = len(dialogs.messages)
        button = await page.query_selector(CONTINUE)
        if button is not None:
            await button.click()
        else:
            await page.press("#CPId", "Enter")

        async def answered() -> bool:
            return len(dialogs.messages) > seen or await _has(page, f"{MOTIVES}, #nextButtonId")

        await wait_for(answered, timeout)
        if len(dialogs.messages) > seen:
            raw = dialogs.messages[-1]
            html, shot = await capture(page, ctx.clock.now(), dialog_note(raw))
            bad = normalize_text(raw) == BAD_POSTAL_CODE
            raise ProbeStop(
                ProbeResult(
                    Outcome.ERROR if bad else Outcome.UNRECOGNIZED,
                    "bad_postal_code" if bad else "postal_code_dialog",
                    final_url=page.url,
                    page=html,
                    screenshot=shot,
                    platform_message=raw,
                )
            )
        await settle(page, timeout, ctx.http)
        if not await _has(page, f"{MOTIVES}, #nextButtonId"):
            await page_signs(page)
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "motive_page"))

    async def _flow(
        self, page: Page, dialogs: DialogLog, target: Target, ctx: ProbeContext, timeout: float
    ) -> ProbeResult:
        response = await page.goto(target.url, wait_until="domcontentloaded")
        if response is None:
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "no_response"))
        stop = status_stop(response.status, page.url)
        if stop:
            raise stop
        await settle(page, timeout, ctx.http)
        await page_signs(page)
        if await page.query_selector("#CPId"):
            await self._postal_code(page, dialogs, target, ctx, timeout)
            await page_signs(page)
        offered = await page.eval_on_selector_all(MOTIVES, "els => els.map(e => e.value)")
        if not await page.query_selector("#nextButtonId"):
            await page_signs(page)
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "motive_page"))
        wanted = target.options_as(EAppointmentOptions).motive
        if not offered:
            raise ProbeStop(ProbeResult(Outcome.PROCEDURE_MISSING, "no_motive_offered"))
        if wanted and wanted not in offered:
            raise ProbeStop(ProbeResult(Outcome.PROCEDURE_MISSING, "motive_not_offered"))
        chosen = wanted or offered[0]
        await page.check(f"{MOTIVES}[value='{chosen}']")
        before = page.url
        seen = len(dialogs.messages)
        await page.click("#nextButtonId")

        async def answered() -> bool:
            return len(dialogs.messages) > seen or (page.url != before and await _has(page, "body"))

        if not await wait_for(answered, timeout):
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "no_answer_to_next"))
        now = ctx.clock.now()
        if len(dialogs.messages) > seen:
            raw = dialogs.messages[-1]
            html, shot = await capture(page, now, dialog_note(raw))
            outcome, detail = judge_alert(
                raw, _visible_doc(html), page.url, target.url, no_slot_messages(target)
            )
            return ProbeResult(
                outcome,
                detail,
                final_url=page.url,
                page=html,
                screenshot=shot,
                platform_message=raw,
            )
        await settle(page, timeout, ctx.http)
        await page_signs(page)
        html, shot = await capture(page, now)
        found = read_datepicker(_visible_doc(html), now)
        if found.outcome is Outcome.AVAILABLE and not _same_site(page.url, target.url):
            found = ProbeResult(Outcome.UNRECOGNIZED, "other_site")
        if found.outcome is Outcome.UNRECOGNIZED and found.detail == "page":
            found = replace(found, detail="slot_page")
        return replace(found, final_url=page.url, page=html, screenshot=shot)

    def classify(self, page: bytes, url: str | None = None) -> ProbeResult:
        """A saved page: the date picker, or (saved with the robot's stamp) an alert.

        Without a target, the alert is compared with the default no-slot text; with
        `url`, the capture's own address must be on that site."""
        try:
            doc, _ = read_saved_page(page)
        except ProbeStop as stop:
            return stop.result
        stamp = doc.xpath(STAMP)
        captured_url = None
        alert = None
        for element in stamp:
            content = element.text_content()
            match = ALERT_NOTE.search(content)
            if match:
                try:
                    alert = json.loads(match.group(1))
                except ValueError:
                    alert = None
            head = re.search(r"Capture observatoire — (\S+)", content)
            captured_url = head.group(1) if head else captured_url
            element.drop_tree()
        drop_hidden(doc)
        if isinstance(alert, str):
            outcome, detail = judge_alert(alert, doc, captured_url, url, no_slot_messages(None))
            return ProbeResult(outcome, detail, page=page, final_url=url, platform_message=alert)
        found = read_datepicker(doc, None)
        if found.outcome is Outcome.AVAILABLE:
            if url and captured_url and not _same_site(captured_url, url):
                return ProbeResult(Outcome.UNRECOGNIZED, "other_site", page=page, final_url=url)
            return replace(found, page=page, final_url=url)
        if doc.xpath("//*[@id='nextButtonId']") and not doc.xpath(
            "//input[@name='selectedMotiveKeyList']"
        ):
            return ProbeResult(
                Outcome.PROCEDURE_MISSING, "no_motive_offered", page=page, final_url=url
            )
        return replace(found, page=page, final_url=url)


async def _has(page: Page, selector: str) -> bool:
    return await page.query_selector(selector) is not None


PLATFORM = Platform(
    adapter=EAppointmentAdapter,
    label="eAppointment",
    options=EAppointmentOptions,
    url_pattern=re.compile(r"^https?://[^/]+(/.*)?/eAppointment[^/]*/.+"),
    url_hint="https://rdv-etrangers-94.interieur.gouv.fr/eAppointmentpref94/…",
)
