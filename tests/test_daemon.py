"""The daemon: cadence, graceful stop, kill -9 at random moments, shards, leases, health."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from observatoire.cli import app
from observatoire.config import load_config
from observatoire.db import Probe, make_engine
from observatoire.db.migrate import upgrade
from observatoire.outcomes import Outcome, ProbeResult
from observatoire.record.evidence import EvidenceStore
from observatoire.record.store import save_probe, sync_targets
from observatoire.robot.daemon import in_shard, parse_shard
from observatoire.robot.leases import acquire, release
from observatoire.simulator import RunningSimulator

from .conftest import DEMO_CONFIG, REPO
from .factories import add_probe, robot_env

LEGACY_ONLY = """version: 1
defaults: {interval_minutes: 60}
procedures: {titre-sejour: Titre de séjour, renouvellement: Renouvellement}
departments:
  - code: "93"
    name: Seine-Saint-Denis
    prefecture: Bobigny
    targets:
      - {id: 93-titre-sejour-9845, procedure: titre-sejour, label: VPF, platform: legacy_booking,
         url: "{simulator}/www.seine-saint-denis.gouv.fr/booking/create/9845",
         options: {planning: 9846}}
  - code: "91"
    name: Essonne
    prefecture: Évry-Courcouronnes
    targets:
      - {id: 91-renouvellement-14056, procedure: renouvellement, label: R,
         platform: legacy_booking,
         url: "{simulator}/www.essonne.gouv.fr/booking/create/14056",
         options: {planning: 15992}}
  - code: "34"
    name: Hérault
    prefecture: Montpellier
    targets:
      - {id: 34-titre-sejour-15259, procedure: titre-sejour, label: TS,
         platform: legacy_booking, url: "{simulator}/www.herault.gouv.fr/booking/create/15259",
         options: {planning: 15260}}
