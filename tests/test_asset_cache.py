"""What the robot's browser may reuse between probes: only what any browser would."""

from __future__ import annotations

import time

from observatoire.robot.asset_cache import MAX_TTL, AssetCache, freshness

JS = "https://www.example.gouv.fr/app.js"


def test_freshness_follows_cache_control() -> None:
    assert freshness({"Cache-Control": "public, max-age=600"}) == 600
    assert freshness({"cache-control": "max-age=99999999"}) == MAX_TTL
    assert freshness({}) == 3600
    for refused in ("no-store", "no-cache", "private, max-age=60", "max-age=0"):
        assert freshness({"Cache-Control": refused}) is None, refused
    assert freshness({"Set-Cookie": "a=b"}) is None
    assert freshness({"Vary": "*"}) is None
    assert freshness({"Expires": "Thu, 01 Jan 1970 00:00:00 GMT"}) is None


def test_only_static_assets_are_kept() -> None:
    cache = AssetCache()
    headers = {"Cache-Control": "max-age=60"}
    assert cache.put("GET", "script", JS, 200, headers, b"x")
    assert cache.get("GET", "script", JS) is not None
    # Documents, XHR and images (a captcha is an image) are never served from cache.
    for kind in ("document", "xhr", "fetch", "image"):
        assert not cache.put("GET", kind, JS + kind, 200, headers, b"x")
        assert cache.get("GET", kind, JS) is None
    assert not cache.put("POST", "script", JS + "p", 200, headers, b"x")
    assert not cache.put("GET", "script", JS + "404", 404, headers, b"x")
    assert cache.hits == 1


def test_expiry_and_eviction() -> None:
    cache = AssetCache(max_bytes=80)
    cache.put("GET", "stylesheet", "a", 200, {"Cache-Control": "max-age=1"}, b"1" * 10)
    cache._items["a"] = cache._items["a"].__class__(200, {}, b"1" * 10, time.monotonic() - 1)
    assert cache.get("GET", "stylesheet", "a") is None  # expired
    for name in "bcdefghij":
        cache.put("GET", "stylesheet", name, 200, {}, b"2" * 10)
    assert cache.get("GET", "stylesheet", "b") is None  # least recently used, evicted
    assert cache.get("GET", "stylesheet", "j") is not None
