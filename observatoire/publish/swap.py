"""Atomic publication of a folder (the site): build aside, then swap a symlink.

`out` becomes a symlink to a versioned sibling folder; the swap is a single rename, so
a reader (or a web server) sees either the old site or the new one, never half of each,
and a failed build leaves the previous site untouched.

Publishing never destroys what it did not make. Every folder it builds carries a marker
file (`.observatoire-site`); it replaces `out` only when `out` is absent, an empty folder,
a folder with that marker, or a symlink to one of its own versions, and it prunes only
marked versions. Anything else (an operator pointing `--out` at the data folder, say) is
refused with PublishRefused before anything is written: an earlier version renamed such a
folder aside and deleted it at the next build.

Everything published is world-readable (files 0644, folders 0755): a web server running
as another user must be able to serve it, screenshots copied from the evidence store
(written 0600 there) included.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

KEEP_VERSIONS = 2
MARKER = ".observatoire-site"
MARKER_TEXT = (
    "Dossier publié par observatoire (site statique). Ce fichier l'identifie : la "
    "publication suivante peut le remplacer. N'y rangez rien d'autre.\n"
)


class PublishRefused(ValueError):
    """`out` holds something publishing did not create: nothing was written."""


def _marked(folder: Path, marker: str = MARKER) -> bool:
    return folder.is_dir() and (folder / marker).is_file()


def _is_own_version(out: Path, resolved: Path) -> bool:
    """A version folder this module created next to `out` (marked, or from a version of
    observatoire that predates the marker: `.{name}.v<digits>`)."""
    if resolved.parent != out.parent.resolve():
        return _marked(resolved)
    name = resolved.name
    return _marked(resolved) or (
        name.startswith(f".{out.name}.v") and name[len(out.name) + 3 :].split("-")[0].isdigit()
    )


def check_target(out: Path, marker: str = MARKER) -> None:
    """Raise PublishRefused unless publishing may replace `out`."""
    out = Path(out).absolute()
    if out.is_symlink():
        resolved = out.resolve()
        if resolved.is_dir() and _is_own_version(out, resolved):
            return
        raise PublishRefused(
            f"{out} is a symlink to {resolved}, which observatoire did not create (no "
            f"{marker} file): refusing to replace it; choose a new or empty folder"
        )
    if not out.exists():
        return
    if not out.is_dir():
        raise PublishRefused(f"{out} exists and is not a folder: refusing to replace it")
    if _marked(out, marker) or not any(out.iterdir()):
        return
    raise PublishRefused(
        f"{out} is not empty and was not created by observatoire (no {marker} file): "
        "refusing to write into it, rename or delete it; choose a new or empty folder"
    )


def make_public(root: Path) -> None:
    """Folders 0755, files 0644, under `root` (symlinks left alone)."""
    root = Path(root)
    root.chmod(0o755)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(0o755)
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink() and stat.S_ISREG(path.lstat().st_mode):
                path.chmod(0o644)


def publish_dir(out: Path, build: Callable[[Path], None]) -> Path:
    out = Path(out).absolute()
    check_target(out)
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.build-"))
    try:
        build(work)
        (work / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        make_public(work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    version = parent / f".{out.name}.v{time.time_ns()}"
    work.rename(version)
    check_target(out)  # again, just before the swap: the folder may have changed
    if out.exists() and not out.is_symlink():
        if any(out.iterdir()):
            # A plain folder of ours (marked): kept as an old version, pruned later.
            out.rename(parent / f".{out.name}.v{time.time_ns()}-previous")
        else:
            out.rmdir()
    link = parent / f".{out.name}.link-{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(version.name)
    os.replace(link, out)
    _prune(parent, out.name, keep=version)
    return version


def _prune(parent: Path, name: str, keep: Path) -> None:
    """Delete old versions beyond KEEP_VERSIONS: only marked ones, never another folder."""
    versions = sorted(
        (
            p
            for p in parent.glob(f".{name}.v*")
            if p.is_dir() and not p.is_symlink() and p != keep and _marked(p)
        ),
        key=lambda p: p.stat().st_mtime,
    )
    for old in versions[: max(0, len(versions) - (KEEP_VERSIONS - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def mirror_files(source: Path, target: Path, skip: frozenset[str] = frozenset()) -> list[Path]:
    """Copy the regular files of `source` into `target`, each replaced atomically (a
    reader never sees half a file), world-readable."""
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for item in sorted(source.iterdir()):
        if not item.is_file() or item.name in skip:
            continue
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{item.name}.")
        os.close(fd)
        try:
            shutil.copyfile(item, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target / item.name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        copied.append(target / item.name)
    return copied
