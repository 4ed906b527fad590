"""Adapter for the national RDV-Préfecture platform, observed with a volunteer.

The State's captcha (CaptchEtat) stands before the slot page (shared/reference/
platforms.md §2). The robot never solves it and never buys an answer: `observatoire
assist` shows the captcha, taken from the robot's own browser, to a volunteer, and this
module does the rest in steps:

1. `open_captcha`: the procedure's page, the button "Prendre un rendez-vous", then the
   conditions page with the captcha → its image (and audio link when offered);
2. `submit_answer`: types the volunteer's answer and presses "Suivant". A wrong answer
   (`…/cgu/?error=invalidCaptcha`, "est incorrect") gives a new captcha and nothing is
   recorded;
3. `read_slot_page`: "Aucun créneau disponible" → `no_slot`; radio buttons `trhId_…`
   → `available` with the first date and the count. It never selects a slot, never
   presses "Suivant" on that page, never reaches "Vos informations".

Anything else is `blocked` (WAF, 403/429), `error` (timeout, 5xx) or `unrecognized`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urljoin

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from observatoire.adapters import register
from observatoire.adapters.base import (
    STAMP,
    Adapter,
    ProbeContext,
    ProbeStop,
    blocked_sign,
    normalize_text,
    page_text,
    parse_html,
)
from observatoire.adapters.browser_support import (
    capture,
    page_signs,
    settle,
    status_stop,
    wait_for,
)
from observatoire.config import Target
from observatoire.french import parse_slots
from observatoire.outcomes import Outcome, ProbeResult

NO_SLOT = normalize_text("Aucun créneau disponible")
WRONG_ANSWER = "est incorrect"
START_BUTTON = "Prendre un rendez-vous"
ANSWER_INPUT = "#captchaFormulaireExtInput"
WIDGET = "rdv-captchetat"
CAPTCHA_IMAGE = f"{WIDGET} img, img[id$='CaptchaImage']"
AUDIO_LINK = "#captchaFR_SoundLink, rdv-captchetat a[href$='.wav']"
SLOT_INPUTS = "input[type=radio][id^='trhId_']"
#: A procedure id the platform no longer offers (seen as a 404 page saying so).
MISSING = re.compile(
    r"d[ée]marche\W.{0,60}(n'est pas disponible|n'existe pas|introuvable|n'est plus)", re.I
)
PERSONAL_PAGE = re.compile(r"vos informations|confirmer le rendez-vous", re.I)


@dataclass(frozen=True)
class Captcha:
    """What the volunteer needs: the image as the robot's browser shows it, and the
    address of its audio version (fetched only when the volunteer asks for it)."""

    image_png: bytes
    audio_url: str | None
    #: The platform said the previous answer was wrong.
    after_wrong_answer: bool = False


def classify_slot_text(text: str, slot_labels: list[str], now: datetime | None) -> ProbeResult:
    """The slot page's meaning, from its text and its slot radio labels. A page that
    both says "no slot" and offers slots is not understood: `unrecognized`."""
    if NO_SLOT in text and slot_labels:
        return ProbeResult(Outcome.UNRECOGNIZED, "no_slot_message_and_slots")
    if NO_SLOT in text:
        return ProbeResult(Outcome.NO_SLOT, "")
    if slot_labels:
        slots = parse_slots(" | ".join(slot_labels))
        if now is not None:
            slots = [s for s in slots if s >= now]
        return ProbeResult(
            Outcome.AVAILABLE,
            "" if slots else "undated_slots",
            first_slot_at=slots[0] if slots else None,
            second_slot_at=slots[1] if len(slots) > 1 else None,
            slots_count=len(slot_labels),
        )
    return ProbeResult(Outcome.UNRECOGNIZED, "slot_page")


@register
class RdvPrefectureAdapter(Adapter):
    name = "rdv_prefecture"
    #: 1.1: a page with both the no-slot phrase and slots is `unrecognized`.
    version = "1.1"
    transport = "browser"

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        """Never called by a sweep (captcha-first targets wait for a volunteer): without
        a person to answer the captcha, the only truthful outcome is `blocked`, and the
        robot does not even load the page to say so."""
        return ProbeResult(Outcome.BLOCKED, "captcha_first")

    # -- the assisted steps --------------------------------------------------------------
    async def open_captcha(self, page: Page, target: Target, timeout: float) -> Captcha:
        """From the procedure's page to its captcha. Raises ProbeStop when the platform
        answers anything else (missing procedure, WAF, error, unknown page)."""
        response = await page.goto(target.url, wait_until="domcontentloaded")
        if response is None:
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "no_response"))
        await settle(page, timeout)
        if response.status == 404 and MISSING.search(await _text(page)):
            raise ProbeStop(ProbeResult(Outcome.PROCEDURE_MISSING, "procedure_unavailable"))
        stop = status_stop(response.status, page.url)
        if stop:
            raise stop
        if not await page.query_selector(ANSWER_INPUT):
            await page_signs(page)
            if MISSING.search(await _text(page)):
                raise ProbeStop(ProbeResult(Outcome.PROCEDURE_MISSING, "procedure_unavailable"))
            start = page.get_by_role("link", name=START_BUTTON).or_(
                page.get_by_role("button", name=START_BUTTON)
            )
            if await start.count() == 0:
                raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "landing_page"))
            await start.first.click()
        return await self._captcha(page, timeout, after_wrong_answer=False)

    async def submit_answer(
        self, page: Page, answer: str, timeout: float, now: datetime
    ) -> Captcha | ProbeResult:
        """Type the volunteer's answer and go on: a new Captcha when it was wrong, else
        the slot page's result (evidence not yet attached)."""
        await page.fill(ANSWER_INPUT, answer.strip())
        before = page.url
        button = page.get_by_role("button", name="Suivant")
        if await button.count() == 0:
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "captcha_page"))
        await button.first.click()

        async def moved() -> bool:
            return page.url != before or await _wrong_answer_shown(page)

        if not await wait_for(moved, timeout):
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "no_answer_to_captcha"))
        await settle(page, timeout)
        if "error=invalidCaptcha" in page.url or await _wrong_answer_shown(page):
            return await self._captcha(page, timeout, after_wrong_answer=True)
        return await self.read_slot_page(page, timeout, now)

    async def read_slot_page(self, page: Page, timeout: float, now: datetime) -> ProbeResult:
        """Read what the slot page says, and touch nothing on it."""

        async def readable() -> bool:
            text = await _text(page)
            return NO_SLOT in text or await page.query_selector(SLOT_INPUTS) is not None

        await wait_for(readable, min(timeout, 10.0))
        await _stop_on_status(page)
        await page_signs(page)
        text = await _text(page)
        if PERSONAL_PAGE.search(text):
            # Should never happen (we never submit the slot page): say so loudly.
            return ProbeResult(Outcome.UNRECOGNIZED, "personal_data_page", final_url=page.url)
        labels = await page.eval_on_selector_all(
            SLOT_INPUTS,
            "els => els.map(e => (e.labels && e.labels[0] ? e.labels[0].innerText : '')"
            " || e.getAttribute('aria-label') || '')",
        )
        result = classify_slot_text(text, [normalize_text(label) for label in labels], now)
        return replace(result, final_url=page.url)

    async def audio(self, page: Page, url: str) -> tuple[bytes, str]:
        """The captcha's audio, fetched by the page itself (same session, same polite
        route), for a volunteer who cannot read the image."""
        payload = await page.evaluate(
            """async (url) => {
                const r = await fetch(url, {credentials: 'same-origin'});
                const bytes = new Uint8Array(await r.arrayBuffer());
                let s = '';
                for (let i = 0; i < bytes.length; i += 8192)
                    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
                return {type: r.headers.get('content-type') || 'audio/wav', data: btoa(s)};
            }""",
            url,
        )
        return base64.b64decode(payload["data"]), str(payload["type"])

    async def evidence(self, page: Page, when: datetime, note: str) -> tuple[bytes, bytes]:
        return await capture(page, when, note)

    async def _captcha(self, page: Page, timeout: float, *, after_wrong_answer: bool) -> Captcha:
        try:
            await page.wait_for_selector(ANSWER_INPUT, timeout=timeout * 1000)
        except PlaywrightError:
            await _stop_on_status(page)
            await page_signs(page)
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "no_captcha")) from None
        image = page.locator(CAPTCHA_IMAGE).first
        if await image.count():
            await wait_for(
                lambda: image.evaluate("img => img.complete && img.naturalWidth > 0"), timeout
            )
            shot = await image.screenshot(type="png")
        elif await page.locator(WIDGET).count():
            shot = await page.locator(WIDGET).first.screenshot(type="png")
        else:
            raise ProbeStop(ProbeResult(Outcome.UNRECOGNIZED, "no_captcha_image"))
        audio = page.locator(AUDIO_LINK)
        href = await audio.first.get_attribute("href") if await audio.count() else None
        return Captcha(shot, urljoin(page.url, href) if href else None, after_wrong_answer)

    def classify(self, page: bytes, url: str | None = None) -> ProbeResult:
        """A saved page: the slot page (either answer), the captcha page (`blocked`: as
        the robot alone would see it), a missing procedure, or `unrecognized`."""
        try:
            doc = parse_html(page.decode("utf-8", errors="replace"))
        except ProbeStop as stop:
            return stop.result
        for stamp in doc.xpath(STAMP):
            stamp.drop_tree()
        labels = [
            normalize_text(label.text_content())
            for radio in doc.xpath("//input[@type='radio'][starts-with(@id, 'trhId_')]")
            for label in doc.xpath("//label[@for=$id]", id=radio.get("id"))
        ]
        radios = len(doc.xpath("//input[@type='radio'][starts-with(@id, 'trhId_')]"))
        text = page_text(doc)
        sign = blocked_sign(doc, text)
        if sign:
            return ProbeResult(Outcome.BLOCKED, sign, page=page)
        if MISSING.search(text):
            return ProbeResult(Outcome.PROCEDURE_MISSING, "procedure_unavailable", page=page)
        if radios and len(labels) < radios:
            labels += [""] * (radios - len(labels))
        return replace(classify_slot_text(text, labels, None), page=page)


async def _text(page: Page) -> str:
    try:
        return normalize_text(await page.inner_text("body"))
    except PlaywrightError:
        return ""


async def _stop_on_status(page: Page) -> None:
    """The current document's HTTP status (403, 429, 5xx…) ends the observation."""
    try:
        status = await page.evaluate(
            "() => performance.getEntriesByType('navigation')[0]?.responseStatus || 0"
        )
    except PlaywrightError:
        return
    stop = status_stop(int(status or 0), page.url) if status else None
    if stop:
        raise stop


async def _wrong_answer_shown(page: Page) -> bool:
    element = await page.query_selector("#text-input-captcha-desc-error")
    return element is not None and WRONG_ANSWER in normalize_text(await element.inner_text())
