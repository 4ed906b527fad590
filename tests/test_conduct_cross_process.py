"""Conduct across processes (issue 15): one request in flight per host and the minimum
delay hold for every robot process sharing a database, whatever the host's spelling
and through redirects to an alias.

Two kinds of "other robot" are used: real processes running the CLI (`probe --all`
twice, `run --shard 0/2` + `1/2`, a process killed with -9), and, for the finer cases,
two `PolitePolicy` objects in this process sharing nothing but the database (each has
its own in-memory gates and holder id, so only the database can keep them apart).
Every measurement is taken on the server side: requests in flight and the gap between
the end of one request and the start of the next, across every spelling of the host.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from observatoire.cli import app
from observatoire.config import load_config
from observatoire.db import Probe, make_engine
from observatoire.db.migrate import upgrade
from observatoire.robot.daemon import in_shard
from observatoire.robot.leases import acquire, host_gate, release
from observatoire.robot.politeness import (
    PolitePolicy,
    canonical_host,
    is_loopback,
)
from observatoire.settings import Settings, SettingsError, check_conduct
from observatoire.simulator import RunningSimulator, start_simulator

from .conftest import REPO

UA = "observatoire/test (+https://example.org/contact)"
DELAY = 0.3
#: asyncio may wake a timer up to its clock resolution early, and the wall clock (the
#: database's times) and the monotonic clock (the server's) may differ by a few ms.
SLACK = 0.01


# -- recording what the server sees ------------------------------------------------------
@dataclass
class Recorder:
    """Requests in flight and gaps on one server, whatever Host header they carry."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    max_in_flight: int = 0
    last_end: float | None = None
    gaps: list[float] = field(default_factory=list)
    starts: list[tuple[float, float, str]] = field(default_factory=list)  # mono, wall, path

    def enter(self, path: str) -> None:
        with self.lock:
            now = time.monotonic()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.in_flight == 1 and self.last_end is not None:
                self.gaps.append(now - self.last_end)
            self.starts.append((now, time.time(), path))

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1
            self.last_end = time.monotonic()

    @property
    def min_gap(self) -> float:
        return min(self.gaps) if self.gaps else float("inf")


def record_simulator(sim: RunningSimulator) -> Recorder:
    """Hook a recorder onto the simulator's own conduct counters (which count per Host
    header: `127.0.0.1:P` and `localhost:P` would look like two hosts there)."""
    recorder = Recorder()
    conduct = sim.state.conduct
    enter, leave = conduct.enter, conduct.leave

    def hooked_enter(host: str, user_agent: str) -> None:
        recorder.enter(host)
        enter(host, user_agent)

    def hooked_leave(host: str) -> None:
        leave(host)
        recorder.leave()

    conduct.enter = hooked_enter
    conduct.leave = hooked_leave
    return recorder


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _CountingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        recorder = self.server.recorder
        recorder.enter(parts.path)
        try:
            time.sleep(0.03)  # long enough for an overlap to show
            headers: list[tuple[str, str]] = []
            status = 200
            if parts.path == "/to":
                status = 302
                headers.append(("Location", parse_qs(parts.query)["url"][0]))
            elif parts.path == "/retry":
                status = 429
                headers.append(("Retry-After", "1"))
            body = b"ok"
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        finally:
            recorder.leave()


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    recorder: Recorder


