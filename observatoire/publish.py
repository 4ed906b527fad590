"""Atomic publication of a folder (the site): build aside, then swap a symlink.

`out` becomes a symlink to a versioned sibling folder; the swap is a single rename, so
a reader (or a web server) sees either the old site or the new one, never half of each,
and a failed build leaves the previous site untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

KEEP_VERSIONS = 2


def publish_dir(out: Path, build: Callable[[Path], None]) -> Path:
    out = Path(out).absolute()
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.build-"))
    try:
        build(work)
        work.chmod(0o755)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    version = parent / f".{out.name}.v{time.time_ns()}"
    work.rename(version)
    if out.exists() and not out.is_symlink():
        # First publication over a plain folder: keep it as an old version.
        out.rename(parent / f".{out.name}.v0-previous")
    link = parent / f".{out.name}.link-{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(version.name)
    os.replace(link, out)
    _prune(parent, out.name, keep=version)
    return version


def _prune(parent: Path, name: str, keep: Path) -> None:
    versions = sorted(
        (p for p in parent.glob(f".{name}.v*") if p.is_dir() and p != keep),
        key=lambda p: p.stat().st_mtime,
    )
    for old in versions[: max(0, len(versions) - (KEEP_VERSIONS - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def mirror_files(source: Path, target: Path, skip: frozenset[str] = frozenset()) -> list[Path]:
    """Copy the regular files of `source` into `target`, each replaced atomically (a
    reader never sees half a file). Used to expose the site's open data, already
    written by the site build, as the export folder without computing it twice."""
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for item in sorted(source.iterdir()):
        if not item.is_file() or item.name in skip:
            continue
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{item.name}.")
        os.close(fd)
        try:
            shutil.copyfile(item, tmp)
            os.replace(tmp, target / item.name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        copied.append(target / item.name)
    return copied
