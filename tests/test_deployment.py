"""Deployment: the compose file, the image and the systemd/cron files describe real CLI
commands, and the compose services' commands, run natively in compose order against
PostgreSQL and the simulator, do the whole job (migrate, probe, publish, assist)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.main import get_command
from typer.testing import CliRunner

from observatoire.cli import app
from observatoire.config import load_config
from observatoire.db import Probe, make_engine
from observatoire.settings import ENV_PREFIX, Settings
from observatoire.simulator import RunningSimulator
from observatoire.sweep import split_probeable

from .conftest import DEMO_CONFIG, REPO

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")
ROBOT = [sys.executable, "-m", "observatoire.cli"]


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))


def robot_services() -> dict[str, list[str]]:
    """Services running our image, and their commands with ${VAR:-default} resolved."""
    out = {}
    for name, service in compose()["services"].items():
        if service.get("image") == "observatoire:latest":
            out[name] = [VARIABLE.sub(lambda m: m.group(2) or "", a) for a in service["command"]]
    return out


def accepted_by_cli(args: list[str]) -> bool:
    """The arguments name a real command and options it knows (parsed up to --help)."""
    result = CliRunner().invoke(app, [*args, "--help"])
    return result.exit_code == 0 and "Usage" in result.output


def test_compose_services_are_complete_and_hold_no_secret() -> None:
    data = compose()
    services = data["services"]
    assert {"db", "migrate", "robot", "publish", "assist", "web"} <= set(services)
    assert services["db"]["image"].startswith("postgres:")
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert set(data["volumes"]) >= {"pgdata", "data"}
    assert services["migrate"]["restart"] == "no"
    for name in ("robot", "publish", "assist"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert services["robot"]["build"] == "."
    assert "assist" in services["assist"]["profiles"]  # volunteers' page only on demand
    assert all(p.startswith("127.0.0.1:") for p in services["assist"]["ports"])
    # Nothing secret in the file: the password only comes from .env.
    text = COMPOSE.read_text("utf-8")
    assert "${POSTGRES_PASSWORD:?" in text
    for service in services.values():
        env = service.get("environment", {})
        for key, value in env.items():
            if re.search("PASSWORD|SECRET|TOKEN", key):
                assert str(value).startswith("${"), key
    # Every variable the file reads is documented in .env.example.
    documented = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text("utf-8"), re.M))
    used = {m.group(1) for m in VARIABLE.finditer(text)}
    assert used <= documented, used - documented


def test_every_robot_service_runs_a_real_cli_command() -> None:
    services = robot_services()
    assert set(services) == {"migrate", "robot", "publish", "assist"}
    for name, command in services.items():
        assert accepted_by_cli(command), (name, command)
    # The web server serves what `publish` writes: $DATA_DIR/site on the shared volume.
    web = compose()["services"]["web"]
    assert "data:/srv/data:ro" in web["volumes"]
    nginx = (REPO / "deploy" / "nginx.conf").read_text("utf-8")
    assert re.search(r"^\s*root /srv/data/site;", nginx, re.M)
    robot_env = compose()["services"]["robot"]["environment"]
    assert robot_env["OBSERVATOIRE_DATA_DIR"] == "/data"


def test_env_example_documents_every_operator_setting() -> None:
    documented = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text("utf-8"), re.M))
    set_by_compose = {"database_url", "data_dir", "config", "chromium_path", "simulator_url"}
    for field in Settings.__dataclass_fields__:
        if field not in set_by_compose:
            assert ENV_PREFIX + field.upper() in documented, field
    assert re.search(r"^POSTGRES_PASSWORD=$", ENV_EXAMPLE.read_text("utf-8"), re.M)


def test_image_installs_with_the_readme_script() -> None:
    docker = DOCKERFILE.read_text("utf-8")
    readme = (REPO / "README.md").read_text("utf-8")
    makefile = (REPO / "Makefile").read_text("utf-8")
    first = re.search(r"```sh\n(.+?)\n", readme)
    assert first and first.group(1).startswith("make demo")
    assert re.search(r"^demo: setup$", makefile, re.M)
    assert re.search(r"^setup:\n\t@bash scripts/setup.sh$", makefile, re.M)
    assert re.search(r"^RUN bash scripts/setup.sh", docker, re.M)
    users = re.findall(r"^USER (\S+)", docker, re.M)
    assert users and users[-1] not in ("root", "0")
    healthcheck = re.search(r'CMD \["observatoire", "status"\]', docker)
    assert healthcheck and "HEALTHCHECK" in docker
    assert re.search(r'^ENTRYPOINT \["observatoire"\]', docker, re.M)
    for line in re.findall(r"^(?:ENV|ARG) .*", docker, re.M):
        assert not re.search("PASSWORD|SECRET|TOKEN", line), line
    for source in re.findall(r"^COPY (\S+)", docker, re.M):
        assert (REPO / source).exists(), source
    ignored = (REPO / ".dockerignore").read_text("utf-8").split()
    assert ".env" in ignored and ".venv" in ignored


def test_systemd_units_and_crontab_run_real_commands() -> None:
    commands = []
    for unit in (REPO / "deploy" / "systemd").glob("*.service"):
        for line in re.findall(r"^Exec(?:Start|StartPre)=(.+)$", unit.read_text(), re.M):
            commands.append(shlex.split(line))
    for line in (REPO / "deploy" / "crontab").read_text().splitlines():
        if re.match(r"^[\d*]", line):
            assert len(line.split()) > 5  # five schedule fields, then the job
            commands += [
                shlex.split(part.split(">")[0])
                for part in re.split(r"&&|\|\||[{};]", line)
                if ".venv/bin/observatoire" in part
            ]
    assert len(commands) >= 6
    for words in commands:
        assert words[0].endswith(".venv/bin/observatoire"), words
        assert accepted_by_cli(words[1:]), words
    timer = (REPO / "deploy" / "systemd" / "observatoire-publish.timer").read_text()
    assert "OnCalendar=" in timer


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout + stderr


@pytest.mark.slow
def test_compose_commands_in_order_natively_against_postgresql(
    pg_url: str, live_simulator: RunningSimulator, tmp_path: Path
) -> None:
    services = robot_services()
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
        # What compose sets, pointed at this machine's PostgreSQL and the simulator.
        "OBSERVATOIRE_DATABASE_URL": pg_url,
        "OBSERVATOIRE_DATA_DIR": str(data),
        "OBSERVATOIRE_CONFIG": str(DEMO_CONFIG),
        "OBSERVATOIRE_SIMULATOR_URL": live_simulator.base_url,
        "OBSERVATOIRE_MIN_DELAY_SECONDS": "0",
        "OBSERVATOIRE_RETRY_BASE_SECONDS": "0",
    }
    env.pop("OBSERVATOIRE_CONTACT_URL", None)

    def popen(args: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*ROBOT, *args],
            cwd=REPO,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    # 1. migrate (one-shot).
    done = subprocess.run(
        [*ROBOT, *services["migrate"]], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr

    # 2. robot: the daemon, with the test's fast cadence added, until every target that
    # is probed automatically has been probed; SIGTERM lets it finish cleanly.
    targets = load_config(DEMO_CONFIG, simulator_url=live_simulator.base_url).targets
    automatic = {t.id for t in split_probeable(targets)[0]}
    engine = make_engine(pg_url)

    def all_probed() -> bool:
        with Session(engine) as session:
            seen = set(session.scalars(select(Probe.target_id).distinct()))
        return automatic <= seen

    robot = popen([*services["robot"], "--every", "2"])
    try:
        assert _wait(all_probed, 90)
    finally:
        code, output = _stop(robot)
    assert code == 0, output[-3000:]
    assert '"message"' in output  # --log-json: structured logs

    # The image's healthcheck command answers (0: healthy, 1: needs a human).
    health = subprocess.run(
        [*ROBOT, "status"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert health.returncode in (0, 1), health.stderr
    assert "92-remise-titre-12083" in health.stdout

    # 3. publish: statistics, open data, site; then waits for its next turn.
    publish = popen(services["publish"])
    try:
        assert _wait(lambda: (data / "site" / "index.html").exists(), 120)
        assert _wait(lambda: (data / "export" / "datapackage.json").exists(), 30)
    finally:
        code, output = _stop(publish)
    assert code == 0 and "published in" in output, output[-3000:]
    assert (data / "site").is_symlink()  # swapped atomically
    stats = pd.read_csv(data / "export" / "stats_department.csv", dtype={"department": str})
    with Session(engine) as session:
        total = session.scalar(select(func.count(Probe.id)))
    assert stats["probes"].sum() == total > 0
    assert "Données simulées" in (data / "site" / "index.html").read_text("utf-8")

    # 4. assist (profile "assist"): serves the volunteers' page behind its token. The
    # test listens on any free port instead of 8765.
    args = services["assist"]
    args[args.index("--port") + 1] = "0"
    assist = popen(args)
    try:
        line = ""
        assert assist.stdout is not None
        for line in assist.stdout:
            if "jeton=" in line:
                break
        url = line.strip().replace("0.0.0.0", "127.0.0.1")
        base = url.split("/?")[0]
        with httpx.Client(follow_redirects=True) as client:
            assert client.get(f"{base}/").status_code == 403
            assert client.get(f"{base}/assist.css").status_code == 200  # styles the refusal
            page = client.get(url)
        assert page.status_code == 200
        assert page.text.count("RDV-Préfecture") == 3
    finally:
        code, output = _stop(assist)
    assert code == 0, output[-3000:]
    engine.dispose()


def test_get_command_lists_every_documented_command() -> None:
    """The operator guide only names commands that exist."""
    group = get_command(app)
    names = set(group.commands)  # type: ignore[attr-defined]
    guide = (REPO / "docs" / "operator.md").read_text("utf-8")
    used = set(re.findall(r"(?:`|^\s*|/bin/)observatoire ([a-z][a-z-]+)", guide, re.M))
    assert {"run", "publish", "assist", "status", "probe", "classify", "prune-evidence"} <= used
    assert used <= names, used - names