@pytest.fixture
def counting_servers() -> Iterator[list[tuple[int, Recorder]]]:
    """Two tiny loopback servers, (port, recorder) each."""
    servers = []
    for _ in range(2):
        server = _CountingServer(("127.0.0.1", 0), _Handler)
        server.recorder = Recorder()
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
        servers.append(server)
    yield [(s.server_address[1], s.recorder) for s in servers]
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def gate_engine(db_url: str):
    upgrade(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


async def _get_many(policy: PolitePolicy, urls: list[str]) -> None:
    session = policy.session()
    try:
        for url in urls:
            await session.get(url)
    finally:
        await session.aclose()


# -- unit: host keys, settings, shards ----------------------------------------------------
def test_canonical_host_folds_every_spelling_of_one_server() -> None:
    for spelling in (
        "localhost:8001",
        "LOCALHOST.:8001",
        "127.0.0.1:8001",
        "127.3.2.1:8001",
        "[::1]:8001",
        "user:pw@localhost:8001",
        # IPv4-mapped IPv6: the same server as 127.0.0.1, so the same gate.
        "[::ffff:127.0.0.1]:8001",
        "[::FFFF:7F00:1]:8001",
        "[0:0:0:0:0:ffff:127.0.0.1]:8001",
    ):
        assert canonical_host(spelling) == "localhost:8001", spelling
    assert canonical_host("[::ffff:7f00:1]") == "localhost"
    assert canonical_host("::ffff:127.0.0.1") == "localhost"
    assert canonical_host("[::ffff:10.0.0.1]:8443") == canonical_host("10.0.0.1:8443")
    assert canonical_host("[::ffff:a00:1]") == "10.0.0.1"
    assert canonical_host("::1") == "localhost"
    assert canonical_host("WWW.Herault.Gouv.FR.") == "www.herault.gouv.fr"
    assert canonical_host("www.herault.gouv.fr:443") == "www.herault.gouv.fr"
    assert canonical_host("www.herault.gouv.fr:80") == "www.herault.gouv.fr"
    assert canonical_host("www.herault.gouv.fr:8443") == "www.herault.gouv.fr:8443"
    assert canonical_host("préfecture.gouv.fr") == "xn--prfecture-c4a.gouv.fr"
    assert canonical_host("xn--prfecture-c4a.gouv.fr") == "xn--prfecture-c4a.gouv.fr"
    assert canonical_host("PRÉFECTURE.gouv.fr") == "xn--prfecture-c4a.gouv.fr"
    assert canonical_host("[2001:DB8:0::1]:443") == "[2001:db8::1]"
    assert canonical_host("localhost:8001") != canonical_host("localhost:8002")
    for key in ("localhost:8001", "www.herault.gouv.fr", "[2001:db8::1]", "10.0.0.1:8443"):
        assert canonical_host(key) == key  # idempotent
    assert is_loopback("127.0.0.2:9") and is_loopback("[::1]") and is_loopback("x.localhost")
    assert not is_loopback("www.herault.gouv.fr") and not is_loopback("10.0.0.1")


def test_real_hosts_need_a_real_contact_and_one_second() -> None:
    real = ["www.herault.gouv.fr"]
    ok = Settings(contact_url="https://example.org/robot", min_delay_seconds=1.0)
    check_conduct(ok, real)
    check_conduct(Settings(contact_url="mailto:robot@example.org", min_delay_seconds=5), real)
    # Loopback (the simulator) may go as fast as it likes, and needs no contact.
    check_conduct(Settings(min_delay_seconds=0.0), ["127.0.0.1:8000", "localhost"])
    for bad, why in (
        (Settings(contact_url="", min_delay_seconds=5), "CONTACT_URL"),
        (Settings(contact_url=" ", min_delay_seconds=5), "blank"),
        (Settings(contact_url="example.org", min_delay_seconds=5), "not an http"),
        (Settings(contact_url="mailto:nobody", min_delay_seconds=5), "mailto"),
        (Settings(contact_url="https://example.org/robot", min_delay_seconds=0.5), "at least 1"),
        (Settings(contact_url="https://example.org/robot", min_delay_seconds=0), "at least 1"),
    ):
        with pytest.raises(SettingsError, match=why):
            check_conduct(bad, real)
    # From the environment: a blank contact, NaN or a negative delay are refused outright.
    for env in (
        {"OBSERVATOIRE_CONTACT_URL": " "},
        {"OBSERVATOIRE_CONTACT_URL": "javascript:alert(1)"},
        {"OBSERVATOIRE_MIN_DELAY_SECONDS": "nan"},
        {"OBSERVATOIRE_MIN_DELAY_SECONDS": "-1"},
    ):
        with pytest.raises(SettingsError):
            Settings.from_env(env)
    assert Settings.from_env({"OBSERVATOIRE_CONTACT_URL": ""}).contact_url == ""


REAL_TARGET = """version: 1
procedures: {titre-sejour: Titre de séjour}
departments:
  - code: "34"
    name: Hérault
    prefecture: Montpellier
    targets:
      - {id: 34-titre-sejour-15259, procedure: titre-sejour, label: TS,
         platform: legacy_booking, url: "https://www.herault.gouv.fr/booking/create/15259",
         options: {planning: 15260}}
"""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OBSERVATOIRE_CONTACT_URL": "https://example.org/robot"}, "MIN_DELAY_SECONDS=0"),
        ({"OBSERVATOIRE_CONTACT_URL": " ", "OBSERVATOIRE_MIN_DELAY_SECONDS": "5"}, "blank"),
    ],
)
@pytest.mark.parametrize("command", ["probe", "run"])
def test_cli_refuses_a_fast_or_anonymous_robot_on_real_hosts(
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    message: str,
    command: str,
) -> None:
    config = tmp_path / "real.yaml"
    config.write_text(REAL_TARGET, encoding="utf-8")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    args = ["probe", "--all"] if command == "probe" else ["run"]
    result = CliRunner().invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


