"""Content-addressed evidence files: what the robot saw, named by its sha256.

Files are written to a temporary name, flushed to disk, then renamed: a probe row is
only ever written after its evidence exists, so no row can point at a missing file.
The sha256 is of the raw bytes as received (before gzip), so anyone can re-check it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from pathlib import Path

KINDS = {"html": ".html.gz", "png": ".png"}


class EvidenceStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str, kind: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}{KINDS[kind]}"

    def put(self, data: bytes, kind: str) -> str:
        """Store `data` (idempotent) and return its sha256."""
        if kind not in KINDS:
            raise ValueError(f"unknown evidence kind {kind!r}")
        digest = hashlib.sha256(data).hexdigest()
        final = self.path_for(digest, kind)
        if final.exists():
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
        payload = gzip.compress(data, compresslevel=6, mtime=0) if kind == "html" else data
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, sha256: str, kind: str) -> bytes:
        raw = self.path_for(sha256, kind).read_bytes()
        return gzip.decompress(raw) if kind == "html" else raw

    def verify(self, sha256: str, kind: str) -> bool:
        try:
            return hashlib.sha256(self.get(sha256, kind)).hexdigest() == sha256
        except (FileNotFoundError, OSError, gzip.BadGzipFile):
            return False
