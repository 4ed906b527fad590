"""The `dossier` command as a library: establish a target's evidence dossier with the
operator's settings, or re-check one, and say so in the words the command prints.

`dossier.py` builds and verifies the dossier itself; this module only wires the
settings in (the issuer, the target's opening hours from the targets file) and reads
back the manifest's figures for the closing lines. The command line parses the
options, calls one function here and prints what it returns, so a test or a script
can do the same without a shell.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import Engine

from observatoire.publish.dossier import (
    SIMULATED_MARK,
    DossierError,
    Issuer,
    build_dossier,
    opening_hours_of,
    plural,
    verify,
)
from observatoire.record.evidence import EvidenceStore
from observatoire.settings import Settings

MANIFEST = "manifest.json"


def _manifest_sha256(folder: Path) -> str:
    """sha256 of the folder's manifest.json: the one hash a person notes down to show
    later that the manifest (and so every file it lists) has not changed."""
    return hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()


def _count(manifest: dict[str, object], key: str) -> int:
    """An integer figure of a manifest this build has just written."""
    value = manifest.get(key)
    if not isinstance(value, int):
        found = json.dumps(value, ensure_ascii=False)
        raise DossierError(f"{MANIFEST}: {key}: un nombre était attendu, pas {found}")
    return value


def _items(manifest: dict[str, object], key: str) -> list[object]:
    """A list of a manifest this build has just written."""
    value = manifest.get(key)
    if not isinstance(value, list):
        found = json.dumps(value, ensure_ascii=False)
        raise DossierError(f"{MANIFEST}: {key}: une liste était attendue, pas {found}")
    return value


@dataclass(frozen=True)
class Established:
    """A dossier just written into `out`, with its manifest and the manifest's hash."""

    out: Path
    manifest: dict[str, object]
    manifest_sha256: str

    @property
    def simulated(self) -> bool:
        """Built from the simulator's data: never to be passed off as a real dossier."""
        return bool(self.manifest.get("simulated"))

    def summary(self) -> str:
        """The closing lines: SIMULATED_MARK first for simulated data, then where the
        PDF is, the figures and both fingerprints."""
        weeks = len(_items(self.manifest, "iso_weeks_with_failure"))
        return (
            (f"{SIMULATED_MARK}\n" if self.simulated else "")
            + f"Dossier établi : {self.out / 'dossier.pdf'} — "
            f"{plural(_count(self.manifest, 'attempts'), 'tentative')}, dont "
            f"{_count(self.manifest, 'failed_attempts')} sans aucune possibilité de "
            "rendez-vous, sur "
            f"{plural(weeks, 'semaine calendaire', 'semaines calendaires')}.\n"
            f"Empreinte du dossier : {self.manifest['dossier_fingerprint']}\n"
            f"Empreinte sha256 de manifest.json : {self.manifest_sha256} (notez-la : elle "
            "permet de montrer plus tard que le manifeste n'a pas changé)"
        )


def establish_dossier(
    engine: Engine,
    evidence: EvidenceStore,
    settings: Settings,
    target_id: str,
    out: Path,
    since: date | None = None,
    until: date | None = None,
    *,
    contributor: str | None = None,
    annex: Path | None = None,
    piece: str = "",
    opening_hours: str | None = None,
) -> Established:
    """Build the dossier of `target_id` into `out` (see dossier.build_dossier), issued by
    the settings' association, contact and operator, signed with the robot's own
    User-Agent; the opening hours default to the target's in the targets file.
    Raises DossierError with a message for the operator."""
    manifest = build_dossier(
        engine,
        evidence,
        target_id,
        out,
        since,
        until,
        settings.user_agent,
        contributor=contributor,
        annex=annex,
        issuer=Issuer(
            settings.association, settings.contact_url, settings.operator, settings.site_url
        ),
        opening_hours=opening_hours or opening_hours_of(settings.targets_file, target_id),
        piece=piece,
    )
    return Established(out, manifest, _manifest_sha256(out))


@dataclass(frozen=True)
class Verification:
    """A dossier re-checked: its problems (none: intact) and, when intact, the hash of
    its manifest.json to compare with the one noted when it was established."""

    folder: Path
    problems: list[str]
    manifest_sha256: str | None

    @property
    def intact(self) -> bool:
        return not self.problems

    def verdict(self) -> str:
        """The sentence after the problems, or the confirmation of an intact dossier,
        in French: a clerk or a lawyer reads it."""
        if self.problems:
            return (
                f"{self.folder}: {plural(len(self.problems), 'problème')} ; le dossier a été "
                "modifié depuis son établissement : il ne correspond plus à son manifeste"
            )
        return (
            f"{self.folder}: dossier intact ; chaque fichier correspond à manifest.json "
            f"(empreinte sha256 de manifest.json : {self.manifest_sha256})"
        )


def check_dossier(folder: Path) -> Verification:
    """Re-check a dossier (see dossier.verify). Raises DossierError when its manifest
    cannot be read at all."""
    problems = verify(folder)
    return Verification(folder, problems, None if problems else _manifest_sha256(folder))
