"""The shared HTTP policy layer: every request of every adapter goes through it.

Adapters only parse (as Scrapy's spiders do); this layer alone identifies the robot,
serialises requests per host, keeps the minimum delay, honours Retry-After and follows
redirects one polite hop at a time. Nothing here ever makes the robot go faster after
an error.

The gates are keyed by canonical host names (`canonical_host`): `LOCALHOST:80.`,
`127.0.0.1` and `[::1]` are one server, so they are one gate. Given a database engine,
each gate is also held in the `host_gates` table (see `leases.take_host`), so every
robot process on that database (cron runs, daemons, shards, `assist`) honours one
request in flight per host, the minimum delay and every Retry-After pause together.
Those times are wall-clock: a virtual clock (demo, soak) never shortens them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import certifi
import httpx

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger("observatoire.politeness")

MAX_REDIRECTS = 8
#: Longest Retry-After we accept to wait for inside a sweep; beyond, the probe is
#: recorded as blocked (`host_paused`) and the host stays paused.
MAX_INLINE_PAUSE_SECONDS = 120.0
MAX_PAUSE_SECONDS = 6 * 3600.0


#: The key every loopback name folds into (`localhost`, 127.x.x.x, ::1).
LOOPBACK = "localhost"
#: Ports that are "the" web server of a host, whatever the scheme: a site's http and
#: https faces are one server, so they share a gate.
DEFAULT_PORTS = frozenset({80, 443})
#: How often a process waiting for a host held by another process looks again
#: (seconds, drawn at random in this range so two waiters do not move in step).
POLL_SECONDS = (0.02, 0.1)
#: How long a process keeps a host in the database after a request, beyond the host's
#: minimum delay (see PolitePolicy._release_later), and the margin it keeps before its
#: hold would expire.
LINGER_SECONDS = 0.2
LINGER_MARGIN_SECONDS = 1.0
#: How often a process measures its clock against the database's again.
CLOCK_CHECK_SECONDS = 600.0
#: A clock this far off the database's is said in the log (the robot still keeps its
#: delays, by waiting longer).
CLOCK_WARN_SECONDS = 1.0


def _split_netloc(netloc: str) -> tuple[str, int | None]:
    """(host, port) of `user:pw@host:port`, `[v6]:port`, `v6` or `host`."""
    hostport = netloc.rpartition("@")[2].strip()
    if hostport.startswith("["):
        name, _, rest = hostport[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif hostport.count(":") == 1:
        name, _, port_text = hostport.partition(":")
    else:  # a bare IPv6 address (several colons) or a plain name
        name, port_text = hostport, ""
    port = int(port_text) if port_text.isdigit() else None
    return name, port


def _idna(name: str) -> str:
    """ASCII (punycode) form of a host name, so `préfecture.fr` and its `xn--` spelling
    are one host. An invalid name is kept as written (lower case): it will fail to
    resolve anyway, and a key must never raise."""
    if name.isascii():
        return name
    try:
        import idna

        return idna.encode(name, uts46=True).decode("ascii")
    except Exception:
        try:
            return name.encode("idna").decode("ascii")
        except UnicodeError:
            return name


def is_loopback(host: str) -> bool:
    """True for `localhost` (and `*.localhost`), 127.0.0.0/8 and ::1, with or without a
    port or brackets. Loopback hosts are the simulator: they may go faster than 1 s."""
    name, _ = _split_netloc(host)
    name = name.lower().rstrip(".")
    if name == LOOPBACK or name.endswith("." + LOOPBACK):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def canonical_host(netloc: str) -> str:
    """The gate key of a host: lower case, no trailing dot, IDNA, port 80/443 folded,
    an IPv4-mapped IPv6 address folded into its IPv4 form (`[::ffff:127.0.0.1]` and
    `[::ffff:7f00:1]` reach the server `127.0.0.1` does, so they share its gate),
    every loopback spelling folded into `localhost`; another port is kept
    (`localhost:8001`), since the simulator serves each fake site on its own port.

    Idempotent, so a key may be passed where a host is expected."""
    name, port = _split_netloc(netloc)
    name = _idna(name.lower().rstrip("."))
    try:
        mapped = ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
            name = mapped.ipv4_mapped.compressed
    if is_loopback(name):
        name = LOOPBACK
    else:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            name = f"[{address.compressed}]" if address.version == 6 else address.compressed
    if port is None or port in DEFAULT_PORTS:
        return name
    return f"{name}:{port}"


def url_host_key(url: str) -> str:
    """`canonical_host` of a URL's host."""
    return canonical_host(urlsplit(url).netloc)