HOSTS_TWO_WAYS = """version: 1
procedures: {{titre-sejour: Titre de séjour, renouvellement: Renouvellement}}
departments:
  - code: "34"
    name: Hérault
    prefecture: Montpellier
    targets:
      - {{id: 34-titre-sejour-15259, procedure: titre-sejour, label: TS,
         platform: legacy_booking, url: "http://127.0.0.1:{port}/www.herault.gouv.fr/booking/create/15259",
         options: {{planning: 15260}}}}
  - code: "93"
    name: Seine-Saint-Denis
    prefecture: Bobigny
    targets:
      - {{id: 93-titre-sejour-9845, procedure: titre-sejour, label: VPF, platform: legacy_booking,
         url: "http://localhost:{port}/www.seine-saint-denis.gouv.fr/booking/create/9845",
         options: {{planning: 9846}}}}
  - code: "54"
    name: Meurthe-et-Moselle
    prefecture: Nancy
    targets:
      - {{id: 54-renouvellement-dn, procedure: renouvellement, label: DN,
         platform: demarches_simplifiees,
         url: "http://LOCALHOST:{port}/www.demarches-simplifiees.fr/commencer/renouvellement-apres-aes-meurthe-et-moselle"}}
      - {{id: 54-renouvellement-22259, procedure: renouvellement, label: R,
         platform: legacy_booking, {group}
         url: "http://127.0.0.1:{other}/www.meurthe-et-moselle.gouv.fr/booking/create/22259",
         options: {{planning: 22263}}}}
"""


