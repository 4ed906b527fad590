"""The simulator's HTTP server: a real server on loopback, one thread per connection.

It routes `/<simulated host>/…` to the platform module that serves that host, keeps a
ground-truth log of what it intended for every request, and watches the robot's
conduct (requests in flight per host, steps it must never reach).
"""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

from observatoire.clock import Clock, SystemClock
from observatoire.simulator.availability import Batch, SlotState, batches_between, slot_state
from observatoire.simulator.demarches import DemarchesModule
from observatoire.simulator.eappointment import EAppointmentModule
from observatoire.simulator.faults import (
    CHARSET_FAULTS,
    PLATFORM_FAULTS,
    FaultBoard,
    apply_charset_fault,
    fault_response,
)
from observatoire.simulator.http import Request, Response
from observatoire.simulator.legacy import LegacyModule
from observatoire.simulator.rdvpref import CAPTCHA_HOST as RDV_CAPTCHA_HOST
from observatoire.simulator.rdvpref import RdvPrefectureModule
from observatoire.simulator.scenario import Scenario, load_scenario

#: The simulation each platform's adapter is tested against, by the platform's registry
#: name (a plain string: the simulator imports nothing from the adapters). The registry
#: test requires one for every registered platform. `scripted` describes any site in
#: YAML steps; its tests drive the eAppointment simulation.
PLATFORM_SIMULATIONS: dict[str, type[Any]] = {
    "legacy_booking": LegacyModule,
    "demarches_simplifiees": DemarchesModule,
    "eappointment": EAppointmentModule,
    "rdv_prefecture": RdvPrefectureModule,
    "scripted": EAppointmentModule,
}


@dataclass
class TruthRecord:
    """What the simulator meant to show for one request."""

    at: str
    site: str
    form: int | None
    planning: int | None
    state: str  # open | no_slot | missing | retired | closed | calendar
    first_slot: str | None
    slots: int | None
    path: str
    fault: str | None = None
    offered: list[int] | None = None  # counters offered on the choice page
    #: Which rendering of that state was served (e.g. RDV-Préfecture's slot-page view).
    view: str | None = None


