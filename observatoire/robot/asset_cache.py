"""A small shared cache of static assets (scripts, stylesheets, fonts) for the robot's
browser.

Every probe opens a fresh browser context, and every request goes through the per-host
gate with its minimum delay. A single-page application (RDV-Préfecture is one) loads
the same scripts and stylesheets on every page of every visit: fetched each time, they
would multiply the load on the site and make a volunteer wait a minimum delay per file.
Cached here, they are fetched once per process and lifetime, as any browser does.

Only what a browser would keep is kept: GET, status 200, no `no-store`/`no-cache`/
`private`, no `Set-Cookie`, no `Vary: *`; fresh for `max-age` (else `Expires`, else one
hour), never more than a day. Documents, XHR and images (a captcha is an image) are
never cached. No session state is shared: assets carry no cookies.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

CACHEABLE_TYPES = frozenset({"script", "stylesheet", "font"})
DEFAULT_TTL = 3600.0
MAX_TTL = 86400.0
MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.I)
REFUSED = re.compile(r"no-store|no-cache|private", re.I)


@dataclass(frozen=True)
class CachedAsset:
    status: int
    headers: dict[str, str]
    body: bytes
    expires: float  # time.monotonic()


def freshness(headers: dict[str, str]) -> float | None:
    """Seconds the response may be reused, or None when it must not be stored."""
    lower = {k.lower(): v for k, v in headers.items()}
    control = lower.get("cache-control", "")
    if REFUSED.search(control) or "set-cookie" in lower or lower.get("vary", "") == "*":
        return None
    match = MAX_AGE.search(control)
    if match:
        ttl = float(match.group(1))
    elif "expires" in lower:
        try:
            ttl = parsedate_to_datetime(lower["expires"]).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    else:
        ttl = DEFAULT_TTL
    return min(ttl, MAX_TTL) if ttl > 0 else None


class AssetCache:
    """LRU by bytes; safe to share between the pages of one process."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, CachedAsset] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, method: str, resource_type: str, url: str) -> CachedAsset | None:
        if method != "GET" or resource_type not in CACHEABLE_TYPES:
            return None
        with self._lock:
            item = self._items.get(url)
            if item is None:
                return None
            if item.expires <= time.monotonic():
                self._drop(url)
                return None
            self._items.move_to_end(url)
            self.hits += 1
            return item

    def put(
        self,
        method: str,
        resource_type: str,
        url: str,
        status: int,
        headers: dict[str, str],
        body: bytes,
    ) -> bool:
        if method != "GET" or resource_type not in CACHEABLE_TYPES or status != 200:
            return False
        ttl = freshness(headers)
        if ttl is None or len(body) > self.max_bytes // 8:
            return False
        with self._lock:
            if url in self._items:
                self._drop(url)
            self._items[url] = CachedAsset(status, dict(headers), body, time.monotonic() + ttl)
            self._bytes += len(body)
            while self._bytes > self.max_bytes and self._items:
                self._drop(next(iter(self._items)))
        return True

    def _drop(self, url: str) -> None:
        item = self._items.pop(url)
        self._bytes -= len(item.body)
