"""The scripted adapter: an operator covers a new site without code, with steps in the
target's config (goto, click, check, select, fill a non-personal field, wait for) and
rules mapping a text seen at the end (or in a JavaScript alert) to an outcome.

Example (in `prefectures.yaml`):

    platform: scripted
    url: https://rdv.example.gouv.fr/prendre-rdv
    options:
      steps:
        - click: "text=Prendre rendez-vous"
        - fill: "#code-postal"
          value: "38000"
        - click: "button[type=submit]"
        - wait_for: "#resultat"
      expect:
        - {text: "Aucun créneau disponible", outcome: no_slot}
        - {text: "Choisissez votre créneau", outcome: available}
      slot_selector: ".creneau"

No rule matching means `unrecognized`, never `no_slot`. Personal fields are refused when
the config is loaded and again, from the live field's name, id and label, at run time.
"""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

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
)
from observatoire.config import Target
from observatoire.french import parse_slots
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.platforms import (
    ExpectRule,
    Platform,
    ScriptedOptions,
    ScriptStep,
    looks_personal,
)

WINDOW_DAYS = 60


class ScriptedAdapter(Adapter):
    name = "scripted"
    version = "1.0"
    transport = "browser"

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        options = target.options_as(ScriptedOptions)
        pool = ctx.require_browser()
        async with pool.page(ctx.http) as page:
            try:
                return await self._flow(page, target, options, ctx)
            except PlaywrightError as exc:
                # The site failed the browser (connection refused or reset, truncated
                # page): an error, never a statement about slots.
                return ProbeResult(
                    Outcome.ERROR, browser_error_detail(exc, ctx.http), final_url=page.url
                )

    async def _flow(
        self, page: Page, target: Target, options: ScriptedOptions, ctx: ProbeContext
    ) -> ProbeResult:
        timeout = ctx.http.policy.read_timeout
        dialogs = DialogLog(page)
        failed = ""
        response = await page.goto(target.url, wait_until="domcontentloaded")
        if response is not None and (stop := status_stop(response.status, page.url)):
            raise stop
        await settle(page, timeout, ctx.http)
        for index, step in enumerate(options.steps):
            try:
                await self._step(page, step, index)
            except PlaywrightError as exc:
                # The page is not what the steps expect: stop here and let the rules
                # judge the page as it is (no rule matching means unrecognized).
                kind = "timeout" if "Timeout" in str(exc) else "failed"
                failed = f"step{index}:{step.action}:{kind}"
                break
            await settle(page, step.timeout_s)
        await settle(page, timeout, ctx.http)
        await page_signs(page)
        now = ctx.clock.now()
        note = dialog_note(dialogs.messages[-1]) if dialogs.messages else None
        html, shot = await capture(page, now, note)
        text = page_text(parse_html(html.decode("utf-8", errors="replace")))
        dialog_text = normalize_text(" ".join(dialogs.messages))
        rule = match_rule(options.expect, text, dialog_text)
        url = page.url
        if rule is None:
            return ProbeResult(
                Outcome.UNRECOGNIZED,
                failed or "no_rule_matched",
                final_url=url,
                page=html,
                screenshot=shot,
            )
        outcome = Outcome(rule.outcome)
        if outcome is not Outcome.AVAILABLE:
            return ProbeResult(outcome, "", final_url=url, page=html, screenshot=shot)
        slots = []
        if options.slot_selector:
            texts = await page.eval_on_selector_all(
                options.slot_selector, "els => els.map(e => e.textContent)"
            )
            slots = [s for t in texts for s in parse_slots(normalize_text(t)) if s >= now]
        slots = sorted(set(slots))
        return ProbeResult.with_slots(
            slots,
            "" if slots else "undated",
            count=len([s for s in slots if s <= now + timedelta(days=WINDOW_DAYS)])
            if slots
            else None,
            final_url=url,
            page=html,
            screenshot=shot,
        )

    async def _step(self, page: Page, step: ScriptStep, index: int) -> None:
        ms = step.timeout_s * 1000
        action = step.action
        if action == "goto":
            await page.goto(step.goto or "", wait_until="domcontentloaded", timeout=ms)
        elif action == "click":
            await page.click(step.click or "", timeout=ms)
        elif action == "check":
            await page.check(step.check or "", timeout=ms)
        elif action == "select":
            await page.select_option(step.select or "", step.value, timeout=ms)
        elif action == "fill":
            selector = step.fill or ""
            handle = await page.wait_for_selector(selector, timeout=ms)
            described = (
                await handle.evaluate(
                    "e => [e.name, e.id, e.getAttribute('autocomplete') || '',"
                    " e.labels ? Array.from(e.labels).map(l => l.textContent).join(' ') : '']"
                    ".join(' ')"
                )
                if handle
                else ""
            )
            if looks_personal(described):
                raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, f"step{index}:personal_field"))
            await page.fill(selector, step.value or "", timeout=ms)
        elif action == "wait_for":
            # Playwright reads "text=…" and CSS selectors alike.
            await page.wait_for_selector(step.wait_for or "", timeout=ms)

    def classify(self, page: bytes, url: str | None = None) -> ProbeResult:
        """Without a target's rules a saved page can only be checked for blocks."""
        try:
            read_saved_page(page)
        except ProbeStop as stop:
            return stop.result
        return ProbeResult(Outcome.UNRECOGNIZED, "needs_target_rules", page=page)

    def classify_with(self, options: ScriptedOptions, page: bytes) -> ProbeResult:
        """A saved page judged by a target's own rules (contract tests, `classify`)."""
        try:
            doc, text = read_saved_page(page)
        except ProbeStop as stop:
            return stop.result
        stamp = stamp_text(doc)
        rule = match_rule(options.expect, text, stamp)
        if rule is None:
            return ProbeResult(Outcome.UNRECOGNIZED, "no_rule_matched", page=page)
        outcome = Outcome(rule.outcome)
        if outcome is Outcome.AVAILABLE:
            slots = parse_slots(text)
            return ProbeResult.with_slots(slots, "" if slots else "undated", page=page)
        return ProbeResult(outcome, "", page=page)


def match_rule(rules: list[ExpectRule], text: str, dialog_text: str) -> ExpectRule | None:
    for rule in rules:
        wanted = normalize_text(rule.text)
        haystack = dialog_text if rule.in_dialog else text
        if wanted and wanted in haystack:
            return rule
    return None


PLATFORM = Platform(
    adapter=ScriptedAdapter,
    label="Site décrit par des étapes",
    options=ScriptedOptions,
    url_pattern=re.compile(r"^https?://[^/]+.*$"),
    url_hint="any http(s) URL",
)
