"""The operator's first week, as the docs describe it: every documented command and option
exists, the backup and restore steps of docs/operator.md run as written against a real
PostgreSQL database and give the same statistics, `targets check --live` reads the
simulator's pages, and the CLI behaves outside the checkout and on a `{simulator}` file."""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy.engine import make_url
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from observatoire.cli import app
from observatoire.db import make_engine
from observatoire.simulator import RunningSimulator
from observatoire.stats import LEVELS, SMALL_SAMPLE, monthly_stats

from .conftest import DEMO_CONFIG, REPO, need_postgres

README = REPO / "README.md"
GUIDE = REPO / "docs" / "operator.md"
ROBOT = [sys.executable, "-m", "observatoire.cli"]
FENCE = re.compile(r"```sh\n(.*?)```", re.S)
INLINE = re.compile(r"`(observatoire [^`]+)`")
#: Legacy-booking targets of the demo file: plain HTTP, fast, one of them retired.
LEGACY = ["92-remise-titre-12083", "93-titre-sejour-9845", "42-admission-exceptionnelle-804"]


def documented_invocations(text: str) -> list[list[str]]:
    """Every `observatoire …` command line in the fenced shell blocks and inline code."""
    lines: list[str] = []
    for block in FENCE.findall(text):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            for part in re.split(r"&&|\|\||;|\|", line):
                part = part.strip()
                match = re.match(r"(?:\S*/bin/)?observatoire (.*)$", part)
                if match:
                    lines.append("observatoire " + match.group(1))
    lines += INLINE.findall(text)
    out = []
    for line in lines:
        try:
            words = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "))
        except ValueError:
            words = line.split()
        out.append(words[1:])
    return out


def resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The command (Typer's click object) named by the leading words, and the rest."""
    command: Any = get_command(app)
    rest = list(words)
    while rest and isinstance(command, TyperGroup) and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_documented_command_and_option_exists(doc: Path) -> None:
    invocations = documented_invocations(doc.read_text("utf-8"))
    if doc in (README, GUIDE):
        assert len(invocations) > 15
    problems = []
    for words in invocations:
        if not words or words[0].startswith("-"):
            continue  # `observatoire --help`
        command, rest = resolve(words)
        if isinstance(command, TyperGroup):
            problems.append(f"{' '.join(words)}: no such command")
            continue
        known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        known.add("--help")
        for word in rest:
            option = word.split("=", 1)[0]
            if option.startswith("--") and option not in known:
                problems.append(f"{' '.join(words)}: {command.name} has no {option}")
    assert problems == []


#: What points outside the repository: a relative path climbing out of it, a path of
#: the machine it was written on, or the project's notes (not shipped with the code).
CLIMB = re.compile(r"(?<![\w/.])((?:\.\./)+[\w./-]*)")
MACHINE = re.compile(r"(?<![\w.])/(?:work|home|root|Users|tmp)/[\w./-]*")
NOTES = re.compile(r"\bshared/\s*(?:reference|DESIGN|STYLE|notes)\b")
MODULES = sorted((REPO / "observatoire").rglob("*.py"))


def outside_pointers(text: str, folder: Path) -> list[str]:
    found = [m for m in CLIMB.findall(text) if not (folder / m).resolve().is_relative_to(REPO)]
    return found + MACHINE.findall(text) + NOTES.findall(text)


def test_outside_pointers_are_caught() -> None:
    folder = REPO
    assert outside_pointers("see `../shared/DESIGN.md`", folder) == [
        "../shared/DESIGN.md",
        "shared/DESIGN",
    ]
    assert outside_pointers("(/work/main/config/x.yaml)", folder) == ["/work/main/config/x.yaml"]
    assert outside_pointers("from shared/\nreference/platforms.md", folder) == [
        "shared/\nreference"
    ]
    docs = REPO / "docs"
    assert outside_pointers("[guide](../README.md), `/etc/observatoire/env.sh`", docs) == []


@pytest.mark.parametrize(
    "path", [*DOCS, *MODULES], ids=[str(p.relative_to(REPO)) for p in [*DOCS, *MODULES]]
)
def test_no_doc_or_docstring_points_outside_the_repository(path: Path) -> None:
    """A reader of the repository alone can follow every pointer: README.md, docs/ and
    every module's docstring name files of the repository, never the notes or the
    machine the code was written on."""
    text = path.read_text("utf-8")
    if path.suffix == ".py":
        text = ast.get_docstring(ast.parse(text), clean=False) or ""
    assert outside_pointers(text, path.parent) == []


def test_readme_states_the_volunteer_reality_and_the_sample_size() -> None:
    text = README.read_text("utf-8")
    top = text[: text.index("## Two commands")]
    assert "most prefectures need volunteers" in top
    assert f"{SMALL_SAMPLE} valid observations" in top
    assert "0 probes" in top and "observations a week" in top
    guide = GUIDE.read_text("utf-8")
    assert "Ubuntu 24.04" not in guide + text  # not supported without Docker: said so
    assert "observatoire.sqlite` in the working directory)" not in guide
    assert "sqlite:////var/lib/observatoire/" in guide
    units = "".join(p.read_text() for p in (REPO / "deploy" / "systemd").glob("*.service"))
    assert "ReadWritePaths=/var/lib/observatoire" in units


def test_stats_help_lists_every_level_and_rebuild() -> None:
    result = CliRunner().invoke(app, ["stats", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for level in LEVELS:
        assert level in result.stdout
    assert "--rebuild" in result.stdout


# -- backup and restore, as written ---------------------------------------------------
def block_after(marker: str) -> str:
    text = GUIDE.read_text("utf-8")
    start = text.index(f"<!-- {marker}")
    match = FENCE.search(text, start)
    assert match, marker
    return match.group(1)


def run_block(block: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def evidence_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def restore_db() -> Iterator[dict[str, str]]:
    """A database of its own (the restore drops it), and the libpq variables for it."""
    base = make_url(need_postgres())
    name = f"obs_restore_{uuid.uuid4().hex[:10]}"
    pg = {
        "PGHOST": base.host or "127.0.0.1",
        "PGPORT": str(base.port or 5432),
        "PGUSER": base.username or "postgres",
        "PGDATABASE": name,
    }
    env = {**os.environ, **pg}
    subprocess.run(["createdb", name], env=env, check=True)
    pg["OBSERVATOIRE_DATABASE_URL"] = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield pg
    finally:
        subprocess.run(["dropdb", "--if-exists", "--force", name], env=env, check=False)


def test_backup_and_restore_steps_run_as_written(
    restore_db: dict[str, str], live_simulator: RunningSimulator, tmp_path: Path
) -> None:
    data = tmp_path / "var-lib-observatoire"
    backups = tmp_path / "backups"
    backups.mkdir()
    env = {
        **os.environ,
        **restore_db,
        "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
        "OBSERVATOIRE_DATA_DIR": str(data),
        "OBSERVATOIRE_MIN_DELAY_SECONDS": "0",
        "OBSERVATOIRE_RETRY_BASE_SECONDS": "0",
        "COLUMNS": "200",
    }
    env.pop("OBSERVATOIRE_CONTACT_URL", None)

    def robot(*args: str) -> str:
        done = subprocess.run(
            [*ROBOT, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    # An installation with probes and evidence: real probes of the simulator.
    robot("db", "upgrade")
    sim = ["--config", str(DEMO_CONFIG), "--simulator-url", live_simulator.base_url]
    robot("probe", *LEGACY, *sim)
    robot("probe", *LEGACY, *sim)
    url = restore_db["OBSERVATOIRE_DATABASE_URL"]
    engine = make_engine(url)
    before = {level: monthly_stats(engine, level) for level in ("target", "department")}
    engine.dispose()
    assert before["target"]["probes"].sum() == 2 * len(LEGACY)
    printed_before = robot("stats", "--level", "department")
    evidence_before = evidence_hashes(data / "evidence")
    assert evidence_before

    # 1. Back up, as written.
    run_block(block_after("backup-steps"), env, backups)
    assert (backups / "observatoire.dump").stat().st_size > 0

    # 2. Disaster: the database and the data folder are gone. A fresh installation
    # (section 2) creates an empty database.
    subprocess.run(["dropdb", "--force", restore_db["PGDATABASE"]], env=env, check=True)
    subprocess.run(["rm", "-rf", str(data)], check=True)
    subprocess.run(["createdb", restore_db["PGDATABASE"]], env=env, check=True)

    # 3. Restore, as written: restore, evidence back, schema, rollups rebuilt.
    printed = run_block(block_after("restore-steps"), env, backups)
    counts = re.search(r"rollups rebuilt from the probes: probe_days (\d+) rows", printed)
    assert counts and int(counts.group(1)) > 0, printed

    engine = make_engine(url)
    try:
        for level, frame in before.items():
            pd.testing.assert_frame_equal(monthly_stats(engine, level), frame)
    finally:
        engine.dispose()
    table = printed[printed.index("\n", counts.end()) + 1 :]
    assert table.strip() == printed_before.strip()
    assert evidence_hashes(data / "evidence") == evidence_before


# -- the CLI outside the checkout, on a {simulator} file --------------------------------
def run_outside(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in-process from `tmp_path` (not the checkout), with only the settings
    given here (the runner's environment drops every other OBSERVATOIRE_* variable)."""
    env: dict[str, str | None] = {
        key: None for key in os.environ if key.startswith("OBSERVATOIRE_")
    }
    env.update(
        {
            "OBSERVATOIRE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "COLUMNS": "200",
            **extra,
        }
    )
    with contextlib.chdir(tmp_path):
        result = CliRunner(env=env).invoke(app, list(args))
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def test_status_list_and_check_work_outside_the_checkout(tmp_path: Path) -> None:
    # The default targets file is found from any folder (cron, systemd): a real process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSERVATOIRE_")}
    check = subprocess.run(
        [*ROBOT, "targets", "check"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert str(REPO / "config" / "prefectures.yaml") in check.stdout
    listed = run_outside(tmp_path, "targets", "list", "--enabled")
    assert listed.returncode == 0 and "rdv_prefecture" in listed.stdout

    # A {simulator} file (the demo's database) needs no dummy --simulator-url for
    # commands that send no request; the file's name plays no part.
    renamed = tmp_path / "targets.yaml"
    renamed.write_text(DEMO_CONFIG.read_text("utf-8"), "utf-8")
    check = run_outside(tmp_path, "targets", "check", "--config", str(renamed))
    assert check.returncode == 0, check.stderr
    assert "20 target(s) use {simulator}" in check.stdout
    listed = run_outside(tmp_path, "targets", "list", "--config", "targets.yaml")
    assert listed.returncode == 0 and "{simulator}/www.hauts-de-seine.gouv.fr" in listed.stdout
    assert run_outside(tmp_path, "db", "upgrade").returncode == 0
    status = run_outside(tmp_path, "status", "--config", "targets.yaml", "--json")
    assert status.returncode == 1, status.stderr  # nothing probed yet: "not probed"
    assert '"schema_version": 1' in status.stdout
    # `probe` still refuses a {simulator} file without a simulator: it would send requests.
    probe = run_outside(tmp_path, "probe", "--all", "--config", "targets.yaml")
    assert probe.returncode == 2 and "{simulator}" in probe.stderr


def test_errors_are_plain_text_without_emoji(tmp_path: Path) -> None:
    lines = DEMO_CONFIG.read_text("utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if i >= 99 and "platform: legacy_booking" in line)
    lines[at] = lines[at].replace("legacy_booking", "nope_platform")
    bad = tmp_path / "bad.yaml"
    bad.write_text("\n".join(lines) + "\n", "utf-8")
    done = run_outside(tmp_path, "targets", "check", "--config", str(bad))
    assert done.returncode == 2
    assert f"{bad}:{at + 1}: " in done.stderr, done.stderr
    assert "\N{HUNDRED POINTS SYMBOL}" not in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.rstrip().endswith("error: 1 problem in the configuration")


# -- targets check --live, against the simulator only ----------------------------------
def live(simulator: RunningSimulator, tmp_path: Path, target: str) -> subprocess.CompletedProcess:
    args = ["--config", str(DEMO_CONFIG), "--simulator-url", simulator.base_url]
    return run_outside(
        tmp_path, "targets", "check", "--live", target, *args, OBSERVATOIRE_MIN_DELAY_SECONDS="0"
    )


def test_check_live_names_the_platform_and_a_retired_link(
    live_simulator: RunningSimulator, tmp_path: Path
) -> None:
    ok = live(live_simulator, tmp_path, "92-remise-titre-12083")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "recognised platform: legacy_booking" in ok.stdout
    assert "retired link: no" in ok.stdout and "requests: 1 " in ok.stdout

    retired = live(live_simulator, tmp_path, "42-admission-exceptionnelle-804")
    assert retired.returncode == 1
    assert "retired link: yes" in retired.stdout
    assert "Ce lien a été désactivé définitivement" in retired.stdout

    rdv = live(live_simulator, tmp_path, "92-titre-sejour-rdvpref-3327")
    assert rdv.returncode == 0 and "recognised platform: rdv_prefecture" in rdv.stdout
    assert "volunteer" in rdv.stdout
    eappointment = live(live_simulator, tmp_path, "94-titre-sejour-eappointment")
    assert "recognised platform: eappointment" in eappointment.stdout

    # One GET per look, with the robot's User-Agent, one at a time.
    conduct = live_simulator.state.conduct.report()
    assert sum(conduct["requests"].values()) == 4, conduct["requests"]
    assert all(ua.startswith("observatoire/") for ua in conduct["user_agents"])
    assert conduct["violations"] == []


def test_check_live_refuses_a_real_host_without_contact(tmp_path: Path) -> None:
    config = tmp_path / "real.yaml"
    config.write_text(DEMO_CONFIG.read_text("utf-8").replace("{simulator}/", "https://"), "utf-8")
    done = run_outside(
        tmp_path, "targets", "check", "--config", str(config), "--live", "92-remise-titre-12083"
    )
    assert done.returncode == 2
    assert "OBSERVATOIRE_CONTACT_URL" in done.stderr and "recognised" not in done.stdout
