"""The shared HTTP policy layer: every request of every adapter goes through it.

Adapters only parse (as Scrapy's spiders do); this layer alone identifies the robot,
serialises requests per host, keeps the minimum delay, honours Retry-After and follows
redirects one polite hop at a time. Nothing here ever makes the robot go faster after
an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import certifi
import httpx

MAX_REDIRECTS = 8
#: Longest Retry-After we accept to wait for inside a sweep; beyond, the probe is
#: recorded as blocked (`host_paused`) and the host stays paused.
MAX_INLINE_PAUSE_SECONDS = 120.0
MAX_PAUSE_SECONDS = 6 * 3600.0


_SSL_CONTEXT: ssl.SSLContext | None = None


def ssl_context() -> ssl.SSLContext:
    """One verified TLS context per process (building one costs tens of milliseconds)."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = ssl.create_default_context(cafile=certifi.where())
    return _SSL_CONTEXT


class TooManyRedirects(Exception):
    pass


class HostPaused(Exception):
    def __init__(self, host: str, seconds: float) -> None:
        super().__init__(f"{host} paused for {seconds:.0f} s (Retry-After)")
        self.host = host
        self.seconds = seconds


@dataclass
class HostGate:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_allowed: float = 0.0  # time.monotonic()
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


class _SharedTransport(httpx.AsyncBaseTransport):
    """Lets many short-lived clients (one per probe, each with its own cookies) share one
    connection pool; closing a client must not close the pool."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


class _PerHostTransport(httpx.AsyncBaseTransport):
    """One small connection pool per host. Politeness keeps one request in flight per
    host anyway, and httpcore's single pool scans every connection on every request:
    with a hundred hosts that scan dominated a sweep's CPU time."""

    def __init__(self) -> None:
        self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.raw_scheme, request.url.raw_host, request.url.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = httpx.AsyncHTTPTransport(
                verify=ssl_context(),
                retries=0,
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            )
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()


def retry_after_seconds(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class PolitePolicy:
    """One per process: the gates it holds are shared by every probe and target."""

    def __init__(
        self,
        user_agent: str,
        min_delay: float,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        max_inline_pause: float = MAX_INLINE_PAUSE_SECONDS,
        max_pause: float = MAX_PAUSE_SECONDS,
    ) -> None:
        self.user_agent = user_agent
        self.min_delay = min_delay
        self.timeout = httpx.Timeout(timeout)
        self.max_inline_pause = max_inline_pause
        #: Longest pause a Retry-After can impose (compressed only by virtual-time soaks).
        self.max_pause = max_pause
        self._transport = _SharedTransport(transport or _PerHostTransport())
        self._inner = transport
        self.gates: dict[str, HostGate] = {}

    @property
    def read_timeout(self) -> float:
        """Seconds one answer may take: httpx's read timeout, and the browser's too."""
        return self.timeout.read or 30.0

    def gate(self, host: str) -> HostGate:
        gate = self.gates.get(host)
        if gate is None:
            gate = self.gates[host] = HostGate()
        return gate

    def session(self) -> HttpSession:
        return HttpSession(self)

    async def aclose(self) -> None:
        await self._transport.inner.aclose()

    @contextlib.asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[HostGate]:
        """Wait for the host's turn (one in flight, minimum delay, Retry-After) and hold it
        for the duration of one request. Used by httpx and by the browser's router."""
        gate = self.gate(host)
        async with gate.lock:
            wait = gate.next_allowed - time.monotonic()
            if wait > self.max_inline_pause:
                raise HostPaused(host, wait)
            if wait > 0:
                await asyncio.sleep(wait)
            gate.in_flight += 1
            gate.max_in_flight = max(gate.max_in_flight, gate.in_flight)
            gate.requests += 1
            try:
                yield gate
            finally:
                gate.in_flight -= 1
                # The delay counts from the end of a request, errors included.
                gate.next_allowed = max(gate.next_allowed, time.monotonic() + self.min_delay)

    def note_response(self, host: str, status: int, retry_after: str | None) -> None:
        """A 429/503 with Retry-After pauses the whole host, for every probe."""
        if status not in (429, 503) or not retry_after:
            return
        pause = parse_retry_after(retry_after)
        if pause is not None:
            gate = self.gate(host)
            gate.next_allowed = max(
                gate.next_allowed, time.monotonic() + min(pause, self.max_pause)
            )

    def note_failure(self, host: str) -> None:
        """After a timeout or a broken connection the site may still be working on the
        request we gave up on: wait at least as long as we waited for it before sending
        another, so errors never make the robot faster."""
        gate = self.gate(host)
        backoff = min(max(self.min_delay, self.timeout.read or 0.0), self.max_pause)
        gate.next_allowed = max(gate.next_allowed, time.monotonic() + backoff)

    async def send(self, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        host = request.url.netloc.decode("ascii").lower()
        try:
            async with self.hold(host):
                response = await client.send(request)
                await response.aread()
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError):
            self.note_failure(host)
            raise
        self.note_response(host, response.status_code, response.headers.get("retry-after"))
        return response


class HttpSession:
    """A probe's view of the policy: its own cookie jar and request counter."""

    def __init__(self, policy: PolitePolicy) -> None:
        self.policy = policy
        self.client = httpx.AsyncClient(
            transport=policy._transport,
            timeout=policy.timeout,
            headers={"User-Agent": policy.user_agent, "Accept-Language": "fr-FR,fr;q=0.9"},
            follow_redirects=False,
        )
        self.requests_made = 0
        #: Why requests failed, as seen by the browser's router ("timeout", …).
        self.failures: list[str] = []

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None = None,
        referer: str | None = None,
    ) -> httpx.Response:
        """Send a request and follow redirects, each hop through the host's gate."""
        headers = {"Referer": referer} if referer else {}
        seen: set[str] = set()
        for _ in range(MAX_REDIRECTS + 1):
            request = self.client.build_request(method, url, data=data, headers=headers)
            self.requests_made += 1
            response = await self.policy.send(self.client, request)
            self.client.cookies.extract_cookies(response)
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = response.headers.get("location")
            if not location:
                return response
            next_url = urljoin(str(response.url), location)
            if next_url in seen and method == "GET":
                raise TooManyRedirects(f"redirect loop at {next_url}")
            seen.add(next_url)
            if urlsplit(next_url).scheme not in ("http", "https"):
                return response
            if response.status_code in (301, 302, 303):
                method, data = "GET", None
            headers = {"Referer": url}
            url = next_url
        raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects from {url}")

    async def get(self, url: str, *, referer: str | None = None) -> httpx.Response:
        return await self.request("GET", url, referer=referer)

    async def post(
        self, url: str, data: dict[str, str], *, referer: str | None = None
    ) -> httpx.Response:
        return await self.request("POST", url, data=data, referer=referer)

    async def aclose(self) -> None:
        await self.client.aclose()