"""


@pytest.fixture
def daemon_env(tmp_path: Path, live_simulator: RunningSimulator) -> dict[str, str]:
    return robot_env(tmp_path, LEGACY_ONLY, SIM=live_simulator.base_url)


def start_daemon(env: dict[str, str], every: float = 1.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "observatoire.cli",
            "run",
            "--config",
            env["CFG"],
            "--simulator-url",
            env["SIM"],
            "--every",
            str(every),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def count(env: dict[str, str]) -> int:
    engine = make_engine(env["OBSERVATOIRE_DATABASE_URL"])
    with Session(engine) as s:
        n = s.scalar(select(func.count(Probe.id))) or 0
    engine.dispose()
    return n


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_daemon_keeps_cadence_and_stops_gracefully(daemon_env: dict[str, str]) -> None:
    proc = start_daemon(daemon_env)
    try:
        assert wait_for(lambda: count(daemon_env) >= 9), proc.stderr.read() if proc.poll() else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "daemon stopped" in stderr
    engine = make_engine(daemon_env["OBSERVATOIRE_DATABASE_URL"])
    with Session(engine) as s:
        rows = s.scalars(select(Probe)).all()
    per_target: dict[str, list[datetime]] = {}
    for r in rows:
        assert r.scheduled_at is not None and r.started_at >= r.scheduled_at - timedelta(seconds=1)
        per_target.setdefault(r.target_id, []).append(r.started_at)
    assert set(per_target) == {
        "93-titre-sejour-9845",
        "91-renouvellement-14056",
        "34-titre-sejour-15259",
    }
    for times in per_target.values():
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        assert all(0.5 <= g <= 5 for g in gaps), gaps  # 1 s cadence, jitter, politeness


def test_kill_9_loses_no_completed_probe(daemon_env: dict[str, str]) -> None:
    rng = random.Random(7)
    evidence = EvidenceStore(Path(daemon_env["OBSERVATOIRE_DATA_DIR"]) / "evidence")
    engine = make_engine(daemon_env["OBSERVATOIRE_DATABASE_URL"])
    before = 0
    for _ in range(20):
        proc = start_daemon(daemon_env, every=0.5)
        assert wait_for(lambda b=before: count(daemon_env) > b, 30)
        time.sleep(rng.uniform(0.0, 1.5))
        proc.kill()
        proc.wait()
        with Session(engine) as s:
            rows = s.scalars(select(Probe)).all()
            for r in rows:
                assert r.finished_at and r.outcome and r.adapter_version
                if r.page_sha256:
                    assert evidence.verify(r.page_sha256, "html"), r.page_sha256
            with engine.connect() as conn:
                rolled = conn.execute(
                    text(
                        "SELECT SUM(available + no_slot + procedure_missing + form_open + blocked "
                        "+ error + unrecognized) FROM probe_days"
                    )
                ).scalar()
            assert rolled == len(rows)  # rollups commit with their probe, or not at all
        assert len(rows) >= before  # nothing completed was lost
        before = len(rows)
    # The next start carries on (leases of killed processes are released).
    proc = start_daemon(daemon_env, every=0.5)
    assert wait_for(lambda: count(daemon_env) >= before + 3, 30)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_shards_partition_the_targets() -> None:
    config = load_config(REPO / "config" / "prefectures.yaml")
    ids = [t.id for t in config.targets]
    for n in (1, 2, 3, 5):
        owners = [[i for i in range(n) if in_shard(t, (i, n))] for t in ids]
        assert all(len(o) == 1 for o in owners)
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_leases_keep_two_runs_off_one_target(engine) -> None:
    now = datetime.now(UTC)
    assert acquire(engine, "t", "host:1", now)
    assert not acquire(engine, "t", "host:2", now)
    assert acquire(engine, "t", "host:2", now + timedelta(hours=1))  # expired
    release(engine, "t", "host:2")
    assert acquire(engine, "t", "host:1", now)


def test_status_flags_what_needs_a_human(
    cli_env: dict[str, str], simulator: RunningSimulator
) -> None:
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    config = load_config(DEMO_CONFIG, simulator_url=simulator.base_url)
    engine = make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"])
    now = datetime.now(UTC)
    sync_targets(engine, config.targets, now)
    with Session(engine) as s, s.begin():
        for i in range(8):  # the legacy adapter: all errors today, fine before
            for target in ("93-titre-sejour-9845", "91-renouvellement-14056"):
                for when, outcome in (
                    (now - timedelta(hours=i), "unrecognized"),
                    (now - timedelta(days=3, hours=i), "no_slot"),
                ):
                    add_probe(s, target, when, outcome)
    args = ["status", "--config", str(DEMO_CONFIG), "--simulator-url", simulator.base_url]
    result = CliRunner().invoke(app, [*args, "--log-json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert any("legacy_booking" in f and "site probably changed" in f for f in report["flags"])
    assert any(f.startswith("34-titre-sejour-15259: not probed") for f in report["flags"])
    assert not any(f.startswith("93-titre-sejour-9845: not probed") for f in report["flags"])


def test_two_shards_on_postgresql_probe_each_target_once_per_cadence(
    pg_url: str, live_simulator: RunningSimulator, tmp_path: Path
) -> None:
    upgrade(pg_url)
    (tmp_path / "targets.yaml").write_text(LEGACY_ONLY, encoding="utf-8")
    env = {
        **os.environ,
        "OBSERVATOIRE_DATABASE_URL": pg_url,
        "OBSERVATOIRE_DATA_DIR": str(tmp_path / "data"),
        "OBSERVATOIRE_MIN_DELAY_SECONDS": "0",
        "OBSERVATOIRE_RETRY_BASE_SECONDS": "0",
    }
    env.pop("OBSERVATOIRE_CONTACT_URL", None)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "observatoire.cli",
                "run",
                "--config",
                str(tmp_path / "targets.yaml"),
                "--simulator-url",
                live_simulator.base_url,
                "--every",
                "1",
                "--shard",
                f"{i}/2",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    engine = make_engine(pg_url)

    def enough() -> bool:
        with Session(engine) as s:
            return (s.scalar(select(func.count(Probe.id))) or 0) >= 12

    try:
        ok = wait_for(enough, 40)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=30)[1] for p in procs]
    assert ok and all(p.returncode == 0 for p in procs), [o[-3000:] for o in outputs]
    with Session(engine) as s:
        rows = s.scalars(select(Probe).order_by(Probe.started_at)).all()
    engine.dispose()
    per_target: dict[str, list[datetime]] = {}
    for r in rows:
        per_target.setdefault(r.target_id, []).append(r.started_at)
    assert len(per_target) == 3  # every target is somebody's
    for times in per_target.values():
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        assert all(g >= 0.5 for g in gaps), gaps  # never twice in one cadence


#: Two forms of one prefecture site that always have slots, each followed up every 5
#: minutes for an hour, at most 4 follow-ups an hour on the host.
FOLLOWED_SCENARIO = {
    "seed": 3,
    "profiles": {"always": {"open_probability": 1.0, "lead_days": [20, 40], "slots": [1, 2]}},
    "legacy_sites": [
        {
            "host": "www.val-doise.gouv.fr",
            "prefecture": "Préfecture du Val-d'Oise",
            "forms": [
                {
                    "id": form,
                    "title": "Titre de séjour",
                    "plannings": [{"id": form + 1, "label": "Cergy", "profile": "always"}],
                }
                for form in (11404, 11406)
            ],
        }
    ],
}
FOLLOWED = """version: 1
defaults: {interval_minutes: 60}
procedures: {titre-sejour: Titre de séjour}
departments:
  - code: "95"
    name: Val-d'Oise
    prefecture: Cergy
    targets:
