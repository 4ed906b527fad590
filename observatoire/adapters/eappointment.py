"""Adapter for eAppointment (Val-de-Marne, Rhône), in a real browser.

Flow (shared/reference/platforms.md §3): the entry page, the postal code (`#CPId`) when
asked, the motive checkbox (`selectedMotiveKeyList`), then `#nextButtonId`. The
platform answers "no slot" with a JavaScript alert, which only a browser sees:

- alert with the exact message → `no_slot`;
- a page listing dated slots → `available` (first, second, count over 60 days);
- the configured motive not offered → `procedure_missing`;
- any other alert or page → `unrecognized`. It never selects a date or goes further.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from observatoire.adapters import register
from observatoire.adapters.base import (
    Adapter,
    ProbeContext,
    ProbeStop,
    normalize_text,
    page_text,
    parse_html,
    read_saved_page,
    stamp_text,
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
from observatoire.config import Target
from observatoire.french import parse_slots
from observatoire.outcomes import Outcome, ProbeResult

NO_APPOINTMENT = normalize_text(
    "Aucun rendez-vous n'est possible pour les motifs sélectionnés ou le créneau horaire "
    "sélectionné."
)
MOTIVES = "input[name=selectedMotiveKeyList]"
WINDOW_DAYS = 60


@register
class EAppointmentAdapter(Adapter):
    name = "eappointment"
    version = "1.0"
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
        if await page.query_selector("#CPId"):
            postal = target.options.get("postal_code")
            if not postal:
                raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "postal_code_needed"))
            await page.fill("#CPId", str(postal))
            button = await page.query_selector(
                "input[type=submit][value='Continuer'], button:has-text('Continuer')"
            )
            if button is None:
                raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "postal_code_page"))
            await button.click()
            try:
                await page.wait_for_selector(f"{MOTIVES}, #nextButtonId", timeout=timeout * 1000)
            except PlaywrightError:
                await page_signs(page)
                raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "motive_page")) from None
        else:
            await page_signs(page)
        offered = await page.eval_on_selector_all(MOTIVES, "els => els.map(e => e.value)")
        if not await page.query_selector("#nextButtonId"):
            await page_signs(page)
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "motive_page"))
        wanted = target.options.get("motive")
        if not offered:
            raise ProbeStop(ProbeResult(Outcome.PROCEDURE_MISSING, "no_motive_offered"))
        if wanted and wanted not in offered:
            raise ProbeStop(ProbeResult(Outcome.PROCEDURE_MISSING, "motive_not_offered"))
        chosen = wanted or offered[0]
        await page.check(f"{MOTIVES}[value='{chosen}']")
        before = page.url
        await page.click("#nextButtonId")

        async def answered() -> bool:
            return bool(dialogs.messages) or (page.url != before and await _has(page, "body"))

        if not await wait_for(answered, timeout):
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "no_answer_to_next"))
        now = ctx.clock.now()
        if dialogs.messages:
            message = normalize_text(dialogs.messages[-1])
            html, shot = await capture(page, now, dialog_note(message))
            if message == NO_APPOINTMENT:
                return ProbeResult(
                    Outcome.NO_SLOT, "", final_url=page.url, page=html, screenshot=shot
                )
            return ProbeResult(
                Outcome.UNRECOGNIZED, "dialog", final_url=page.url, page=html, screenshot=shot
            )
        await settle(page, timeout, ctx.http)
        await page_signs(page)
        html, shot = await capture(page, now)
        slots = [s for s in parse_slots(page_text(parse_html(html.decode()))) if s >= now]
        if not slots:
            return ProbeResult(
                Outcome.UNRECOGNIZED, "slot_page", final_url=page.url, page=html, screenshot=shot
            )
        in_window = [s for s in slots if s <= now + timedelta(days=WINDOW_DAYS)]
        return ProbeResult(
            Outcome.AVAILABLE,
            "",
            first_slot_at=slots[0],
            second_slot_at=slots[1] if len(slots) > 1 else None,
            slots_count=len(in_window),
            final_url=page.url,
            page=html,
            screenshot=shot,
        )

    def classify(self, page: bytes, url: str | None = None) -> ProbeResult:
        """A saved page: the slot list, or (saved with its stamp) the no-slot alert."""
        try:
            doc, text = read_saved_page(page)
        except ProbeStop as stop:
            return stop.result
        stamp = stamp_text(doc)
        if NO_APPOINTMENT in stamp:
            return ProbeResult(Outcome.NO_SLOT, "", page=page)
        slots = parse_slots(text)
        if slots:
            return ProbeResult(
                Outcome.AVAILABLE,
                "",
                first_slot_at=slots[0],
                second_slot_at=slots[1] if len(slots) > 1 else None,
                slots_count=len(slots),
                page=page,
            )
        if doc.xpath("//*[@id='nextButtonId']") and not doc.xpath(
            "//input[@name='selectedMotiveKeyList']"
        ):
            return ProbeResult(Outcome.PROCEDURE_MISSING, "no_motive_offered", page=page)
        return ProbeResult(Outcome.UNRECOGNIZED, "page", page=page)


async def _has(page: Page, selector: str) -> bool:
    return await page.query_selector(selector) is not None
