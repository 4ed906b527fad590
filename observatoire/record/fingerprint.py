"""Drift: the structural fingerprint of a saved page, and the `unrecognized` report.

A platform changes without warning (RDV-Préfecture's captcha changed in 2025). When it
does, many targets start answering `unrecognized` or `blocked` with pages that look
alike. The operator needs to see "this page shape appeared on Tuesday on 14 targets",
not 14 separate probes, so the report groups those probes by the *shape* of their page:

- the fingerprint is a hash of the tag/id/class skeleton only. Text, attribute values
  other than `id`/`class`, digits inside ids (`slot-2026-05-19`) and the robot's own
  stamp (`[data-observatoire=stamp]`) are ignored: two captures of one template, on two
  days or two prefectures, get the same fingerprint;
- consecutive identical siblings count once, so a grid of 3 or of 30 slots, or a list of
  5 or 50 options, is the same shape;
- probes without a saved page (timeouts, HTTP errors) are grouped under their detail.

Memory stays bounded whatever the number of probes: rows are streamed from the database,
and fingerprints are cached per page sha256 (content-addressed evidence: the same page
is parsed once) in a cache of fixed size.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from lxml import etree
from lxml import html as lxml_html
from sqlalchemy import Engine, text

from observatoire.clock import PARIS
from observatoire.db.types import UTCDateTime
from observatoire.outcomes import ANOMALIES, sql_in, values
from observatoire.record.evidence import EvidenceStore

#: The outcomes an operator must look at when a platform drifts.
DRIFT_OUTCOMES = tuple(values(ANOMALIES))
#: Fingerprints kept in memory (one entry is ~100 bytes): the report's memory is bounded.
CACHE_SIZE = 20_000
UNPARSEABLE = "unparseable"
_DIGITS = re.compile(r"\d+")
_STAMP_ATTR = "data-observatoire"


def _node_signature(element: etree._Element) -> str | None:
    """The element's own part of the skeleton, or None when it must be ignored (the
    robot's stamp, comments, processing instructions)."""
    if not isinstance(element.tag, str):
        return None  # comment, processing instruction, entity
    if element.get(_STAMP_ATTR) == "stamp":
        return None
    tag = element.tag.lower()
    ident = _DIGITS.sub("", element.get("id") or "").strip()
    classes = sorted(set((element.get("class") or "").split()))
    sig = tag
    if ident:
        sig += "#" + ident
    if classes:
        sig += "." + ".".join(classes)
    return sig


def skeleton(root: etree._Element) -> str:
    """The page's skeleton as one string, bottom-up: each element is its signature and
    its children's skeletons, consecutive identical children collapsed into one.

    Walked with start/end events (no recursion limit on deeply nested pages)."""
    stack: list[tuple[str, list[str]]] = [("", [])]
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, element in walker:
        own = _node_signature(element)
        if own is None:
            if event == "start" and isinstance(element.tag, str):
                walker.skip_subtree()  # the robot's stamp: nothing of it counts
            continue
        if event == "start":
            stack.append((own, []))
            continue
        sig, parts = stack.pop()
        whole = sig + ("(" + ",".join(parts) + ")" if parts else "")
        siblings = stack[-1][1]
        if not siblings or siblings[-1] != whole:
            siblings.append(whole)
    return stack[0][1][0] if stack[0][1] else ""


def fingerprint(page: bytes) -> str:
    """Structural fingerprint of a page (12 hex digits), or `unparseable`."""
    if page[:2] == b"\x1f\x8b":
        page = gzip.decompress(page)
    if not page.strip():
        return UNPARSEABLE
    try:
        root = lxml_html.document_fromstring(page)
    except (etree.ParserError, ValueError):
        return UNPARSEABLE
    shape = skeleton(root)
    if not shape:
        return UNPARSEABLE
    return hashlib.sha256(shape.encode("utf-8")).hexdigest()[:12]


class FingerprintCache:
    """sha256 of a saved page -> fingerprint, least recently used entries dropped."""

    def __init__(self, evidence: EvidenceStore, size: int = CACHE_SIZE) -> None:
        self.evidence, self.size = evidence, size
        self._cache: OrderedDict[str, str | None] = OrderedDict()
        self.parsed = 0

    def get(self, sha256: str) -> str | None:
        """The page's fingerprint; None when its evidence file is gone (pruned, moved)."""
        if sha256 in self._cache:
            self._cache.move_to_end(sha256)
            return self._cache[sha256]
        try:
            value: str | None = fingerprint(self.evidence.get(sha256, "html"))
            self.parsed += 1
        except (FileNotFoundError, OSError, EOFError, gzip.BadGzipFile):
            value = None
        self._cache[sha256] = value
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return value