def group_key(group: str) -> str:
    """Gate key of a `host_group` from the targets file (hosts known to share a server)."""
    return f"group:{group}"


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
    #: Seconds this process waited for other processes (database gate) on this host.
    waited_for_others: float = 0.0
    #: Until when (time.monotonic()) this process's hold in the database is valid; 0
    #: when it holds nothing there. The hold is kept a moment after each request
    #: (`linger`), since nobody may use the host during its minimum delay anyway: the
    #: next request of the same probe then needs no database round trip.
    db_until: float = 0.0
    linger: asyncio.TimerHandle | None = None
    releasing: asyncio.Future[Any] | None = None


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


class _Renewal:
    """Calls `renew` every `period` seconds until cancelled (a timer, not a task: most
    requests end long before the first renewal, and a timer costs next to nothing)."""

    def __init__(self, period: float, renew: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._period = period
        self._renew = renew
        self._handle = self._loop.call_later(period, self._fire)

    def _fire(self) -> None:
        self._renew()
        self._handle = self._loop.call_later(self._period, self._fire)

    def cancel(self) -> None:
        self._handle.cancel()


class PolitePolicy:
    """One per process: the gates it holds are shared by every probe and target.

    With `engine`, each gate is also taken in the database for every request, so other
    processes on that database wait their turn too; without it (unit tests, `classify`)
    the gates live in this process only."""

    def __init__(
        self,
        user_agent: str,
        min_delay: float,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        max_inline_pause: float = MAX_INLINE_PAUSE_SECONDS,
        max_pause: float = MAX_PAUSE_SECONDS,
        *,
        engine: Engine | None = None,
        lease_margin: float = 5.0,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.user_agent = user_agent
        self.min_delay = min_delay
        self.timeout = httpx.Timeout(timeout)
        self.max_inline_pause = max_inline_pause
        #: Longest pause a Retry-After can impose (compressed only by virtual-time soaks).
        self.max_pause = max_pause
        self._transport = _SharedTransport(transport or _PerHostTransport())
        self.gates: dict[str, HostGate] = {}
        #: canonical host -> group key, from the targets' `host_group`.
        self.groups: dict[str, str] = {}
        self.engine = engine
        #: Unique per policy (two policies in one process are two robots to each other).
        from observatoire.robot.leases import holder_id

        self.holder = f"{holder_id()}/{secrets.token_hex(3)}"
        #: How long a database hold lasts unless renewed: a process killed mid-request
        #: frees the host after this (a read timeout and a margin, so the request it
        #: abandoned has been given up on by any polite client by then).
        self.lease = timedelta(seconds=self.read_timeout + lease_margin)
        self._background: set[asyncio.Future[Any]] = set()
        self._executor: ThreadPoolExecutor | None = None
        #: This machine's clock (a parameter so that tests can set it wrong).
        self.wall_clock = wall_clock
        #: Seconds this clock may be off the database's (leases.clock_margin), padded
        #: into every gate time; measured at the first take, then every CLOCK_CHECK.
        self.clock_margin = 0.0
        self._margin_measured_at: float | None = None

    @property
    def read_timeout(self) -> float:
        """Seconds one answer may take: httpx's read timeout, and the browser's too."""
        return self.timeout.read or 30.0

    def join_groups(self, targets: Iterable[Any]) -> None:
        """Hosts of targets sharing a `host_group` get one gate (the group's)."""
        for target in targets:
            group = getattr(target, "host_group", None)
            if group:
                self.groups[url_host_key(target.url)] = group_key(group)

    def key(self, host: str) -> str:
        """Gate key of a host as written in a URL (or of a key: idempotent)."""
        if host.startswith("group:"):
            return host
        canonical = canonical_host(host)
        return self.groups.get(canonical, canonical)

    def gate(self, host: str) -> HostGate:
        key = self.key(host)
        gate = self.gates.get(key)
        if gate is None:
            gate = self.gates[key] = HostGate()
        return gate

    def session(self) -> HttpSession:
        return HttpSession(self)

    async def aclose(self) -> None:
        for key, gate in list(self.gates.items()):  # free every host kept after a request
            if gate.linger is not None:
                gate.linger.cancel()
                self._release_now(key, gate)
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        await self._transport.inner.aclose()

    @contextlib.asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[HostGate]:
        """Wait for the host's turn (one in flight, minimum delay, Retry-After) and hold it
        for the duration of one request. Used by httpx and by the browser's router.

        Call `note_response`/`note_failure` inside the hold: the pause they set is then
        written with the release, before any other process can take the host."""
        key = self.key(host)
        gate = self.gate(key)
        async with gate.lock:
            wait = gate.next_allowed - time.monotonic()
            if wait > self.max_inline_pause:
                raise HostPaused(key, wait)
            if wait > 0:
                await asyncio.sleep(wait)
            keeper: _Renewal | None = None
            if self.engine is not None:
                await self._hold_in_database(key, gate)
                keeper = self._keep_alive(key, gate)
            gate.in_flight += 1
            gate.max_in_flight = max(gate.max_in_flight, gate.in_flight)
            gate.requests += 1
            try:
                yield gate
            finally:
                gate.in_flight -= 1
                # The delay counts from the end of a request, errors included.
                gate.next_allowed = max(gate.next_allowed, time.monotonic() + self.min_delay)
                if keeper is not None:
                    keeper.cancel()
                if self.engine is not None:
                    self._release_later(key, gate)

    async def _hold_in_database(self, key: str, gate: HostGate) -> None:
        """Make sure this process holds the host in the database for one more request:
        reuse the hold kept since its last request, extend it when it runs short, or
        take the host (waiting for other processes) when it holds nothing."""
        from observatoire.robot.leases import extend_host

        if gate.linger is not None:
            gate.linger.cancel()
            gate.linger = None
        if gate.releasing is not None:  # a release already under way: let it finish
            with contextlib.suppress(Exception):
                await asyncio.shield(gate.releasing)
            gate.releasing = None
        remaining = gate.db_until - time.monotonic()
        if remaining <= LINGER_MARGIN_SECONDS:
            gate.db_until = 0.0
            await self._take(key, gate)
        elif remaining < self.read_timeout + LINGER_MARGIN_SECONDS:
            await self._db(extend_host, self.engine, key, self.holder, self._hold_until())
        else:
            return
        gate.db_until = time.monotonic() + self.lease.total_seconds()

    def _release_later(self, key: str, gate: HostGate) -> None:
        """Keep the database hold through the minimum delay (plus a moment), then free
        the host: during the delay nobody may send anyway, and a request of ours that
        comes in that window reuses the hold instead of two more transactions."""
        loop = asyncio.get_running_loop()
        keep = min(
            self.min_delay + LINGER_SECONDS,
            gate.db_until - time.monotonic() - LINGER_MARGIN_SECONDS,
        )
        if keep <= 0:
            self._release_now(key, gate)
        else:
            gate.linger = loop.call_later(keep, self._release_now, key, gate)

    def _release_now(self, key: str, gate: HostGate) -> None:
        gate.linger = None
        if gate.db_until == 0.0:
            return
        gate.db_until = 0.0
        future = asyncio.ensure_future(self._release(key, gate))
        gate.releasing = future
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    async def _take(self, key: str, gate: HostGate) -> None:
        """Take the host in the database, waiting for other processes' requests, their
        minimum delay and their Retry-After pauses."""

        assert self.engine is not None
        started = time.monotonic()
        while True:
            state = await self._db(self._take_now, key)
            now = self.wall_clock() - timedelta(seconds=self.clock_margin)
            if state.taken:
                gate.waited_for_others += time.monotonic() - started
                return
            wait = 0.0
            if state.next_allowed_at is not None:
                wait = (state.next_allowed_at - now).total_seconds()
            if wait > self.max_inline_pause:
                # Remember it here too: this process's other probes fail fast.
                gate.next_allowed = max(gate.next_allowed, time.monotonic() + wait)
                raise HostPaused(key, wait)
            busy = state.holder is not None and (state.held_until or now) > now
            if busy:  # another process's request: look again soon
                pause = max(wait, random.uniform(*POLL_SECONDS))
            else:  # free, but its minimum delay or a pause runs until next_allowed_at
                pause = max(wait, 0.0) + random.uniform(0.0, 0.01)
            await asyncio.sleep(pause)

    def _take_now(self, key: str) -> Any:
        """take_host with the time read when the statement runs, not when it was queued,
        moved back by the clock margin (and the hold lengthened by it on both sides)."""
        from observatoire.robot.leases import take_host

        assert self.engine is not None
        margin = timedelta(seconds=self._measured_margin())
        now = self.wall_clock() - margin
        return take_host(self.engine, key, self.holder, now, self.lease + 2 * margin)

    def _measured_margin(self) -> float:
        """The clock margin, measured again when older than CLOCK_CHECK_SECONDS (clocks
        drift); runs on the gate threads, like the statements that use it."""
        from observatoire.robot.leases import clock_margin

        assert self.engine is not None
        measured = self._margin_measured_at
        if measured is None or time.monotonic() - measured > CLOCK_CHECK_SECONDS:
            self.clock_margin = clock_margin(self.engine, self.wall_clock)
            self._margin_measured_at = time.monotonic()
            if self.clock_margin > CLOCK_WARN_SECONDS:
                log.warning(
                    "this machine's clock differs from the database's by up to %.1f s: "
                    "every request now waits that much longer; synchronise the clocks "
                    "(NTP, systemd-timesyncd)",
                    self.clock_margin,
                )
        return self.clock_margin

    def _hold_until(self) -> datetime:
        """When a hold taken or renewed now runs out, as written in the database."""
        return self.wall_clock() + self.lease + timedelta(seconds=self.clock_margin)

    def _keep_alive(self, key: str, gate: HostGate) -> _Renewal:
        """Renew the database hold while a long request is still running, so a slow but
        live request is never overtaken; a dead process stops renewing."""
        from observatoire.robot.leases import extend_host

        def renew() -> None:
            gate.db_until = time.monotonic() + self.lease.total_seconds()
            self._spawn(self._db(extend_host, self.engine, key, self.holder, self._hold_until()))

        return _Renewal(self.lease.total_seconds() / 3, renew)

    def _wall(self, monotonic_at: float) -> datetime:
        """A monotonic instant as a wall-clock time to write in a gate, moved later by
        the clock margin (see leases.clock_margin)."""
        ahead = monotonic_at - time.monotonic() + self.clock_margin
        return self.wall_clock() + timedelta(seconds=ahead)

    async def _release(self, key: str, gate: HostGate) -> None:
        from observatoire.robot.leases import release_host

        until = self._wall(gate.next_allowed)
        try:
            # Shielded: a probe cancelled mid-request still frees the host at once.
            await asyncio.shield(self._db(release_host, self.engine, key, self.holder, until))
        except Exception as exc:  # the lease expires on its own; never hide the request's error
            log.warning("could not release host %s in the database: %s", key, exc)

    def _db(self, func: Any, *args: Any) -> asyncio.Future[Any]:
        """Run a gate statement off the event loop, on this policy's own threads: one
        on SQLite (its writers queue anyway, and threads of one process racing for the
        write lock would only sleep in SQLite's busy handler), a few on PostgreSQL."""
        if self._executor is None:
            assert self.engine is not None
            workers = 1 if self.engine.dialect.name == "sqlite" else 4
            self._executor = ThreadPoolExecutor(workers, thread_name_prefix="host-gates")
        return asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    def _spawn(self, awaitable: Any) -> None:
        future = asyncio.ensure_future(awaitable)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    def _push(self, key: str, gate: HostGate) -> None:
        """A pause noted outside a hold goes to the database at once."""
        if self.engine is None or gate.in_flight:
            return  # in a hold: the release writes it
        from observatoire.robot.leases import push_host

        until = self._wall(gate.next_allowed)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            push_host(self.engine, key, until)
        else:
            self._spawn(self._db(push_host, self.engine, key, until))

    def note_response(self, host: str, status: int, retry_after: str | None) -> None:
        """A 429/503 with Retry-After pauses the whole host, for every probe and process."""
        if status not in (429, 503) or not retry_after:
            return
        pause = parse_retry_after(retry_after)
        if pause is not None:
            gate = self.gate(host)
            gate.next_allowed = max(
                gate.next_allowed, time.monotonic() + min(pause, self.max_pause)
            )
            self._push(self.key(host), gate)

    def note_failure(self, host: str) -> None:
        """After a timeout or a broken connection the site may still be working on the
        request we gave up on: wait at least as long as we waited for it before sending
        another, so errors never make the robot faster."""
        gate = self.gate(host)
        backoff = min(max(self.min_delay, self.timeout.read or 0.0), self.max_pause)
        gate.next_allowed = max(gate.next_allowed, time.monotonic() + backoff)
        self._push(self.key(host), gate)

    async def send(self, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        host = request.url.netloc.decode("ascii")
        async with self.hold(host):
            try:
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
