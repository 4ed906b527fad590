"""Cron mode and the other commands, end to end through the CLI on the simulator."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from observatoire.config import load_config
from observatoire.db import Probe, make_engine
from observatoire.robot.sweep import split_probeable
from observatoire.simulator import RunningSimulator

from .conftest import DEMO_CONFIG, REPO
from .factories import VALID_TARGETS, invoke


def test_probe_all_then_stats_export_site(
    cli_env: dict[str, str], live_simulator: RunningSimulator, tmp_path: Path
) -> None:
    simulator = live_simulator
    targets = load_config(DEMO_CONFIG, simulator_url=simulator.base_url).targets
    expected = len(split_probeable(targets)[0])
    assert expected < len(targets)  # captcha-first targets wait for a volunteer
    assert invoke("db", "upgrade").exit_code == 0
    result = invoke(
        "probe", "--all", "--config", str(DEMO_CONFIG), "--simulator-url", simulator.base_url
    )
    assert result.exit_code == 0, result.output
    assert f"{expected} probes" in result.stdout
    assert "unrecognized" not in result.stdout
    engine = make_engine(cli_env["OBSERVATOIRE_DATABASE_URL"])
    with Session(engine) as session:
        assert session.scalar(select(func.count(Probe.id))) == expected
    assert simulator.state.conduct.report()["violations"] == []

    result = invoke(
        "probe",
        "92-remise-titre-12083",
        "--config",
        str(DEMO_CONFIG),
        "--simulator-url",
        simulator.base_url,
    )
    assert result.exit_code == 0 and "1 probes" in result.stdout

    result = invoke("stats")
    assert result.exit_code == 0 and "92" in result.stdout
    result = invoke("export", "--out", str(tmp_path / "csv"))
    assert result.exit_code == 0
    assert (tmp_path / "csv" / "stats_department.csv").exists()
    result = invoke("site", "build", "--out", str(tmp_path / "site"))
    assert result.exit_code == 0, result.output
    html = (tmp_path / "site" / "index.html").read_text("utf-8")
    assert "Données simulées" in html  # loopback targets are detected as simulated


def test_probe_refuses_real_hosts_without_contact(cli_env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "real.yaml"
    config.write_text(VALID_TARGETS, encoding="utf-8")
    assert invoke("db", "upgrade").exit_code == 0
    result = invoke("probe", "--all", "--config", str(config))
    assert result.exit_code == 2
    assert "OBSERVATOIRE_CONTACT_URL" in result.stderr
    assert "www.hauts-de-seine.gouv.fr" in result.stderr


def test_probe_needs_targets_and_known_ids(cli_env: dict[str, str]) -> None:
    assert invoke("probe").exit_code == 2
    result = invoke(
        "probe", "nope", "--config", str(DEMO_CONFIG), "--simulator-url", "http://127.0.0.1:9"
    )
    assert result.exit_code == 2 and "unknown target" in result.stderr


def test_probe_on_unmigrated_database_exits_2(cli_env: dict[str, str]) -> None:
    result = invoke(
        "probe", "--all", "--config", str(DEMO_CONFIG), "--simulator-url", "http://127.0.0.1:9"
    )
    assert result.exit_code == 2 and "db upgrade" in result.stderr


def test_captcha_first_and_disabled_targets_are_skipped(cli_env: dict[str, str]) -> None:
    assert invoke("db", "upgrade").exit_code == 0
    result = invoke(
        "probe",
        "03-renouvellement-4418",
        "12-renouvellement-717",
        "--config",
        str(REPO / "config" / "prefectures.yaml"),
    )
    assert result.exit_code == 0, result.output
    assert "captcha first" in result.stderr and "disabled" in result.stderr
    assert "0 probes" in result.stdout


def test_help_teaches() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("demo", "probe", "targets", "db", "site", "export", "classify", "simulate"):
        assert command in result.stdout
    assert "OBSERVATOIRE_CONTACT_URL" in invoke("probe", "--help").stdout
