"""Deployment: the compose file, the image and the systemd/cron files describe real CLI
commands, and the compose services' commands, run natively in compose order against
PostgreSQL and the simulator, do the whole job (migrate, probe, publish, assist)."""

from __future__ import annotations

import json
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
from observatoire.robot.sweep import split_probeable
from observatoire.settings import ENV_PREFIX, Settings
from observatoire.simulator import RunningSimulator

from .conftest import DEMO_CONFIG, REPO

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")
ROBOT = [sys.executable, "-m", "observatoire.cli"]


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))


def robot_services(entrypoint: bool = False) -> dict[str, list[str]]:
    """Services running our image's `observatoire` entrypoint (or, with `entrypoint`,
    another program of the image), and their commands with ${VAR:-default} resolved."""
    out = {}
    for name, service in compose()["services"].items():
        if service.get("image") == "observatoire:latest" and entrypoint == (
            "entrypoint" in service
        ):
            words = [*service.get("entrypoint", []), *service["command"]]
            out[name] = [VARIABLE.sub(lambda m: m.group(2) or "", a) for a in words]
    return out


def accepted_by_cli(args: list[str]) -> bool:
    """The arguments name a real command and options it knows (parsed up to --help)."""
    result = CliRunner().invoke(app, [*args, "--help"])
    return result.exit_code == 0 and "Usage" in result.output


def test_compose_services_are_complete_and_hold_no_secret() -> None:
    data = compose()
    services = data["services"]
    assert {"db", "migrate", "robot", "publish", "assist", "watch", "web"} <= set(services)
    assert services["db"]["image"].startswith("postgres:")
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert set(data["volumes"]) >= {"pgdata", "data"}
    assert services["migrate"]["restart"] == "no"
    for name in ("robot", "publish", "assist", "watch"):
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
    # The compose `watch` service runs the image's copy of the alert script.
    assert re.search(r"^COPY deploy/alert.py ./deploy/alert.py$", docker, re.M)
    assert robot_services(entrypoint=True)["watch"][:2] == ["python3", "/app/deploy/alert.py"]
    for line in re.findall(r"^(?:ENV|ARG) .*", docker, re.M):
        assert not re.search("PASSWORD|SECRET|TOKEN", line), line
    for source in re.findall(r"^COPY (\S+)", docker, re.M):
        assert (REPO / source).exists(), source
    ignored = (REPO / ".dockerignore").read_text("utf-8").split()
    assert ".env" in ignored and ".venv" in ignored


ALERT_HELP = subprocess.run(
    [sys.executable, str(REPO / "deploy" / "alert.py"), "--help"],
    capture_output=True,
    text=True,
    check=True,
).stdout


def test_systemd_units_and_crontab_run_real_commands() -> None:
    commands = []
    for unit in (REPO / "deploy" / "systemd").glob("*.service"):
        text = unit.read_text()
        for line in re.findall(r"^Exec(?:Start|StartPre|StartPost)=(.+)$", text, re.M):
            commands.append(shlex.split(line))
        # Every unit that can fail says so to someone (the alert unit itself excepted).
        if "@" not in unit.name:
            assert "OnFailure=observatoire-alert@%n.service" in text, unit.name
    for line in (REPO / "deploy" / "crontab").read_text().splitlines():
        if re.match(r"^[\d*]", line):
            assert len(line.split()) > 5  # five schedule fields, then the job
            commands += [
                shlex.split(part.split(">")[0])
                for part in re.split(r"&&|\|\||[{};]", line)
                if "observatoire probe" in part or "bin/observatoire" in part or "alert.py" in part
            ]
    assert len(commands) >= 9
    alerts = 0
    for words in commands:
        if words[0] == "/usr/bin/python3":
            assert words[1].endswith("deploy/alert.py"), words
            assert all(w in ALERT_HELP for w in words[2:] if w.startswith("--")), words
            alerts += 1
            continue
        assert words[0].endswith(".venv/bin/observatoire"), words
        assert accepted_by_cli(words[1:]), words
    assert alerts == 3  # OnFailure= unit, the healthy heartbeat, the crontab line
    for name in ("publish", "prune", "status"):
        timer = (REPO / "deploy" / "systemd" / f"observatoire-{name}.timer").read_text()
        assert "OnCalendar=" in timer
    assert not re.search(
        r"^MAILTO=\S*@|^MAILTO=root", (REPO / "deploy" / "crontab").read_text(), re.M
    )


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
        # Generous: on 2 loaded cores a first round of every target can take a minute.
        probed = _wait(all_probed, 240)
    finally:
        code, output = _stop(robot)
    assert probed, output[-3000:]
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
    names = set(group.commands)
    guide = (REPO / "docs" / "operator.md").read_text("utf-8")
    used = set(re.findall(r"(?:`|^\s*|/bin/)observatoire ([a-z][a-z-]+)", guide, re.M))
    assert {"run", "publish", "assist", "status", "probe", "classify", "prune-evidence"} <= used
    assert used <= names, used - names


