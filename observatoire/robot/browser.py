"""One shared headless Chromium per process, a fresh context per probe, and every
request the page makes routed through the same polite gates as httpx.

Playwright's own browser download does not exist here: we launch Debian's build,
preferably `chromium-headless-shell` (the "old headless" shell Playwright itself uses for
headless runs), else the full `chromium`, or $OBSERVATOIRE_CHROMIUM_PATH. On 2 cores the
shell makes a probe cost well under half the CPU and about 250 MB less memory than the
full browser in headless mode (benchmarks/sweep.py). If the browser dies it is
relaunched on the next probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict
from urllib.parse import urljoin, urlsplit

from playwright.async_api import Browser, Page, Playwright, Route, async_playwright

from observatoire.robot.asset_cache import AssetCache
from observatoire.robot.politeness import HostPaused, HttpSession

CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
BLOCKED_TYPES = frozenset({"image", "font", "media"})


class BrowserUnavailable(RuntimeError):
    pass


def chromium_path() -> str | None:
    configured = os.environ.get("OBSERVATOIRE_CHROMIUM_PATH")
    if configured:
        return configured
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class BrowserPool:
    """Owns Playwright and the shared browser; safe to use from one event loop."""

    user_agent: str
    #: Pages open at once. Each context gets its own renderer process. With the headless
    #: shell on 2 cores: one page 1.9 probes/s and 470 MB (whole tree), two 2.7–3.1
    #: probes/s and about 505 MB, three 3.0 probes/s and 520 MB.
    max_pages: int = 2
    #: Scripts, stylesheets and fonts shared by every page (see asset_cache).
    assets: AssetCache = field(default_factory=AssetCache)
    _playwright: Playwright | None = None
    _browser: Browser | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _slots: asyncio.Semaphore | None = None
    launches: int = 0

    async def browser(self) -> Browser:
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            path = chromium_path()
            if path is None:
                raise BrowserUnavailable("no Chromium found: install Debian's `chromium`")
            if self._playwright is None:
                self._playwright = await async_playwright().start()
            self._browser = await self._playwright.chromium.launch(
                executable_path=path, headless=True, args=CHROMIUM_ARGS
            )
            self.launches += 1
            return self._browser

    async def close(self) -> None:
        if self._browser is not None:
            with contextlib.suppress(Exception):
                await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await self._playwright.stop()
            self._playwright = None

    @contextlib.asynccontextmanager
    async def page(
        self,
        http: HttpSession,
        *,
        block_assets: bool = True,
        viewport: tuple[int, int] = (1280, 900),
    ) -> AsyncIterator[Page]:
        """A fresh context (no cookies from any other probe) and page, its requests going
        one at a time per host through the policy's gates and counted on `http`."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_pages)
        async with self._slots, self._open(http, block_assets, viewport) as page:
            yield page

    @contextlib.asynccontextmanager
    async def _open(
        self, http: HttpSession, block_assets: bool, viewport: tuple[int, int]
    ) -> AsyncIterator[Page]:
        browser = await self.browser()
        context = await browser.new_context(
            user_agent=self.user_agent,
            locale="fr-FR",
            timezone_id="Europe/Paris",
            viewport={"width": viewport[0], "height": viewport[1]},
            service_workers="block",
        )
        paused: list[HostPaused] = []
        await context.route("**/*", _router(http, block_assets, paused, http.failures, self.assets))
        try:
            page = await context.new_page()
            page.set_default_timeout(http.policy.read_timeout * 1000)
            yield page
            if paused:
                raise paused[0]
        finally:
            with contextlib.suppress(Exception):
                await context.close()


MAX_HOPS = 8