def test_shards_split_hosts_and_host_groups(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(HOSTS_TWO_WAYS.format(port=8001, other=8002, group=""), encoding="utf-8")
    targets = load_config(path).targets
    keys = [t.gate_key for t in targets]
    assert keys == ["localhost:8001"] * 3 + ["localhost:8002"]
    for n in (2, 3, 5, 7):
        owners = {i for t in targets[:3] for i in range(n) if in_shard(t.gate_key, (i, n))}
        assert len(owners) == 1  # one host, one shard, whatever its spelling
    # A host_group joins hosts known to share a server: one gate, one shard.
    path.write_text(
        HOSTS_TWO_WAYS.format(port=8001, other=8002, group="host_group: nancy,"),
        encoding="utf-8",
    )
    grouped = load_config(path).targets[3]
    assert grouped.host_group == "nancy" and grouped.gate_key == "group:nancy"
    policy = PolitePolicy(UA, 0.0, 5.0)
    policy.join_groups([grouped])
    assert policy.key("127.0.0.1:8002") == policy.key("localhost:8002") == "group:nancy"
    assert policy.key("localhost:8001") == "localhost:8001"


# -- two robots sharing one database --------------------------------------------------------
async def test_host_written_two_ways_shares_one_gate(
    gate_engine: Any, counting_servers: list[tuple[int, Recorder]]
) -> None:
    port, recorder = counting_servers[0]
    a = PolitePolicy(UA, DELAY, 5.0, engine=gate_engine)
    b = PolitePolicy(UA, DELAY, 5.0, engine=gate_engine)
    try:
        await asyncio.gather(
            _get_many(a, [f"http://127.0.0.1:{port}/ok"] * 4),
            _get_many(b, [f"http://localhost:{port}/ok"] * 4),
        )
    finally:
        await a.aclose()
        await b.aclose()
    assert len(recorder.starts) == 8
    assert recorder.max_in_flight == 1
    assert recorder.min_gap >= DELAY - SLACK, recorder.gaps
    gate = host_gate(gate_engine, f"localhost:{port}")
    assert gate is not None and gate.holder is None  # released, one row for both spellings


async def test_redirect_to_an_alias_passes_the_alias_gate(
    gate_engine: Any, counting_servers: list[tuple[int, Recorder]]
) -> None:
    (port_a, _), (port_b, recorder_b) = counting_servers
    alias = f"http://localhost:{port_b}/ok"
    a = PolitePolicy(UA, DELAY, 5.0, engine=gate_engine)
    b = PolitePolicy(UA, DELAY, 5.0, engine=gate_engine)
    try:
        await asyncio.gather(
            # A's first hop is on server A; its second, on B under another name.
            _get_many(a, [f"http://127.0.0.1:{port_a}/to?url={alias}"] * 4),
            _get_many(b, [f"http://127.0.0.1:{port_b}/ok"] * 4),
        )
    finally:
        await a.aclose()
        await b.aclose()
    assert len(recorder_b.starts) == 8
    assert recorder_b.max_in_flight == 1
    assert recorder_b.min_gap >= DELAY - SLACK, recorder_b.gaps


async def test_retry_after_seen_by_one_process_holds_the_other(
    gate_engine: Any, counting_servers: list[tuple[int, Recorder]]
) -> None:
    port, recorder = counting_servers[0]
    a = PolitePolicy(UA, 0.0, 5.0, engine=gate_engine)
    b = PolitePolicy(UA, 0.0, 5.0, engine=gate_engine)
    try:
        await _get_many(a, [f"http://127.0.0.1:{port}/retry"])  # 429, Retry-After: 1
        await _get_many(b, [f"http://localhost:{port}/ok"])
        # The post-timeout wait is shared too: a failure noted by B pauses A.
        b.note_failure(f"localhost:{port}")
        await asyncio.sleep(0.1)  # the write goes out in the background
        gate = host_gate(gate_engine, f"localhost:{port}")
        assert gate is not None and gate.next_allowed_at is not None
        assert gate.next_allowed_at > datetime.now(UTC) + timedelta(seconds=4)
    finally:
        await a.aclose()
        await b.aclose()
    assert [p for _, _, p in recorder.starts] == ["/retry", "/ok"]
    assert recorder.gaps[0] >= 1.0 - SLACK


@pytest.mark.parametrize(
    ("skew_a", "skew_b"),
    [(-0.7, 0.0), (0.0, 0.7)],
    ids=["first-clock-behind", "second-clock-ahead"],
)
async def test_clocks_that_disagree_keep_the_pause(
    gate_engine: Any, counting_servers: list[tuple[int, Recorder]], skew_a: float, skew_b: float
) -> None:
    """Two machines on one database whose clocks differ by 0.7 s: the pause one writes
    (Retry-After: 1) still holds the other for a whole second. Without the clock margin
    the second request went out 0.3 s after the 429."""
    port, recorder = counting_servers[0]

    def clock(skew: float) -> Any:
        return lambda: datetime.now(UTC) + timedelta(seconds=skew)

    a = PolitePolicy(UA, 0.0, 5.0, engine=gate_engine, wall_clock=clock(skew_a))
    b = PolitePolicy(UA, 0.0, 5.0, engine=gate_engine, wall_clock=clock(skew_b))
    try:
        await _get_many(a, [f"http://127.0.0.1:{port}/retry"])  # 429, Retry-After: 1
        await _get_many(b, [f"http://localhost:{port}/ok"])
    finally:
        await a.aclose()
        await b.aclose()
    assert [p for _, _, p in recorder.starts] == ["/retry", "/ok"]
    assert recorder.gaps[0] >= 1.0 - SLACK, recorder.gaps
    skewed = a if skew_a else b
    assert 0.69 <= skewed.clock_margin < 0.9


DEAD_HOLDER = """
import asyncio, os, sys
from observatoire.db import make_engine
from observatoire.robot.politeness import PolitePolicy

async def main():
    policy = PolitePolicy("x", 0.0, 0.5, engine=make_engine(sys.argv[1]), lease_margin=0.5)
    async with policy.hold(sys.argv[2]):
        print("held", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_dead_holder_frees_the_host_after_its_lease(
    gate_engine: Any, db_url: str, counting_servers: list[tuple[int, Recorder]]
) -> None:
    port, recorder = counting_servers[0]
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DEAD_HOLDER), db_url, f"127.0.0.1:{port}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        held = host_gate(gate_engine, f"localhost:{port}")
        assert held is not None and held.holder and held.held_until is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        policy = PolitePolicy(UA, 0.0, 5.0, engine=gate_engine)
        t0 = time.monotonic()
        try:
            await _get_many(policy, [f"http://localhost:{port}/ok"])
        finally:
            await policy.aclose()
    finally:
        if proc.poll() is None:
            proc.kill()
    # Not before the dead holder's lease (read timeout 0.5 s + margin 0.5 s) ran out...
    assert recorder.starts[0][1] >= held.held_until.timestamp() - SLACK
    # ...and not much later: the host is not lost to a dead process.
    assert time.monotonic() - t0 < 3.0


# -- real robot processes -------------------------------------------------------------------
@pytest.fixture
def sim_and_env(db_url: str, tmp_path: Path) -> Iterator[tuple[RunningSimulator, dict[str, str]]]:
    upgrade(db_url)
    sim = start_simulator()
    port = sim.server.server_address[1]
    config = tmp_path / "targets.yaml"
    # Three targets on one server, written three ways (127.0.0.1, localhost, LOCALHOST).
    text = HOSTS_TWO_WAYS.format(port=port, other=port, group="")
    config.write_text(text.split("      - {id: 54-renouvellement-22259")[0], encoding="utf-8")
    env = {
        **os.environ,
        "OBSERVATOIRE_DATABASE_URL": db_url,
        "OBSERVATOIRE_DATA_DIR": str(tmp_path / "data"),
        "OBSERVATOIRE_MIN_DELAY_SECONDS": str(DELAY),
        "OBSERVATOIRE_RETRY_BASE_SECONDS": "0",
        "OBSERVATOIRE_CONFIG": str(config),
    }
    env.pop("OBSERVATOIRE_CONTACT_URL", None)
    yield sim, env
    sim.stop()


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "observatoire.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_probe_all_processes_keep_one_request_per_host(
    sim_and_env: tuple[RunningSimulator, dict[str, str]],
) -> None:
    sim, env = sim_and_env
    recorder = record_simulator(sim)
    procs = [_cli(env, "probe", "--all") for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    assert len(recorder.starts) >= 10  # both ran real probes
    assert recorder.max_in_flight == 1
    assert recorder.min_gap >= DELAY - SLACK, sorted(recorder.gaps)[:5]
    assert sim.state.conduct.report()["violations"] == []
    # Each target once: the run that waited for a lease sees the other's fresh probe.
    engine = make_engine(env["OBSERVATOIRE_DATABASE_URL"])
    with Session(engine) as s:
        per_target = s.execute(
            select(Probe.target_id, func.count(Probe.id)).group_by(Probe.target_id)
        ).all()
    engine.dispose()
    assert per_target and all(n == 1 for _, n in per_target), per_target


def test_two_shards_keep_one_request_per_host(
    sim_and_env: tuple[RunningSimulator, dict[str, str]],
) -> None:
    sim, env = sim_and_env
    recorder = record_simulator(sim)
    engine = make_engine(env["OBSERVATOIRE_DATABASE_URL"])
    procs = [_cli(env, "run", "--every", "1", "--shard", f"{i}/2") for i in range(2)]

    def stored() -> int:
        with Session(engine) as s:
            return s.scalar(select(func.count(Probe.id))) or 0

    try:
        deadline = time.monotonic() + 60
        while stored() < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=60) for p in procs]
    count = stored()
    engine.dispose()
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    assert count >= 3
    assert len(recorder.starts) >= 10
    assert recorder.max_in_flight == 1
    assert recorder.min_gap >= DELAY - SLACK, sorted(recorder.gaps)[:5]


def test_probe_all_reports_targets_busy_in_another_run(
    cli_env: dict[str, str], live_simulator: RunningSimulator, tmp_path: Path
) -> None:
    port = live_simulator.server.server_address[1]
    config = tmp_path / "t.yaml"
    config.write_text(HOSTS_TWO_WAYS.format(port=port, other=port, group=""), encoding="utf-8")
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"])
    from observatoire.record.store import sync_targets

    sync_targets(engine, load_config(config).targets, datetime.now(UTC))
    assert acquire(engine, "93-titre-sejour-9845", "elsewhere:1", datetime.now(UTC))
    try:
        result = CliRunner().invoke(app, ["probe", "--all", "--config", str(config)])
    finally:
        release(engine, "93-titre-sejour-9845", "elsewhere:1")
        engine.dispose()
    assert result.exit_code == 0, result.output
    assert "1 target(s) skipped as busy" in result.stdout
    assert "93-titre-sejour-9845" in result.stdout
