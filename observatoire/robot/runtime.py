"""The robot's runtime: its parts, built once from the settings, the same way for every
entry point (`probe`, `run`, `assist`, `targets check --live`, the demo, the dossier).

A runtime holds the database engine, the evidence store, the clock and the robot's
identity (its User-Agent, with the operator's contact); it makes the polite HTTP layer
(whose per-host gate lives in the database when there is one, so every process on that
database honours it) and the shared browser. Before any request to a real host, the
identification rule is checked here: a contact where the site can reach the operator,
and at least MIN_REMOTE_DELAY_SECONDS between two requests to a host. The daemon checks
it again on every reload of the targets file. Wired by hand in each entry point, one of
them would sooner or later forget the gate, the contact or the delay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from observatoire.clock import Clock, SystemClock
from observatoire.db import DatabaseNotReady, make_engine, require_migrated
from observatoire.record.evidence import EvidenceStore
from observatoire.robot.browser import BrowserPool
from observatoire.robot.politeness import PolitePolicy
from observatoire.settings import Settings, check_conduct


@dataclass
class Robot:
    """The parts that talk to sites, for one run: closed together."""

    policy: PolitePolicy
    browser: BrowserPool


@dataclass
class Runtime:
    settings: Settings
    #: None only where a database is optional (`targets check --live` before the first
    #: `db upgrade`): the per-host gate is then this process's own.
    engine: Engine | None
    evidence: EvidenceStore
    clock: Clock

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        database: Literal["required", "optional"] = "required",
        clock: Clock | None = None,
        engine: Engine | None = None,
    ) -> Runtime:
        """The runtime of `settings`. The database must be migrated (DatabaseNotReady
        otherwise), unless `database="optional"`, which goes without one instead."""
        if engine is None:
            try:
                engine = make_engine(settings.database_url)
                require_migrated(engine)
            except (DatabaseNotReady, SQLAlchemyError):
                if engine is not None:
                    engine.dispose()
                if database == "required":
                    raise
                engine = None
        return cls(settings, engine, EvidenceStore(settings.evidence_dir), clock or SystemClock())

    @classmethod
    def for_hosts(
        cls,
        settings: Settings,
        hosts: Iterable[str],
        *,
        database: Literal["required", "optional"] = "required",
    ) -> Runtime:
        """The runtime of an entry point that will send requests to `hosts`: the
        identification rule is checked before anything is opened (a refused run touches
        neither the database nor the evidence folder)."""
        check_conduct(settings, hosts)
        return cls.from_settings(settings, database=database)

    @property
    def user_agent(self) -> str:
        """`observatoire/<version> (+contact)`: the robot always says who runs it."""
        return self.settings.user_agent

    def with_politeness(self, *, min_delay: float, timeout: float) -> Runtime:
        """The same runtime with another delay and timeout (the demo, on loopback). The
        identification rule still applies: a real host refuses a delay under 1 s."""
        changed = replace(self.settings, min_delay_seconds=min_delay, timeout_seconds=timeout)
        return replace(self, settings=changed)

    def check_conduct(self, hosts: Iterable[str]) -> None:
        """Refuse to go on when a real (non-loopback) host is among `hosts` and the robot
        cannot say who runs it or would go faster than the minimum delay. Raises
        SettingsError (exit 2 in the CLI)."""
        check_conduct(self.settings, hosts)

    def policy(self) -> PolitePolicy:
        """The polite HTTP layer: one request at a time per host, the minimum delay,
        Retry-After; its gate shared through the database when there is one."""
        s = self.settings
        return PolitePolicy(
            s.user_agent, s.min_delay_seconds, s.timeout_seconds, engine=self.engine
        )

    def browser(self, max_pages: int | None = None) -> BrowserPool:
        """The shared headless browser (started on first use), with the robot's name."""
        if max_pages is None:
            return BrowserPool(self.user_agent)
        return BrowserPool(self.user_agent, max_pages=max_pages)

    @asynccontextmanager
    async def robot(self, *, max_pages: int | None = None) -> AsyncIterator[Robot]:
        """A policy and a browser for one run, both closed at the end whatever happens."""
        robot = Robot(self.policy(), self.browser(max_pages))
        try:
            yield robot
        finally:
            try:
                await robot.browser.close()
            finally:
                await robot.policy.aclose()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
