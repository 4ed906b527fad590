"""`observatoire assist` as a library: get the robot ready for volunteers, then serve
their page until SIGTERM/SIGINT.

Before the page opens: the identification rule for the captcha-gated targets' hosts,
the configured targets written to the database, the leases of dead processes dropped,
a real write to the evidence folder and the database (a volunteer's observation that
cannot be stored must not start at all), and the observations a dead `assist` left
unfinished stored as `error/interrupted`, as `run` and `probe` do with their probes at
their start. The command line only prints what this module says, so a test or a
supervisor can run the same page without a shell.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from observatoire.assist.observation import AssistServices
from observatoire.assist.queue import assisted_targets
from observatoire.assist.server import AssistApp, running
from observatoire.config import Target
from observatoire.db import DatabaseNotReady
from observatoire.record.store import check_writable, recover_interrupted, sync_targets
from observatoire.robot.leases import release_stale
from observatoire.robot.runtime import Runtime
from observatoire.settings import Settings


class CannotServe(RuntimeError):
    """The volunteer's page could not be served (the address is taken, not ours…)."""


def serve_volunteers(
    settings: Settings,
    configured: Sequence[Target],
    host: str,
    port: int,
    *,
    say: Callable[[str], None],
) -> None:
    """Serve the volunteer's page on host:port for the captcha-gated targets among
    `configured` until SIGTERM/SIGINT. `say` receives the interrupted observations
    counted, the address to open (with its access token) and the stopping line. Raises
    SettingsError, StorageError or DatabaseNotReady before the page opens, CannotServe
    when it cannot be served."""
    chosen = assisted_targets(configured)
    runtime = Runtime.for_hosts(settings, [t.host for t in chosen])
    engine = runtime.engine
    if engine is None:  # database="required": from_settings raised already
        raise DatabaseNotReady("assist needs the database: run `observatoire db upgrade`")
    sync_targets(engine, configured, runtime.clock.now())
    release_stale(engine)
    check_writable(engine, runtime.evidence)
    interrupted = recover_interrupted(engine, datetime.now(UTC), mode="assisted")
    if interrupted:
        say(
            f"{len(interrupted)} observation(s) interrupted by a previous run stored as "
            f"error/interrupted: {', '.join(interrupted)}"
        )

    async def serve() -> None:
        async with runtime.robot(max_pages=4) as robot:
            robot.policy.join_groups(configured)
            services = AssistServices(
                engine, runtime.evidence, robot.policy, robot.browser, runtime.clock
            )
            assist_app = AssistApp(services, configured)
            async with running(assist_app, host, port) as url:
                # Before the address is printed: a supervisor may stop us as soon as it
                # has read it.
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, stop.set)
                say(
                    f"{len(chosen)} target(s) to observe with a volunteer. Open:\n"
                    f"  {url}/?jeton={assist_app.token}\n(Ctrl-C to stop)"
                )
                await stop.wait()
                say("stopping: open observations are closed, nothing half-recorded")

    try:
        asyncio.run(serve())
    except OSError as exc:
        raise CannotServe(f"cannot listen on {host}:{port}: {exc}") from None
