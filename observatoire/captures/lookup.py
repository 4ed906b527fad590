"""Which target a captured page belongs to.

A page belongs to a target when its address continues the target's configured address
(same scheme-less host and path prefix, up to a path boundary): a slot page
`…/demarche/3327/creneau/` belongs to `…/demarche/3327/`, never to `…/demarche/33270/`.
The longest match wins. Nothing is guessed from the host alone: a page of the right
platform that matches no configured target waits for an operator."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from observatoire.db.models import TargetRow


@dataclass(frozen=True)
class TargetMatch:
    id: str
    platform: str
    url: str


def _key(url: str) -> tuple[str, str]:
    parts = urlsplit(url.strip())
    return parts.netloc.lower(), parts.path.rstrip("/")


def match_target(engine: Engine, url: str) -> TargetMatch | None:
    host, path = _key(url)
    if not host:
        return None
    best: TargetMatch | None = None
    best_len = -1
    with Session(engine) as session:
        rows = session.execute(select(TargetRow.id, TargetRow.platform, TargetRow.url)).all()
    for target_id, platform, target_url in rows:
        t_host, t_path = _key(target_url)
        if t_host != host:
            continue
        if (path == t_path or path.startswith(t_path + "/")) and len(t_path) > best_len:
            best, best_len = TargetMatch(target_id, platform, target_url), len(t_path)
    return best


def known_hosts(engine: Engine) -> set[str]:
    """Hosts of the configured targets (to tell "right platform, unknown page" apart)."""
    with Session(engine) as session:
        return {_key(u)[0] for u in session.scalars(select(TargetRow.url))}
