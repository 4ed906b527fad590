"""Runtime settings, read from `OBSERVATOIRE_*` environment variables.

Everything has a default that works on a laptop (a SQLite file and a `data/` folder in
the working directory); a server sets the database URL and the contact URL.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from observatoire import __version__

ENV_PREFIX = "OBSERVATOIRE_"


#: Below this minimum delay (seconds) only loopback hosts (the simulator) may be probed.
MIN_REMOTE_DELAY_SECONDS = 1.0
_MAILTO = re.compile(r"^mailto:[^@\s/]+@[^@\s/]+\.[^@\s/]+$", re.IGNORECASE)


class SettingsError(ValueError):
    """An environment variable has a value we cannot use."""


def contact_problem(contact: str) -> str | None:
    """Why `contact` is not a way for a site's operator to reach us, or None. It must be
    an http(s) URL with a host, or a `mailto:` address: a site that wants the robot to
    stop must find someone."""
    if not contact.strip():
        return "blank: give a page (https://…) or a mailto: address"
    if contact != contact.strip() or any(ch.isspace() or ord(ch) < 32 for ch in contact):
        return "contains spaces or control characters"
    if contact.lower().startswith("mailto:"):
        return None if _MAILTO.match(contact) else "not a mailto:name@domain address"
    parts = urlsplit(contact)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL or a mailto: address"
    if "." not in parts.hostname and parts.hostname != "localhost":
        return f"host {parts.hostname!r} is not a public name"
    return None


def check_conduct(settings: Settings, hosts: Iterable[str]) -> None:
    """Refuse to probe real (non-loopback) hosts without a valid contact or with a
    minimum delay under MIN_REMOTE_DELAY_SECONDS. Loopback (the simulator) may go
    faster for tests and the demo. Raises SettingsError (exit 2 in the CLI)."""
    from observatoire.robot.politeness import is_loopback

    remote = sorted({h for h in hosts if not is_loopback(h)})
    if not remote:
        return
    shown = ", ".join(remote[:10]) + (f" (+{len(remote) - 10})" if len(remote) > 10 else "")
    if not settings.contact_url:
        raise SettingsError(
            f"set {ENV_PREFIX}CONTACT_URL (a page or mailto: where the sites can reach you) "
            f"before probing real hosts: {shown}"
        )
    problem = contact_problem(settings.contact_url)
    if problem:
        raise SettingsError(f"{ENV_PREFIX}CONTACT_URL={settings.contact_url!r}: {problem}")
    if settings.min_delay_seconds < MIN_REMOTE_DELAY_SECONDS:
        raise SettingsError(
            f"{ENV_PREFIX}MIN_DELAY_SECONDS={settings.min_delay_seconds:g}: at least "
            f"{MIN_REMOTE_DELAY_SECONDS:g} s between two requests to a real host "
            f"(only loopback may go faster): {shown}"
        )


#: The folder holding `config/`, `deploy/` and the package: the checkout (editable
#: install) or the image's /app.
INSTALL_ROOT = Path(__file__).resolve().parents[1]


def resolve_targets_file(path: Path) -> Path:
    """`path` if it exists or is absolute, else the same relative path under
    INSTALL_ROOT when that exists there, else `path` unchanged (so the "file not found"
    message names what the operator gave)."""
    if path.is_absolute() or path.exists():
        return path
    installed = INSTALL_ROOT / path
    return installed if installed.exists() else path


@dataclass(frozen=True)
class Settings:
    #: SQLAlchemy URL. SQLite (default) or `postgresql+psycopg://…`.
    database_url: str = "sqlite:///observatoire.sqlite"
    #: Root for evidence, exports and the built site.
    data_dir: Path = Path("data")
    #: The targets file.
    config: Path = Path("config/prefectures.yaml")
    #: Where a person can reach the operator; part of the User-Agent. Required to
    #: probe any non-loopback host: the robot always says who it is.
    contact_url: str = ""
    #: Minimum delay between two requests to the same host, in seconds.
    min_delay_seconds: float = 5.0
    #: Connect/read timeout for one request, in seconds.
    timeout_seconds: float = 30.0
    #: First wait before a retry (then 3x that); retries only for error/unrecognized.
    retry_base_seconds: float = 60.0
    #: Days of full evidence retention (later: only state changes and anomalies).
    evidence_retention_days: int = 90
    #: Base URL of a running simulator, for targets files that use `{simulator}` (the
    #: demo file). Same as `--simulator-url`; never needed against real sites.
    simulator_url: str = ""
    #: Who issues the evidence dossiers, named on their cover: the association (or
    #: body) running the observatory, and the person operating it. The contact is
    #: `contact_url`. Empty: the cover says the issuer was not given.
    association: str = ""
    operator: str = ""
    #: Public address of the published site and open data ("https://…/"): the dossier
    #: names it as where each observation's page hash was published.
    site_url: str = ""

    @property
    def evidence_dir(self) -> Path:
        return self.data_dir / "evidence"

    @property
    def targets_file(self) -> Path:
        """The targets file to read: `config` as given when it exists (or is absolute);
        a relative path missing from the working directory is looked up in the
        installation's folder (the checkout or the image's /app). So `status` and
        `targets list` work from any folder, as cron and systemd run them, while
        `OBSERVATOIRE_CONFIG` and `--config` still win."""
        return resolve_targets_file(self.config)

    @property
    def site_dir(self) -> Path:
        return self.data_dir / "site"

    @property
    def export_dir(self) -> Path:
        return self.data_dir / "export"

    @property
    def user_agent(self) -> str:
        contact = self.contact_url or "contact not configured"
        return f"observatoire/{__version__} (+{contact})"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        # Each field's own type, as parsed below: keyword arguments for the dataclass.
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key not in env:
                continue
            raw = env[key]
            value: object
            try:
                if f.type in ("float",):
                    number = float(raw)
                    if not math.isfinite(number) or number < 0:
                        raise ValueError("must be a finite number >= 0")
                    value = number
                elif f.type in ("int",):
                    count = int(raw)
                    if count < 0:
                        raise ValueError("must be >= 0")
                    value = count
                elif f.type in ("Path",):
                    value = Path(raw)
                elif f.name == "contact_url":
                    # Empty means "not configured" (fine for the simulator); anything
                    # else must reach a person: a blank " " would pass for a contact.
                    problem = contact_problem(raw) if raw else None
                    if problem:
                        raise ValueError(problem)
                    value = raw
                else:
                    value = raw
            except ValueError as exc:
                raise SettingsError(f"{key}={raw!r}: {exc}") from None
            values[f.name] = value
        return cls(**values)
