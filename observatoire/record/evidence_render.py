"""Render saved HTML evidence to PNG in Chromium, with JavaScript and network off.

httpx adapters keep the HTML they received; a court prefers a picture. The page is
rendered as saved (no script runs, no request leaves), with a stamp stating that it is a
rendering by the robot, the URL and the probe time in Europe/Paris.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from lxml import html as lxml_html

from observatoire.clock import PARIS
from observatoire.robot.browser import BrowserPool


def stamped_html(page: bytes, url: str, when: datetime, note: str = "") -> str:
    """The saved page with the robot's stamp as the first element of its body. `note`
    adds a line to the stamp (the dossier says there which attempts saw this very page),
    so the picture carries its own caption wherever it is copied."""
    # HtmlElement, what the parser really returns (the stubs say the plainer _Element,
    # without drop_tree), as parse_html in adapters/base.py declares it.
    doc: lxml_html.HtmlElement
    try:
        doc = lxml_html.document_fromstring(page.decode("utf-8", errors="replace"))
    except (ValueError, lxml_html.etree.ParserError):
        doc = lxml_html.document_fromstring("<html><body></body></html>")
    body = doc.find("body")
    if body is None:
        body = lxml_html.Element("body")
        doc.append(body)
    stamp = lxml_html.Element("div")
    stamp.set("data-observatoire", "stamp")
    stamp.set(
        "style",
        "background:#ffe;border:2px solid #333;font:14px monospace;"
        "padding:6px;white-space:pre-wrap;color:#000",
    )
    stamp.text = (
        f"Rendu par observatoire de la page enregistrée — {url}\n"
        f"Consultée le {when.astimezone(PARIS):%d/%m/%Y à %H:%M:%S} (heure de Paris)"
        + (f"\n{note}" if note else "")
    )
    body.insert(0, stamp)
    for script in doc.xpath("//script"):
        script.drop_tree()
    return lxml_html.tostring(doc, encoding="unicode", doctype="<!DOCTYPE html>")


async def render_png(
    pool: BrowserPool,
    page: bytes,
    url: str,
    when: datetime,
    note: str = "",
    width: int = 1280,
) -> bytes:
    """A full-page PNG of the saved page. The dossier asks for a narrower `width` than
    a desktop window: printed across an A4 page, the text then stays legible."""
    browser = await pool.browser()
    context = await browser.new_context(
        java_script_enabled=False, offline=True, viewport={"width": width, "height": 900}
    )
    try:
        await context.route("**/*", lambda route: route.abort())
        tab = await context.new_page()
        await tab.set_content(stamped_html(page, url, when, note), wait_until="domcontentloaded")
        return await tab.screenshot(full_page=True, type="png")
    finally:
        with contextlib.suppress(Exception):
            await context.close()
