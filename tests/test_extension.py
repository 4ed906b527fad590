"""The browser extension, loaded unpacked in a real Chromium (new headless mode, which
runs extensions): a person browses the simulator's RDV-Préfecture flow, answers the
captcha themself (read through the simulator's test hook), and records a no-slot and an
available attempt through the extension; the server classifies and stores them, with
evidence. Without a server, the extension saves a zip bundle whose manifest hashes
match. Static checks: the host list comes from the registry, and the only code run in
the page reads it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Worker, async_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session

from observatoire.captures.contributors import add_contributor
from observatoire.captures.extension_hosts import (
    EXTENSION,
    host_permissions,
    hosts_js,
    platform_hosts,
)
from observatoire.clock import VirtualClock
from observatoire.db.models import CaptureRow, Probe
from observatoire.simulator import RunningSimulator
from tests.captures_support import capture_server, walk_to_slots
from tests.conftest import REQUIRE_ALL, T0

CHROMIUM = Path("/usr/bin/chromium")


def test_host_list_is_generated_from_the_registry() -> None:
    hosts = platform_hosts()
    assert "www.rdv-prefecture.interieur.gouv.fr" in hosts
    assert "rdv-etrangers-94.interieur.gouv.fr" in hosts
    assert (EXTENSION / "hosts.js").read_text(encoding="utf-8") == hosts_js(hosts)
    manifest = json.loads((EXTENSION / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["manifest_version"] == 3
    assert manifest["host_permissions"] == host_permissions(hosts)
    assert "<all_urls>" not in json.dumps(manifest)  # only the platforms, unless added
    assert manifest["background"]["service_worker"] == "background.js"  # Chromium
    assert "background.js" in manifest["background"]["scripts"]  # Firefox
    assert manifest["browser_specific_settings"]["gecko"]["id"]


def test_the_extension_never_acts_on_the_page() -> None:
    """Nothing fetched at run time, and the only function run in the page reads it."""
    sources = {p.name: p.read_text(encoding="utf-8") for p in EXTENSION.glob("*.js")}
    sources |= {p.name: p.read_text(encoding="utf-8") for p in EXTENSION.glob("*.html")}
    everything = "\n".join(sources.values())
    for name, text in sources.items():
        assert not re.search(r"<script[^>]+src=[\"']https?:", text), name
        assert "eval(" not in text and "new Function" not in text, name
    assert everything.count("executeScript(") == 1
    assert re.search(
        r"executeScript\(\{ target: \{ tabId: tabId \}, func: readPage \}\)", everything
    )
    read_page = re.search(r"function readPage\(\) \{(.*?)\n\}", sources["capture.js"], re.S)
    assert read_page is not None
    body = read_page.group(1)
    assert "outerHTML" in body
    for forbidden in (".click", "dispatchEvent", ".submit", ".value", "focus(", "fetch"):
        assert forbidden not in body, forbidden
    assert not re.search(r"\b(document|location)[\w.\[\]]*\s*=(?!=)", body)  # writes nothing
    # The code that talks to a server is the extension's own; no page is ever told to move.
    assert "location.href =" not in everything and "tabs.update(" not in everything


@pytest.fixture
async def extension_context(tmp_path: Path) -> AsyncIterator[tuple[BrowserContext, Worker]]:
    if not CHROMIUM.exists():
        if REQUIRE_ALL:
            pytest.fail("CI needs the Debian package `chromium` (extensions need full Chromium)")
        pytest.skip("full Chromium not installed (/usr/bin/chromium)")
    unpacked = tmp_path / "extension"
    shutil.copytree(EXTENSION, unpacked)
    # A click on the extension's button grants `activeTab` for the screenshot; Playwright
    # cannot click the browser's toolbar, so this copy holds the host access instead.
    manifest = json.loads((unpacked / "manifest.json").read_text(encoding="utf-8"))
    manifest["host_permissions"].append("<all_urls>")
    (unpacked / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            tempfile.mkdtemp(dir=tmp_path),
            executable_path=str(CHROMIUM),
            headless=True,
            locale="fr-FR",
            accept_downloads=True,
            args=[
                "--headless=new",
                f"--disable-extensions-except={unpacked}",
                f"--load-extension={unpacked}",
            ],
        )
        try:
            worker = (
                context.service_workers[0]
                if context.service_workers
                else await context.wait_for_event("serviceworker", timeout=20000)
            )
            yield context, worker
        finally:
            await context.close()


async def tab_id(worker: Worker, url: str) -> int:
    return int(
        await worker.evaluate(
            "async (url) => (await chrome.tabs.query({})).find(t => t.url === url).id", url
        )
    )


async def record(worker: Worker, tab: int) -> dict:
    return await worker.evaluate(
        """async (tab) => {
            try { return {ok: true, result: await recordAttempt(tab)}; }
            catch (e) { return {ok: false, error: String(e.message || e)}; }
        }""",
        tab,
    )


async def test_person_records_no_slot_and_available_through_the_extension(
    tmp_path: Path,
    simulator: RunningSimulator,
    clock: VirtualClock,
    extension_context: tuple[BrowserContext, Worker],
) -> None:
    context, worker = extension_context
    (site,) = simulator.state.scenario.rdv_prefecture_sites
    next(d for d in site.demarches if d.id == 4418).profile = "fluid"  # slots this week
    async with capture_server(tmp_path, simulator, clock) as server:
        who, token = add_contributor(server.engine, "demandeuse-a", "applicant", clock.now())
        sim_host = simulator.base_url.split("//", 1)[1]
        await worker.evaluate(
            "(s) => chrome.storage.local.set(s)",
            {"server": server.url, "token": token, "extraHosts": [sim_host]},
        )
        page = await context.new_page()

        # Not a booking page: the extension stays inactive and refuses to record.
        await page.goto(f"{server.url}/captures/deposer")
        tab = await tab_id(worker, page.url)
        assert await worker.evaluate("(t) => chrome.action.isEnabled(t)", tab) is False
        refused = await record(worker, tab)
        assert refused["ok"] is False and "pas une page de prise de rendez-vous" in refused["error"]

        results = {}
        for demarche, expected in ((3327, "no_slot"), (4418, "available")):
            await walk_to_slots(page, simulator, demarche)
            await page.bring_to_front()
            tab = await tab_id(worker, page.url)
            assert await worker.evaluate("(t) => chrome.action.isEnabled(t)", tab) is True
            html_before = await page.content()
            reply = await record(worker, tab)
            assert reply["ok"], reply
            assert reply["result"]["mode"] == "server"
            answer = reply["result"]["answer"]
            assert answer["outcome"] == expected, answer
            # The server runs on the simulator's virtual clock (March 2026), the browser
            # on the real one: the gap is flagged, the capture kept and classified.
            assert (answer["review"], answer["review_reason"]) == (
                "pending",
                "client_clock_differs",
            )
            results[expected] = answer
            assert await page.content() == html_before  # nothing changed on the page
            clock.advance(timedelta(minutes=20))

        with Session(server.engine) as session:
            probes = session.scalars(select(Probe).order_by(Probe.id)).all()
            captures = session.scalars(select(CaptureRow).order_by(CaptureRow.id)).all()
            assert [p.outcome for p in probes] == ["no_slot", "available"]
            assert [c.probe_id for c in captures] == [p.id for p in probes]
            for p, c in zip(probes, captures, strict=True):
                assert p.mode == "manual" and p.contributor_id == who.id
                assert p.volunteer == "demandeuse-a" and p.adapter == "rdv_prefecture"
                assert p.final_url and p.final_url.endswith("/creneau/")
                assert p.started_at == c.received_at  # the server's own stamp
                assert c.client_time is not None  # the browser's clock, kept beside
                html = server.evidence.get(p.page_sha256, "html").decode("utf-8")
                assert "Choisissez votre créneau" in html
                assert server.evidence.verify(p.page_sha256, "html")
                png = server.evidence.get(p.screenshot_sha256, "png")
                assert png.startswith(b"\x89PNG") and server.evidence.verify(
                    p.screenshot_sha256, "png"
                )
            assert probes[0].started_at == T0
            assert probes[1].first_slot_at is not None  # the first slot the page offered
        # Nobody booked: the simulator saw no slot submitted, no personal-data page.
        # (A person's browser loads a page's files in parallel: the robot's one-request-
        # at-a-time rule is not theirs, so only booking violations are checked.)
        violations = simulator.state.conduct.report()["violations"]
        assert not [v for v in violations if "RDV-Préfecture" in v], violations

        # Without a server: a local bundle, hashes in its manifest.
        await worker.evaluate("() => chrome.storage.local.set({server: ''})")
        tab = await tab_id(worker, page.url)
        reply = await record(worker, tab)
        assert reply["ok"] and reply["result"]["mode"] == "bundle", reply
        assert reply["result"]["saved"]["filename"].endswith(".zip")
        await asyncio.sleep(1.1)  # Chromium allows two screenshots a second
        b64 = await worker.evaluate(
            "async (t) => bytesToBase64(await buildBundle(await collect(t)))", tab
        )
        bundle = zipfile.ZipFile(io.BytesIO(base64.b64decode(b64)))
        assert bundle.testzip() is None
        manifest = json.loads(bundle.read("manifest.json"))
        assert {f["name"] for f in manifest["files"]} == {
            "page.html",
            "capture.png",
            "capture.json",
        }
        for entry in manifest["files"]:
            data = bundle.read(entry["name"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            assert len(data) == entry["size"]
        assert b"Choisissez votre cr" in bundle.read("page.html")
        assert json.loads(bundle.read("capture.json"))["url"] == page.url
