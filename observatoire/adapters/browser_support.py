"""Helpers shared by the Playwright adapters: status mapping, waiting, evidence capture.

Screenshots carry a banner added by the robot (clearly labelled as such) with the URL,
the time in Europe/Paris and, when the site answered with a JavaScript alert, its text:
what practitioners ask a capture to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from playwright.async_api import Dialog, Page
from playwright.async_api import Error as PlaywrightError

from observatoire.adapters.base import (
    ProbeStop,
    blocked_sign,
    normalize_text,
    page_text,
    parse_html,
    status_result,
)
from observatoire.clock import PARIS
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.robot.politeness import HttpSession


def browser_error_detail(exc: Exception, http: HttpSession) -> str:
    """Why a page did not load: what the router saw first, else the browser's message."""
    failures = http.failures
    if "redirect_loop" in failures:
        return "redirect_loop"
    if "timeout" in failures:
        return "timeout:read"
    text = str(exc)
    if "net::ERR" in text:
        return "network:" + text.split("net::")[1].split()[0]
    if "Timeout" in text:
        return "timeout"
    return "browser"


def raise_if_failed(page: Page, http: HttpSession) -> None:
    """A navigation that ended on the browser's error page is an `error`."""
    if page.url.startswith("chrome-error:") or "redirect_loop" in http.failures:
        detail = browser_error_detail(Exception(""), http)
        raise ProbeStop(
            ProbeResult(
                Outcome.ERROR, detail if detail != "browser" else "network", final_url=page.url
            )
        )


def status_stop(status: int, url: str) -> ProbeStop | None:
    result = status_result(status, url)
    return ProbeStop(result) if result is not None else None


class DialogLog:
    """Records every JavaScript dialog and dismisses it (never accepts anything)."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog: Dialog) -> None:
        self.messages.append(dialog.message)
        asyncio.ensure_future(_dismiss(dialog))


async def _dismiss(dialog: Dialog) -> None:
    with contextlib.suppress(PlaywrightError):
        await dialog.dismiss()


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    """Poll `predicate` until true or timeout (seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await predicate():
                return True
        except PlaywrightError:
            pass  # navigating: the page is between documents
        await asyncio.sleep(0.02)
    return False


SETTLED = (
    "() => document.readyState !== 'loading' && !document.querySelector('meta[http-equiv=refresh]')"
)


async def settle(page: Page, timeout: float, http: HttpSession | None = None) -> None:
    """Wait until the current document has loaded (redirect hops included); with `http`,
    a navigation that failed on the way ends the probe as an `error`."""
    with contextlib.suppress(PlaywrightError):
        await page.wait_for_function(SETTLED, timeout=timeout * 1000, polling=20)
    if http is not None:
        raise_if_failed(page, http)


async def page_signs(page: Page) -> None:
    """Blocked pages (captcha, waiting room, WAF) end the probe wherever they appear."""
    try:
        html = await page.content()
    except PlaywrightError:
        await settle(page, 10.0)
        html = await page.content()
    doc = parse_html(html)
    sign = blocked_sign(doc, page_text(doc))
    if sign:
        raise ProbeStop(ProbeResult(Outcome.BLOCKED, sign, final_url=page.url, page=html.encode()))


async def capture(page: Page, when: datetime, note: str | None = None) -> tuple[bytes, bytes]:
    """The rendered page with the robot's stamp (a `data-observatoire="stamp"` block at the
    top), as HTML and as a full-page screenshot."""
    lines = [
        f"Capture observatoire — {page.url}",
        f"{when.astimezone(PARIS):%d/%m/%Y %H:%M:%S} (heure de Paris)",
    ]
    if note:
        lines.append(note)
    script = (
        "(lines) => { const d = document.createElement('div');"
        " d.setAttribute('data-observatoire', 'stamp');"
        " d.style.cssText = 'position:static;background:#ffe;border:2px solid #333;"
        "font:14px monospace;padding:6px;margin:0;white-space:pre-wrap;color:#000';"
        " d.textContent = lines.join('\\n');"
        " document.body.insertBefore(d, document.body.firstChild); }"
    )
    for _ in range(3):
        try:
            await settle(page, 10.0)
            await page.evaluate(script, lines)
            html = (await page.content()).encode("utf-8")
            break
        except PlaywrightError:  # navigating: wait for the next document
            await asyncio.sleep(0.1)
    else:
        html = (await page.content()).encode("utf-8")
    try:
        shot = await page.screenshot(full_page=True, type="png")
    except PlaywrightError:
        shot = b""
    return html, shot


def dialog_note(message: str) -> str:
    quoted = json.dumps(normalize_text(message), ensure_ascii=False)
    return f"Alerte JavaScript affichée par le site : {quoted}"