def _router(
    http: HttpSession,
    block_assets: bool,
    paused: list[HostPaused],
    failures: list[str],
    assets: AssetCache,
) -> Callable[[Route], Awaitable[None]]:
    """`failures` collects why requests failed (timeout, reset, redirect loop), so an
    adapter can say more than "the page did not load". Static assets already fetched
    by this process are served from `assets` without any request."""
    hops = [0]

    async def handle(route: Route) -> None:
        request = route.request
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https"):
            await route.continue_()
            return
        if block_assets and request.resource_type in BLOCKED_TYPES:
            await route.abort("blockedbyclient")
            return
        cached = assets.get(request.method, request.resource_type, request.url)
        if cached is not None:
            await route.fulfill(status=cached.status, headers=cached.headers, body=cached.body)
            return
        document = request.resource_type == "document"
        try:
            response, body, url = await _fetch(route, http, document)
        except HostPaused as exc:
            paused.append(exc)
            await route.abort("blockedbyclient")
            return
        except Exception as exc:
            # Timeouts, resets: let the page see a network failure.
            text = str(exc).lower()
            failures.append("timeout" if "timeout" in text else "network")
            with contextlib.suppress(Exception):
                await route.abort("timedout" if "timeout" in text else "failed")
            return
        location = response.headers.get("location")
        if document and 300 <= response.status < 400 and location:
            hops[0] += 1
            if hops[0] > MAX_HOPS:
                failures.append("redirect_loop")
                await route.abort("failed")
                return
            await route.fulfill(**_hop_page(request.url, location, response.headers))
            return
        if document:
            hops[0] = 0
        elif url == request.url:
            assets.put(
                request.method,
                request.resource_type,
                request.url,
                response.status,
                response.headers,
                body,
            )
        await route.fulfill(status=response.status, headers=response.headers, body=body)

    return handle


#: Redirects a script or XHR may follow (each hop through its own host's gate).
MAX_SUBRESOURCE_HOPS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})


async def _fetch(route: Route, http: HttpSession, document: bool) -> tuple[Any, bytes, str]:
    """Fetch a routed request, every hop inside the gate of its own host: Playwright's
    own redirect following would send the next hop (perhaps to an alias host) while the
    first host's turn is held, jumping the alias's gate. Documents stop at the first
    redirect (the page then navigates, see `_hop_page`); other requests follow up to
    MAX_SUBRESOURCE_HOPS here. Returns (response, body, final URL)."""
    policy = http.policy
    url = route.request.url
    method: str | None = None
    for hop in range(MAX_SUBRESOURCE_HOPS + 1):
        host = urlsplit(url).netloc
        async with policy.hold(host):
            http.requests_made += 1
            try:
                response = await route.fetch(
                    url=None if hop == 0 else url,
                    method=method,
                    max_redirects=0,
                    timeout=policy.read_timeout * 1000,
                )
                body = await response.body()
            except Exception:
                policy.note_failure(host)
                raise
            policy.note_response(host, response.status, response.headers.get("retry-after"))
        location = response.headers.get("location")
        if document or response.status not in REDIRECTS or not location:
            return response, body, url
        next_url = urljoin(url, location)
        if urlsplit(next_url).scheme not in ("http", "https"):
            return response, body, url
        if response.status in (301, 302, 303):
            method = "GET"
        url = next_url
    raise RuntimeError(f"network: more than {MAX_SUBRESOURCE_HOPS} redirects")


class _Fulfilment(TypedDict):
    """The keyword arguments of `Route.fulfill` that `_hop_page` gives."""

    status: int
    headers: dict[str, str]
    body: str


def _hop_page(url: str, location: str, headers: dict[str, str]) -> _Fulfilment:
    """Playwright does not route the request that follows a redirect, so that hop would
    escape the host's gate. Instead the redirect becomes a tiny page that navigates to
    the target: a fresh navigation, routed (and counted) like any other."""
    target = urljoin(url, location)
    kept = {k: v for k, v in headers.items() if k.lower() == "set-cookie"}
    kept["content-type"] = "text/html; charset=utf-8"
    quoted = html.escape(target, quote=True)
    body = (
        f'<!DOCTYPE html><html><head><meta http-equiv="refresh" content="0;url={quoted}">'
        f"<script>location.replace({json.dumps(target)})</script></head><body></body></html>"
    )
    return {"status": 200, "headers": kept, "body": body}