# -- alerts: a retired target makes `status` fail and the documented command fire -------
class _PushMonitor:
    """A tiny HTTP server standing in for an Uptime Kuma push URL: it records the query
    of every GET it receives."""

    def __init__(self) -> None:
        import http.server
        import threading
        from urllib.parse import parse_qs, urlsplit

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                parts = urlsplit(self.path)
                received.append((parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok":true}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/push/t0ken"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _unit_command(name: str, key: str, instance: str = "") -> list[str]:
    """A unit's Exec line as systemd would run it here: the checkout instead of
    /opt/observatoire, the instance for %i."""
    text = (REPO / "deploy" / "systemd" / name).read_text()
    line = re.search(rf"^{key}=(.+)$", text, re.M)
    assert line, (name, key)
    line_text = line.group(1).replace("/opt/observatoire", str(REPO)).replace("%i", instance)
    return shlex.split(line_text)


def test_retired_target_fails_status_and_fires_the_documented_alert(
    live_simulator: RunningSimulator, tmp_path: Path
) -> None:
    lines = DEMO_CONFIG.read_text("utf-8").splitlines()
    config = tmp_path / "targets.yaml"
    config.write_text("\n".join(lines) + "\n", "utf-8")
    monitor = _PushMonitor()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OBSERVATOIRE_")},
        "OBSERVATOIRE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "OBSERVATOIRE_DATA_DIR": str(tmp_path / "data"),
        "OBSERVATOIRE_CONFIG": str(config),
        "OBSERVATOIRE_SIMULATOR_URL": live_simulator.base_url,
        "OBSERVATOIRE_MIN_DELAY_SECONDS": "0",
        "OBSERVATOIRE_RETRY_BASE_SECONDS": "0",
        "OBSERVATOIRE_ALERT_URL": monitor.url,
    }

    def run(words: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(words, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    def robot(*args: str) -> Any:  # in-process: only the documented commands run as such
        return CliRunner(env=env).invoke(app, list(args))

    try:
        assert robot("db", "upgrade").exit_code == 0
        # One legacy target probed by the robot, healthy; its retired neighbour too.
        keep = ("92-remise-titre-12083", "42-admission-exceptionnelle-804")
        cfg = load_config(config, simulator_url=live_simulator.base_url)
        for t in cfg.targets:
            if t.id not in keep:
                text = config.read_text("utf-8")
                config.write_text(
                    text.replace(
                        f"      - id: {t.id}\n", f"      - id: {t.id}\n        enabled: false\n"
                    ),
                    "utf-8",
                )
        probed = robot("probe", "--all")
        assert probed.exit_code == 0 and "2 probes" in probed.stdout, probed.output

        # The status unit's command: exit 1, the retired link as a finding (JSON v1).
        status = run(_unit_command("observatoire-status.service", "ExecStart"))
        assert status.returncode == 1
        assert "42-admission-exceptionnelle-804: last probe: link retired" in status.stderr
        report = json.loads(robot("status", "--json").stdout)
        assert report["schema_version"] == 1 and report["ok"] is False
        assert [(f["kind"], f["target"]) for f in report["findings"]] == [
            ("retired", "42-admission-exceptionnelle-804")
        ]

        # systemd then starts OnFailure=observatoire-alert@observatoire-status.service.service
        unit = (REPO / "deploy" / "systemd" / "observatoire-status.service").read_text()
        assert re.search(r"^OnFailure=observatoire-alert@%n\.service$", unit, re.M)
        alert = run(
            _unit_command("observatoire-alert@.service", "ExecStart", "observatoire-status.service")
        )
        assert alert.returncode == 0, alert.stderr
        path, query = monitor.received[-1]
        assert path == "/api/push/t0ken" and query["status"] == "down"
        assert "observatoire-status.service failed" in query["msg"]
        assert "retired: 42-admission-exceptionnelle-804" in query["msg"]

        # The cron line, as written, sends the same alert.
        cron = next(
            line
            for line in (REPO / "deploy" / "crontab").read_text().splitlines()
            if "alert.py" in line and not line.startswith("#")
        )
        job = " ".join(cron.split()[5:]).replace("/opt/observatoire", str(REPO))
        job = job.replace(". /etc/observatoire/env.sh", "true").split(">>")[0]
        sent = len(monitor.received)
        assert run(["sh", "-c", job]).returncode == 0
        assert len(monitor.received) == sent + 1
        assert monitor.received[-1][1]["status"] == "down"

        # The target disabled (what the operator does): healthy, and the heartbeat goes.
        text = config.read_text("utf-8")
        config.write_text(
            text.replace(
                "      - id: 42-admission-exceptionnelle-804\n",
                "      - id: 42-admission-exceptionnelle-804\n        enabled: false\n",
            ),
            "utf-8",
        )
        assert run(_unit_command("observatoire-status.service", "ExecStart")).returncode == 0
        up = run(_unit_command("observatoire-status.service", "ExecStartPost"))
        assert up.returncode == 0, up.stderr
        assert monitor.received[-1][1]["status"] == "up"

        # No destination configured: the alert is not lost silently.
        del env["OBSERVATOIRE_ALERT_URL"]
        lost = run([sys.executable, str(REPO / "deploy" / "alert.py"), "test alert"])
        assert lost.returncode == 1 and "test alert" in lost.stderr
    finally:
        monitor.close()


# -- setup.sh: all or nothing -----------------------------------------------------------
def _fake_system(tmp_path: Path, candidates: dict[str, str]) -> tuple[dict[str, str], Path]:
    """A PATH with the few real tools setup.sh uses, no Chromium, and fake apt-get /
    apt-cache that log their calls and answer `candidates` (else "(none)")."""
    import shutil as sh

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in (
        "bash",
        "sh",
        "awk",
        "grep",
        "cat",
        "cut",
        "sha256sum",
        "rm",
        "touch",
        "mkdir",
        "dirname",
        "env",
        "id",
        "python3",
        "make",
        "pdftoppm",
        "tesseract",
        "ls",
    ):
        real = sh.which(tool)
        if real:
            (bindir / tool).symlink_to(real)
    log = tmp_path / "apt.log"
    (bindir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {log}\n')
    table = "\n".join(f"{k}) echo '  Candidate: {v}';;" for k, v in candidates.items())
    (bindir / "apt-cache").write_text(
        f'#!/bin/sh\ncase "$2" in\n{table}\n*) echo "  Candidate: (none)";;\nesac\n'
    )
    (bindir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    for fake in ("apt-get", "apt-cache", "sudo"):
        (bindir / fake).chmod(0o755)
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    sh.copy(REPO / "scripts" / "setup.sh", checkout / "scripts" / "setup.sh")
    (checkout / "pyproject.toml").write_text("[project]\n")
    return {"PATH": str(bindir), "HOME": str(tmp_path)}, checkout


#: Every other package setup.sh may want exists: only the browser is in question.
OTHERS = {
    p: "1.0-1"
    for p in (
        "python3",
        "python3-venv",
        "make",
        "poppler-utils",
        "tesseract-ocr",
        "tesseract-ocr-fra",
    )
}


def test_setup_refuses_to_half_install_without_a_browser_package(tmp_path: Path) -> None:
    env, checkout = _fake_system(tmp_path, OTHERS)
    done = subprocess.run(
        ["bash", str(checkout / "scripts" / "setup.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "chromium-headless-shell" in done.stderr and "Nothing was installed" in done.stderr
    calls = (tmp_path / "apt.log").read_text()
    assert "install" not in calls  # only `apt-get update`
    assert not (checkout / ".venv").exists()


def test_setup_falls_back_to_chromium_explicitly(tmp_path: Path) -> None:
    env, checkout = _fake_system(tmp_path, {**OTHERS, "chromium": "140.0-1"})
    # An existing virtualenv (stubs): the test stops at the system packages.
    venv = checkout / ".venv" / "bin"
    venv.mkdir(parents=True)
    for stub in ("python", "pip", "observatoire"):
        (venv / stub).write_text("#!/bin/sh\nexit 0\n")
        (venv / stub).chmod(0o755)
    done = subprocess.run(
        ["bash", str(checkout / "scripts" / "setup.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "falling back to full chromium" in done.stdout, done.stdout + done.stderr
    calls = (tmp_path / "apt.log").read_text()
    installed = next(line for line in calls.splitlines() if " install " in line)
    assert " chromium" in installed and "headless" not in installed
    assert done.returncode == 0 and "setup: ready" in done.stdout, done.stderr
