"""Helpers for the benchmarks: a simulator in its own process, RSS of a process tree,
and a plain-text table."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def tree_rss_mb(pid: int | None = None, exclude: frozenset[int] = frozenset()) -> float:
    """Memory of a process and all its descendants, in MB (Linux /proc).

    Uses PSS (proportional set size) where the kernel provides it: Chromium's processes
    share most of their pages, and summing their RSS would count those pages many times.
    """
    root = pid or os.getpid()
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total = 0
    stack = [root]
    while stack:
        current = stack.pop()
        if current in exclude:
            continue
        total += _pss_kb(current)
        stack.extend(children.get(current, []))
    return total / 1024


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakRss:
    """Samples the RSS of this process tree in a thread; `.peak` in MB.

    Walking /proc and reading each process's smaps costs CPU in the measured process
    itself (about 8 % of a sweep's at 10 samples a second): `.cpu_seconds` is what the
    sampler used, for the caller to leave out of the robot's CPU time."""

    def __init__(self, interval: float = 0.25, exclude: frozenset[int] = frozenset()) -> None:
        self.interval = interval
        self.exclude = exclude
        self.peak = 0.0
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.thread_time()
            self.peak = max(self.peak, tree_rss_mb(exclude=self.exclude))
            self.cpu_seconds += time.thread_time() - started
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_mb(exclude=self.exclude))


def _serve(scenario_yaml: str, conn: Connection[Any, Any]) -> None:
    import yaml

    from observatoire.simulator import start_simulator
    from observatoire.simulator.scenario import Scenario

    scenario = Scenario.model_validate(yaml.safe_load(scenario_yaml))
    sim = start_simulator(scenario, spread=True)
    conn.send({host: sim.base_url_for(host) for host in sim.placement})
    conn.recv()  # wait for "stop"
    conduct = sim.state.conduct.report()
    sim.stop()
    conn.send(conduct)


class SimulatorProcess:
    """The simulator in a separate process, so it does not share the robot's core."""

    def __init__(self, scenario_yaml: str) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(scenario_yaml, child), daemon=True)

    @property
    def pid(self) -> int:
        return self._proc.pid or -1

    def __enter__(self) -> dict[str, str]:
        self._proc.start()
        self.urls: dict[str, str] = self._conn.recv()
        return self.urls

    def stop(self) -> dict[str, Any]:
        """The simulator's conduct report (observatoire.simulator.server.Conduct.report)."""
        self._conn.send("stop")
        conduct = self._conn.recv()
        self._proc.join(timeout=10)
        return conduct

    def __exit__(self, *exc: object) -> None:
        if self._proc.is_alive():
            self._proc.kill()


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