@dataclass
class Conduct:
    """Counters of the robot's behaviour, as seen from the server side."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    user_agents: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    #: Most requests seen on a host within one second (real time).
    max_rate: dict[str, int] = field(default_factory=dict)
    _recent: dict[str, deque[float]] = field(default_factory=dict)

    def enter(self, host: str, user_agent: str) -> None:
        with self.lock:
            now = self.in_flight.get(host, 0) + 1
            self.in_flight[host] = now
            self.requests[host] = self.requests.get(host, 0) + 1
            self.user_agents.add(user_agent)
            if now > self.max_in_flight.get(host, 0):
                self.max_in_flight[host] = now
            if now > 1:
                self.violations.append(f"{now} requests in flight on {host}")
            recent = self._recent.setdefault(host, deque())
            stamp = time.monotonic()
            recent.append(stamp)
            while recent and recent[0] < stamp - 1.0:
                recent.popleft()
            self.max_rate[host] = max(self.max_rate.get(host, 0), len(recent))

    def leave(self, host: str) -> None:
        with self.lock:
            self.in_flight[host] -= 1

    def report_in_flight(self) -> dict[str, int]:
        """Requests being served right now, per host (tests wait for zero between looks)."""
        with self.lock:
            return dict(self.in_flight)

    def report(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.requests),
                "max_in_flight": dict(self.max_in_flight),
                "max_requests_per_second": dict(self.max_rate),
                "user_agents": sorted(self.user_agents),
                "violations": list(self.violations),
            }


class SimulatorState:
    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario = scenario
        self.clock = clock
        self.anchor = scenario.anchor or clock.now()
        self.faults = FaultBoard(scenario.seed, list(scenario.faults))
        #: How long a "read_timeout" fault keeps the connection silent.
        self.hang_seconds = 5.0
        self.blackhole_url = ""
        self.conduct = Conduct()
        self._truth_lock = threading.Lock()
        self.truth: list[TruthRecord] = []
        self.legacy = LegacyModule(self)
        self.demarches = DemarchesModule(self)
        self.eappointment = EAppointmentModule(self)
        self.rdvpref = RdvPrefectureModule(self)
        # host -> (module, site)
        self.hosts: dict[str, tuple[Any, Any]] = {}
        self.hosts.update({s.host: (self.legacy, s) for s in scenario.legacy_sites})
        self.hosts.update({s.host: (self.demarches, s) for s in scenario.demarches_sites})
        self.hosts.update({s.host: (self.eappointment, s) for s in scenario.eappointment_sites})
        self.hosts.update({s.host: (self.rdvpref, s) for s in scenario.rdv_prefecture_sites})
        if scenario.rdv_prefecture_sites:
            # The State's captcha service those pages call is a host of its own.
            self.hosts[RDV_CAPTCHA_HOST] = (self.rdvpref, None)

    def slots_now(self, key: str, profile: str) -> SlotState:
        """What the slot `key` (one counter, motive or procedure) offers at this instant."""
        return slot_state(
            self.scenario.seed, key, self.clock.now(), self.scenario.profiles[profile]
        )

    def slot_keys(self) -> list[tuple[str, str]]:
        """Every counter, motive and procedure as (slot key, profile name)."""
        from observatoire.simulator.legacy import _planning_key

        keys = [
            (_planning_key(site, form, planning), planning.profile)
            for site in self.scenario.legacy_sites
            for form in site.forms
            for planning in form.plannings
        ]
        keys += [
            (f"eappointment/{site.host}/{m.key}", m.profile)
            for site in self.scenario.eappointment_sites
            for m in site.motives
        ]
        keys += [
            (f"rdvpref/{site.host}/{d.id}", d.profile)
            for site in self.scenario.rdv_prefecture_sites
            for d in site.demarches
        ]
        return keys

    def release_truth(self, start: datetime, end: datetime) -> list[Batch]:
        """Ground truth of releases: every batch published in [start, end), with when
        the competing demand took each of its slots (its true survival)."""
        out: list[Batch] = []
        for key, profile in self.slot_keys():
            out += batches_between(
                self.scenario.seed, key, self.scenario.profiles[profile], start, end
            )
        return sorted(out, key=lambda b: (b.published_at, b.key))

    def record(
        self,
        *,
        site: str,
        state: str,
        request: Request,
        form: int | None = None,
        planning: int | None = None,
        first_slot: datetime | None = None,
        slots: int | None = None,
        fault: str | None = None,
        offered: list[int] | None = None,
        view: str | None = None,
    ) -> None:
        rec = TruthRecord(
            at=self.clock.now().isoformat(),
            site=site,
            form=form,
            planning=planning,
            state=state,
            first_slot=first_slot.isoformat() if first_slot else None,
            slots=slots,
            path=request.path,
            fault=fault,
            offered=offered,
            view=view,
        )
        with self._truth_lock:
            self.truth.append(rec)

    def violation(self, what: str, request: Request) -> None:
        with self.conduct.lock:
            self.conduct.violations.append(f"{what}: {request.method} {request.path}")

    def truth_records(self) -> list[TruthRecord]:
        with self._truth_lock:
            return list(self.truth)

    def dispatch(self, request: Request) -> Response:
        if request.path.startswith("/_sim/"):
            return self._control(request)
        fault = self.faults.pick(request.path, self.anchor, self.clock.now())
        if fault is not None and fault not in PLATFORM_FAULTS | CHARSET_FAULTS:
            response = fault_response(fault, request)
            if response is not None:
                self.record(
                    site=request.path.split("/")[1], state="fault", request=request, fault=fault
                )
                if response.action == "blackhole":
                    return Response.redirect(self.blackhole_url + request.path)
                return response
        request.fault = fault
        response = self._route(request)
        if fault in CHARSET_FAULTS:
            response = apply_charset_fault(fault, response)
        elif fault == "truncated_body":
            response.action = "truncate"
        return response

    def _route(self, request: Request) -> Response:
        _, _, rest = request.path.partition("/")
        host, slash, tail = rest.partition("/")
        if host in self.hosts:
            module, site = self.hosts[host]
            return module.handle(site, slash + tail, request)
        if request.path in ("", "/"):
            links = "".join(f'<li><a href="/{h}/">{h}</a></li>' for h in self.hosts)
            return Response.html(f"<h1>observatoire — simulateur</h1><ul>{links}</ul>")
        return Response.html("<h1>Not Found</h1>", 404)

    def _control(self, request: Request) -> Response:
        """Test and demo hooks; never linked from a simulated page."""
        if request.path == "/_sim/conduct":
            payload: Any = self.conduct.report()
        elif request.path == "/_sim/truth":
            payload = [asdict(r) for r in self.truth_records()]
        elif request.path == "/_sim/releases":
            # Ground truth of the batches published in the last 60 days up to now.
            now = self.clock.now()
            payload = [b.truth() for b in self.release_truth(now - timedelta(days=60), now)]
        elif request.path == "/_sim/clock":
            payload = {"now": self.clock.now().isoformat()}
        elif request.path == "/_sim/captcha/latest":
            # The captcha shown last: what a volunteer in a test would read on the image.
            latest = self.rdvpref.latest_captcha()
            payload = {"id": latest, "answer": self.rdvpref.answer(latest) if latest else None}
        elif request.path.startswith("/_sim/captcha/"):
            payload = {"answer": self.rdvpref.answer(request.path.rsplit("/", 1)[1])}
        else:
            return Response(404, b"{}", "application/json")
        return Response(200, json.dumps(payload).encode(), "application/json")


class HandlerState(Protocol):
    """What `_Handler` needs of the state its server carries: the simulator's
    `SimulatorState`, or the hostile site's `HostileState`."""

    conduct: Conduct
    hang_seconds: float

    def dispatch(self, request: Request) -> Response: ...