""" + "".join(
    f"""      - {{id: 95-titre-sejour-{form}, procedure: titre-sejour, label: T,
         platform: legacy_booking, url: "{{simulator}}/www.val-doise.gouv.fr/booking/create/{form}",
         options: {{planning: {form + 1}}},
         followup: {{every_minutes: 5, for_minutes: 60, per_host_hour: 4}}}}
"""
    for form in (11404, 11406)
)


def test_daemon_restarted_inside_a_window_resumes_it_within_the_budget(tmp_path: Path) -> None:
    """A daemon died in the middle of two follow-up windows on one host: the first target
    saw slots 11 minutes ago (one follow-up done since), the second 21 minutes ago (two
    done). Each window's instant of a minute ago was missed during the restart; the host
    has spent 3 of its 4 follow-ups of the hour. The restarted daemon takes both windows
    up from the database and runs exactly one follow-up, at once, for that instant: the
    budget is not refilled by the restart. Before: the windows were forgotten, and
    nothing ran until a regular probe armed a new window."""
    from observatoire.simulator import start_simulator
    from observatoire.simulator.scenario import Scenario

    from .factories import probe_record

    sim = start_simulator(Scenario.model_validate(FOLLOWED_SCENARIO))
    try:
        env = robot_env(tmp_path, FOLLOWED, SIM=sim.base_url)
        config = load_config(env["CFG"], simulator_url=sim.base_url)
        first, second = config.targets
        engine = make_engine(env["OBSERVATOIRE_DATABASE_URL"])
        evidence = EvidenceStore(Path(env["OBSERVATOIRE_DATA_DIR"]) / "evidence")
        now = datetime.now(UTC)
        minutes = lambda m: now - timedelta(minutes=m)  # noqa: E731
        sync_targets(engine, config.targets, now)
        slots = ProbeResult(Outcome.AVAILABLE)
        for target, seen, done in ((first, 11, (6,)), (second, 21, (16, 11))):
            save_probe(engine, evidence, probe_record(target.id, minutes(seen), slots))
            for m in done:
                record = probe_record(
                    target.id, minutes(m), slots, scheduled_at=minutes(m), followup=True
                )
                save_probe(engine, evidence, record)

        def followups() -> list[Probe]:
            with Session(engine) as s:
                return list(s.scalars(select(Probe).where(Probe.followup.is_(True))))

        proc = start_daemon(env, every=3600)
        try:
            assert wait_for(lambda: len(followups()) >= 4, 30), proc.poll()
            time.sleep(5)  # a second follow-up, were the budget refilled, would be here
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr[-3000:]
        assert "resuming 2 follow-up window(s)" in stderr
        rows = followups()
        engine.dispose()
    finally:
        sim.stop()
    (new,) = [p for p in rows if p.started_at > now]
    assert new.target_id in {first.id, second.id} and new.outcome == "available"
    assert new.scheduled_at == minutes(1)  # the window's own instant, not the restart's
    stamps = sorted(p.started_at for p in rows)
    assert len(stamps) == 4
    assert all(sum(1 for s in stamps if a <= s < a + timedelta(hours=1)) <= 4 for a in stamps)
