#!/usr/bin/env python3
"""Send observatoire's alerts somewhere a person will see them.

Debian installs no mail agent, so cron's MAILTO and a failed systemd unit reach nobody.
This script (standard library only: it runs with the system's python3, even when the
robot's virtualenv is broken) delivers one message to what the operator configured:

  OBSERVATOIRE_ALERT_URL      an Uptime Kuma "push" URL (…/api/push/<token>): a problem
                              is sent as ?status=down&msg=…, a healthy check as
                              ?status=up&msg=OK (so the monitor also notices when checks
                              stop arriving). Any other http(s) URL gets the message as a
                              text/plain POST (ntfy, a chat webhook relay, …).
  OBSERVATOIRE_ALERT_COMMAND  a shell command that receives the message on its standard
                              input (e.g. `mail -s observatoire ops@example.org` where a
                              mail agent exists).

Usage (see docs/operator.md, "Alerts"):
  alert.py --status             run `observatoire status --json`: alert when it exits
                                non-zero, else send the "up" heartbeat (cron, compose)
  alert.py --unit U --status    systemd's OnFailure= (observatoire-alert@.service)
  alert.py --up                 heartbeat only (ExecStartPost= of a healthy check)
  alert.py --status --every 15  loop every 15 minutes (the compose `watch` service)
  alert.py MESSAGE…             send a message of your own (a test: "alert.py test")

Exit status: 0 when there was nothing to say or it was delivered; 1 when a problem could
not be delivered (no destination configured, or delivery failed): the message is then
printed on stderr, which lands in the journal or the cron log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

TIMEOUT = 20
ROOT = Path(__file__).resolve().parents[1]


def observatoire_bin() -> str:
    """The robot's command: $OBSERVATOIRE_BIN, the checkout's .venv, else PATH (image)."""
    explicit = os.environ.get("OBSERVATOIRE_BIN")
    if explicit:
        return explicit
    venv = ROOT / ".venv" / "bin" / "observatoire"
    if venv.exists():
        return str(venv)
    return shutil.which("observatoire") or "observatoire"


def check_status() -> tuple[bool, str]:
    """(healthy, summary) from `observatoire status --json` (schema_version 1)."""
    try:
        done = subprocess.run(
            [observatoire_bin(), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"`observatoire status` could not run: {exc}"
    if done.returncode == 0:
        return True, "OK"
    try:
        report = json.loads(done.stdout)
        lines = [
            f"- {f['kind']}: {f['target'] or f['adapter']}: {f['message']}"
            for f in report["findings"]
        ]
        return False, f"{len(lines)} finding(s) need a human:\n" + "\n".join(lines)
    except (ValueError, KeyError, TypeError):
        tail = (done.stderr or done.stdout).strip()[-1500:]
        return False, f"`observatoire status` exited {done.returncode}: {tail}"


def push(url: str, up: bool, message: str) -> None:
    """Deliver to an Uptime Kuma push URL (GET with status/msg) or POST elsewhere."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"OBSERVATOIRE_ALERT_URL must be http(s), not {parts.scheme!r}")
    if "/api/push/" in parts.path:
        query = urllib.parse.parse_qsl(parts.query)
        query = [(k, v) for k, v in query if k not in ("status", "msg", "ping")]
        query += [("status", "up" if up else "down"), ("msg", message[:250]), ("ping", "")]
        target = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        request = urllib.request.Request(target, method="GET")
    else:
        request = urllib.request.Request(
            url,
            data=message.encode("utf-8"),
            method="POST",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
        response.read()


def deliver(up: bool, message: str) -> bool:
    """Send to every configured destination. A heartbeat (up) only goes to the URL."""
    url = os.environ.get("OBSERVATOIRE_ALERT_URL", "").strip()
    command = os.environ.get("OBSERVATOIRE_ALERT_COMMAND", "").strip()
    ok = True
    if url:
        try:
            push(url, up, message)
        except Exception as exc:  # noqa: BLE001 - report whatever went wrong, then go on
            print(f"alert: could not reach OBSERVATOIRE_ALERT_URL: {exc}", file=sys.stderr)
            ok = False
    if command and not up:
        done = subprocess.run(
            command, shell=True, input=message, text=True, timeout=TIMEOUT * 3, check=False
        )
        if done.returncode != 0:
            print(f"alert: OBSERVATOIRE_ALERT_COMMAND exited {done.returncode}", file=sys.stderr)
            ok = False
    if not up and not url and not command:
        print("alert: no OBSERVATOIRE_ALERT_URL or OBSERVATOIRE_ALERT_COMMAND set", file=sys.stderr)
        ok = False
    if not up and not ok:
        print(message, file=sys.stderr)
    return ok


def once(args: argparse.Namespace) -> bool:
    host = socket.gethostname()
    problems: list[str] = []
    if args.unit:
        problems.append(f"systemd unit {args.unit} failed (journalctl -u {args.unit})")
    if args.message:
        problems.append(" ".join(args.message))
    if args.status:
        healthy, summary = check_status()
        if not healthy:
            problems.append(summary)
    if not problems:
        return deliver(True, "OK")
    return deliver(False, f"observatoire on {host}: " + "\n".join(problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("message", nargs="*", help="text to send as a problem")
    parser.add_argument("--status", action="store_true", help="run `observatoire status`")
    parser.add_argument("--unit", help="the systemd unit that failed (%%i in OnFailure=)")
    parser.add_argument("--up", action="store_true", help="send the healthy heartbeat only")
    parser.add_argument("--every", type=float, default=0, help="minutes between checks (loop)")
    args = parser.parse_args(argv)
    if args.up:
        return 0 if deliver(True, "OK") else 1
    if not (args.status or args.unit or args.message):
        parser.error("say what to send: --status, --unit, --up or a message")
    while True:
        ok = once(args)
        if not args.every:
            return 0 if ok else 1
        sys.stdout.flush()
        time.sleep(args.every * 60)


if __name__ == "__main__":
    sys.exit(main())