StateT = TypeVar("StateT", bound=HandlerState)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small responses must not wait for delayed ACKs
    server: _Server[HandlerState]
    #: BaseHTTPRequestHandler's pending header lines (set by send_header, undeclared in
    #: the stubs): `_serve` appends the body to them to send both in one write.
    _headers_buffer: list[bytes]

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the truth log says more
        pass

    def _serve(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True) if raw else {}
        request = Request(
            method=self.command,
            path=parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query).items()},
            form=form,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        host = self.headers.get("Host", "?")
        track = not parts.path.startswith("/_sim/")
        if track:
            state.conduct.enter(host, self.headers.get("User-Agent", ""))
        in_flight = track
        try:
            response = state.dispatch(request)
            if response.action is not None:
                self._misbehave(response)
                return
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers:
                self.send_header(name, value)
            # The request ends for the conduct count as its answer goes out: once the
            # bytes are written the robot may have read them and sent its next request
            # before this thread runs again, and counting it still in flight then would
            # report an overlap the robot never made (seen at zero delay under load).
            if in_flight:
                state.conduct.leave(host)
                in_flight = False
            if self.command != "HEAD":
                # one write for headers and body
                self._headers_buffer.append(b"\r\n" + response.body)
                self.flush_headers()
            else:
                self.end_headers()
        finally:
            if in_flight:
                state.conduct.leave(host)

    def _misbehave(self, response: Response) -> None:
        self.close_connection = True
        if response.action == "hang":
            # Stay silent, but notice when the robot gives up and closes the connection:
            # an abandoned request is no longer in flight.
            deadline = time.monotonic() + self.server.state.hang_seconds
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([self.connection], [], [], min(left, 0.05))
                if ready and not self.connection.recv(1, socket.MSG_PEEK):
                    break
        elif response.action == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif response.action == "truncate":
            body = response.body or b"x" * 2000
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])

    do_GET = _serve
    do_POST = _serve
    do_HEAD = _serve


class _Server(ThreadingHTTPServer, Generic[StateT]):
    daemon_threads = True
    allow_reuse_address = True
    state: StateT
    #: What the bound AF_INET socket's getsockname() gave: the host is always a str
    #: (the base class also accepts the bytes an unbound address may be).
    server_address: tuple[str, int]


@dataclass
class RunningSimulator:
    """A simulator serving in background threads; `stop()` shuts it down.

    With `spread`, every simulated host gets its own port, as real sites are distinct
    hosts: the robot's per-host politeness then lets them be probed concurrently.
    """

    servers: list[_Server[SimulatorState]]
    threads: list[threading.Thread]
    blackhole: list[socket.socket] = field(default_factory=list)
    #: simulated host name -> index in `servers`
    placement: dict[str, int] = field(default_factory=dict)

    @property
    def server(self) -> _Server[SimulatorState]:
        return self.servers[0]

    @property
    def state(self) -> SimulatorState:
        return self.server.state

    @property
    def base_url(self) -> str:
        return self._url(self.servers[0])

    @staticmethod
    def _url(server: _Server[SimulatorState]) -> str:
        host, port = server.server_address[:2]
        return f"http://{host}:{port}"

    def base_url_for(self, site_host: str) -> str:
        """Base URL serving a simulated host (for `{simulator}/<host>/…` in configs)."""
        return self._url(self.servers[self.placement.get(site_host, 0)])

    def set_faults(self, rules: list[Any]) -> None:
        """Replace the active fault rules (FaultRule objects or dicts)."""
        from observatoire.simulator.faults import FaultRule

        self.state.faults.set([r if isinstance(r, FaultRule) else FaultRule(**r) for r in rules])

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(timeout=5)
        for sock in self.blackhole:
            sock.close()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_simulator(
    scenario: Scenario | None = None,
    clock: Clock | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    spread: bool = False,
) -> RunningSimulator:
    """Start a simulator on loopback (port 0 = a free port) in daemon threads."""
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        raise ValueError("the simulator only listens on loopback")
    state = SimulatorState(scenario or load_scenario(), clock or SystemClock())
    blackhole = _blackhole(host)
    state.blackhole_url = "http://{}:{}".format(*blackhole[0].getsockname()[:2])
    site_hosts = list(state.hosts)
    count = max(1, len(site_hosts)) if spread else 1
    servers: list[_Server[SimulatorState]] = []
    threads: list[threading.Thread] = []
    for index in range(count):
        server: _Server[SimulatorState] = _Server((host, port if index == 0 else 0), _Handler)
        server.state = state
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"simulator-{index}",
            daemon=True,
        )
        thread.start()
        servers.append(server)
        threads.append(thread)
    placement = {h: (i if spread else 0) for i, h in enumerate(site_hosts)}
    return RunningSimulator(servers, threads, blackhole, placement)


def _blackhole(host: str) -> list[socket.socket]:
    """A listener whose accept queue is full and never drained: connecting to it times
    out, as with a server that drops SYNs."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    return [listener, *fillers]
