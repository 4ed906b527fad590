"""Runtime settings, read from `OBSERVATOIRE_*` environment variables.

Everything has a default that works on a laptop (a SQLite file and a `data/` folder in
the working directory); a server sets the database URL and the contact URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from observatoire import __version__

ENV_PREFIX = "OBSERVATOIRE_"


class SettingsError(ValueError):
    """An environment variable has a value we cannot use."""


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

    @property
    def evidence_dir(self) -> Path:
        return self.data_dir / "evidence"

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

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key not in env:
                continue
            raw = env[key]
            try:
                if f.type in ("float",):
                    value: object = float(raw)
                    if value < 0:  # type: ignore[operator]
                        raise ValueError("must be >= 0")
                elif f.type in ("int",):
                    value = int(raw)
                    if value < 0:  # type: ignore[operator]
                        raise ValueError("must be >= 0")
                elif f.type in ("Path",):
                    value = Path(raw)
                else:
                    value = raw
            except ValueError as exc:
                raise SettingsError(f"{key}={raw!r}: {exc}") from None
            values[f.name] = value
        return cls(**values)  # type: ignore[arg-type]
