"""docs/adding-a-platform.md, followed to the letter: its code blocks are taken from the
page as they are (so the page cannot drift from the code), written to a temporary
folder as a plugin package with its `*.dist-info/entry_points.txt`, and its commands are
run through the real `observatoire` command with that folder on PYTHONPATH, against a
tiny local HTTP server. The stored probes must carry the toy platform's outcomes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-a-platform.md"
BLOCK = re.compile(r"<!-- (file: (?P<name>\S+)|commands) -->\n```[a-z]*\n(?P<body>.*?)```", re.S)

PAGES = {
    "available": "Créneaux disponibles : 3",
    "no_slot": "Aucun créneau disponible.",
}


def doc_blocks() -> tuple[dict[str, str], list[str]]:
    """The files the page asks to write, and its commands, in order."""
    files: dict[str, str] = {}
    commands: list[str] = []
    for match in BLOCK.finditer(DOC.read_text("utf-8")):
        if match["name"]:
            files[match["name"]] = match["body"]
        else:
            commands += [line for line in match["body"].splitlines() if line.strip()]
    return files, commands


class _Booking(BaseHTTPRequestHandler):
    """The toy platform: counter A never has slots, counter B says what `state` says."""

    state = "available"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path != "/toy/rdv":
            self.send_error(404)
            return
        body = (
            "<!doctype html><html lang=fr><body><h1>Rendez-vous</h1>"
            f"<section data-counter='A'>{PAGES['no_slot']}</section>"
            f"<section data-counter='B'>{PAGES[self.state]}</section></body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def toy_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Booking)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_page_has_the_blocks_this_test_follows() -> None:
    files, commands = doc_blocks()
    assert set(files) == {
        "toy_platform.py",
        "toy_platform-1.0.dist-info/entry_points.txt",
        "targets.yaml",
    }
    assert [c.split()[1] for c in commands] == ["db", "targets", "probe"]


def test_a_toy_platform_added_as_the_doc_says_is_probed(tmp_path: Path, toy_server: str) -> None:
    files, commands = doc_blocks()
    plugin = tmp_path / "plugin"
    for name, body in files.items():
        (plugin / name).parent.mkdir(parents=True, exist_ok=True)
        (plugin / name).write_text(body, encoding="utf-8")
    # What `pip install` writes next to entry_points.txt: the distribution's name.
    (plugin / "toy_platform-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: toy-platform\nVersion: 1.0\n", encoding="utf-8"
    )
    database = tmp_path / "robot.sqlite"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]),
        "OBSERVATOIRE_DATABASE_URL": f"sqlite:///{database}",
        "OBSERVATOIRE_DATA_DIR": str(tmp_path / "data"),
        # Loopback only: no delay needed (a real host refuses anything under 1 s).
        "OBSERVATOIRE_MIN_DELAY_SECONDS": "0",
    }
    env.pop("OBSERVATOIRE_CONFIG", None)
    env.pop("OBSERVATOIRE_SIMULATOR_URL", None)

    def run(command: str) -> subprocess.CompletedProcess[str]:
        args = [arg.replace("URL", toy_server) for arg in shlex.split(command)]
        assert args[0] == "observatoire"
        return subprocess.run(
            [sys.executable, "-m", "observatoire.cli", *args[1:]],
            cwd=plugin,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    for command in commands:
        done = run(command)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    _Booking.state = "no_slot"
    try:
        done = run(commands[-1])
        assert done.returncode == 0, done.stderr
    finally:
        _Booking.state = "available"

    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT outcome, adapter, adapter_version, slots_count, target_id "
                "FROM probes ORDER BY id"
            )
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("available", "toy", "1.0", 3, "75-titre-sejour-toy"),
        ("no_slot", "toy", "1.0", None, "75-titre-sejour-toy"),
    ]

    # The plugin's options model is the one config validation applies.
    bad = (plugin / "targets.yaml").read_text("utf-8").replace("counter: B", "countre: B")
    (plugin / "bad.yaml").write_text(bad, encoding="utf-8")
    refused = run("observatoire targets check --config bad.yaml --simulator-url URL")
    assert refused.returncode == 2
    assert re.search(r"bad\.yaml:\d+: .*options\.countre: unknown field", refused.stderr)
