"""The public site in real Chromium: every page type loads with no console error and no
request leaving localhost, the map links work, and axe-core finds no violation, on a
desktop and on a 390 px phone, where no text is drawn under 11 px and every table shows
its key column first."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from observatoire.robot.browser import BrowserPool

from .conftest import REPO, REQUIRE_ALL

AXE = REPO / "node" / "node_modules" / "axe-core" / "axe.min.js"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(demo_site: Path):
    handler = functools.partial(_Quiet, directory=str(demo_site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


#: Every text box on the page: its rendered font size in CSS pixels (SVG text scaled by
#: its viewBox), and whether it is shown at all.
FONT_SIZES = """() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim()) continue;
    const el = node.parentElement;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (style.display === 'none' || style.visibility === 'hidden' || box.width === 0) continue;
    if (box.right < 0 || box.left < -999) continue;  // off-screen (skip link, phone thead)
    let size = parseFloat(style.fontSize);
    const svg = el.closest('svg');
    if (svg) size *= svg.getScreenCTM().a;
    out.push([Math.round(size * 10) / 10, node.textContent.trim().slice(0, 40)]);
  }
  return out;
}"""
#: Per table: does its key column (first header cell of the first row) start inside the
#: viewport, and does the page scroll sideways?
KEY_COLUMN = """() => {
  const rows = [...document.querySelectorAll('table tbody tr')].filter(r => r.querySelector('th'));
  const outside = rows.slice(0, 3).map(r => r.querySelector('th').getBoundingClientRect())
    .filter(b => b.left < 0 || b.left > window.innerWidth - 40).length;
  return [outside, document.documentElement.scrollWidth <= window.innerWidth + 1];
}"""


def page_list(demo_site: Path) -> list[str]:
    department = sorted((demo_site / "departements").glob("[0-9]*.html"))[0].name
    procedure = sorted((demo_site / "procedures").glob("*.html"))[0].name
    archive = sorted((demo_site / "archives").glob("2*.html"))[0].name
    # A department with a "Mises en ligne" survival chart, so its text is measured too.
    releases = [
        p.name
        for p in sorted((demo_site / "departements").glob("[0-9]*.html"))
        if 'class="chart survie"' in p.read_text("utf-8")
    ]
    assert releases, "the demo must draw at least one survival chart"
    return [
        "index.html",
        "departements/index.html",
        f"departements/{department}",
        *(f"departements/{name}" for name in releases[:1] if name != department),
        f"procedures/{procedure}",
        f"archives/{archive}",
        "archives/index.html",
        "methodologie.html",
        "transparence.html",
        "donnees/index.html",
    ]


@pytest.mark.parametrize("width", [1280, 390])
async def test_every_page_type_in_chromium(
    served: str, demo_site: Path, browser_pool: BrowserPool, width: int
) -> None:
    if not AXE.exists():
        if REQUIRE_ALL:
            pytest.fail("CI needs axe-core (npm): run scripts/setup.sh")
        pytest.skip("axe-core not installed (scripts/setup.sh installs it with npm)")
    pages = page_list(demo_site)
    browser = await browser_pool.browser()
    context = await browser.new_context(
        java_script_enabled=True, viewport={"width": width, "height": 900}
    )
    page = await context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if urlsplit(r.url).hostname not in ("127.0.0.1", None) and not r.url.startswith("data:")
            else None
        ),
    )
    try:
        for path in pages:
            response = await page.goto(f"{served}/{path}")
            assert response is not None and response.status == 200, path
            assert await page.get_attribute("html", "lang") == "fr"
            await page.add_script_tag(path=str(AXE))
            result = await page.evaluate("async () => await axe.run()")
            violations = [
                (v["id"], v["help"], [n["target"] for n in v["nodes"]][:3])
                for v in result["violations"]
            ]
            assert violations == [], (width, path, violations)
            if width == 390:
                small = [t for t in await page.evaluate(FONT_SIZES) if t[0] < 11]
                assert small == [], (path, small[:5])
                hidden, no_sideways = await page.evaluate(KEY_COLUMN)
                assert hidden == 0 and no_sideways, path
        if width == 1280:
            # The map's links lead to department pages, and work from the keyboard.
            await page.goto(f"{served}/index.html")
            links = await page.eval_on_selector_all(
                "svg.map a", "els => els.map(e => e.getAttribute('href'))"
            )
            assert links and all(link.startswith("departements/") for link in links)
            await page.focus("svg.map a")
            await page.keyboard.press("Enter")
            await page.wait_for_url("**/departements/*.html")
            assert await page.title()
    finally:
        await context.close()
    assert errors == []
    assert outside == []


def test_site_has_feed_downloads_and_map_credit(demo_site: Path) -> None:
    index = (demo_site / "index.html").read_text("utf-8")
    assert "CC BY 4.0" in index and "svg-maps" in index
    for code in ("971", "972", "973", "974", "976"):
        assert f"{code} " in index  # overseas insets are labelled
    feed = (demo_site / "flux.xml").read_text("utf-8")
    assert feed.startswith("<?xml") and "<entry>" in feed
    assert (demo_site / "donnees" / "datapackage.json").exists()
    assert (demo_site / "donnees" / "probes.csv").exists()
    assert list((demo_site / "preuves").glob("*.png"))  # browser evidence is shown