@dataclass
class ShapeGroup:
    """Probes whose pages share one shape (or, without a page, one detail)."""

    key: str  # "page:<fingerprint>" or "detail:<detail>"
    probes: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    targets: set[str] = field(default_factory=set)
    adapters: set[str] = field(default_factory=set)
    mix: Counter[str] = field(default_factory=Counter)  # "outcome/detail" -> probes
    example_probe: int | None = None
    example_target: str | None = None
    example_path: Path | None = None

    @property
    def kind(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def shape(self) -> str:
        return self.key.split(":", 1)[1]

    def add(
        self,
        probe_id: int,
        target: str,
        adapter: str,
        outcome: str,
        detail: str,
        when: datetime,
        example: Path | None,
    ) -> None:
        self.probes += 1
        self.targets.add(target)
        self.adapters.add(adapter)
        self.mix[f"{outcome}/{detail}" if detail else outcome] += 1
        if self.first_seen is None or when < self.first_seen:
            self.first_seen = when
        if self.last_seen is None or when >= self.last_seen:
            self.last_seen = when
            # The most recent example: the page as the platform serves it now.
            if example is not None or self.example_path is None:
                self.example_probe, self.example_target = probe_id, target
                self.example_path = example

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "fingerprint": self.shape if self.kind == "page" else None,
            "detail": self.shape if self.kind == "detail" else None,
            "probes": self.probes,
            "targets": len(self.targets),
            "target_ids": sorted(self.targets),
            "adapters": sorted(self.adapters),
            "first_seen": self.first_seen.astimezone(PARIS).isoformat()
            if self.first_seen
            else None,
            "last_seen": self.last_seen.astimezone(PARIS).isoformat() if self.last_seen else None,
            "mix": dict(self.mix.most_common()),
            "example_probe": self.example_probe,
            "example_target": self.example_target,
            "example_path": str(self.example_path) if self.example_path else None,
        }


def drift_report(
    engine: Engine,
    evidence: EvidenceStore,
    since: datetime | None = None,
    adapter: str | None = None,
    chunk: int = 2_000,
) -> list[ShapeGroup]:
    """`unrecognized` and `blocked` probes grouped by page shape, newest shapes first
    (a shape that just appeared is what drift looks like), then by probes."""
    where = [sql_in("outcome", ANOMALIES)]
    params: dict[str, object] = {}
    if since is not None:
        where.append("started_at >= :since")
        params["since"] = UTCDateTime().process_bind_param(since, engine.dialect)
    if adapter is not None:
        where.append("adapter = :adapter")
        params["adapter"] = adapter
    sql = text(
        "SELECT id, target_id, adapter, outcome, detail, started_at, page_sha256 FROM probes "
        f"WHERE {' AND '.join(where)} ORDER BY started_at, id"
    ).columns(started_at=UTCDateTime())
    cache = FingerprintCache(evidence)
    groups: dict[str, ShapeGroup] = {}
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=chunk).execute(sql, params)
        for row in result:
            sha = row.page_sha256
            shape = cache.get(sha) if sha else None
            detail = row.detail or ""
            if shape is not None:
                key, example = f"page:{shape}", evidence.path_for(sha, "html")
            else:
                missing = " (page file missing)" if sha else ""
                key, example = f"detail:{detail or row.outcome}{missing}", None
            group = groups.get(key)
            if group is None:
                group = groups[key] = ShapeGroup(key)
            group.add(
                row.id, row.target_id, row.adapter, row.outcome, detail, row.started_at, example
            )
    return sorted(
        groups.values(),
        key=lambda g: (g.first_seen or datetime.min.replace(tzinfo=PARIS), g.probes),
        reverse=True,
    )


def paris_short(when: datetime | None) -> str:
    """Operator's format: weekday, date and time in Europe/Paris ("Tue 2026-03-03 10:00")."""
    if when is None:
        return "—"
    local = when.astimezone(PARIS)
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    return f"{days[local.weekday()]} {local:%Y-%m-%d %H:%M}"
