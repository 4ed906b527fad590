"""Evidence files: content-addressed, atomic, verifiable."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from observatoire.record.evidence import EvidenceStore


def test_put_get_verify(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    page = b"<html>Il n'existe plus de plage horaire libre</html>"
    digest = store.put(page, "html")
    assert digest == hashlib.sha256(page).hexdigest()
    path = store.path_for(digest, "html")
    assert path.name == f"{digest}.html.gz"
    assert gzip.decompress(path.read_bytes()) == page
    assert store.get(digest, "html") == page
    assert store.verify(digest, "html")
    assert store.put(page, "html") == digest  # idempotent
    assert not list(path.parent.glob(".tmp-*"))


def test_tampering_is_detected(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    digest = store.put(b"original", "html")
    store.path_for(digest, "html").write_bytes(gzip.compress(b"altered"))
    assert not store.verify(digest, "html")
    assert not store.verify("0" * 64, "png")
