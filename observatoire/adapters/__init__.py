"""The adapters, one module per booking platform family.

Each module defines its adapter class and, next to it, its registry entry `PLATFORM`
(observatoire.platforms.Platform). The registry itself, built-ins and the
`observatoire.adapters` entry points, is `observatoire.platforms.PLATFORMS`: these two
functions are views of it by adapter.
"""

from __future__ import annotations

from observatoire.adapters.base import Adapter, ProbeContext
from observatoire.platforms import PLATFORMS, DuplicatePlatform, platform


def registry() -> dict[str, type[Adapter]]:
    """Platform name -> adapter class, for every registered platform."""
    return {name: entry.adapter for name, entry in PLATFORMS.items()}


def get_adapter(name: str) -> Adapter:
    """An adapter for platform `name`; KeyError naming the known platforms."""
    return platform(name).adapter()


__all__ = ["Adapter", "DuplicatePlatform", "ProbeContext", "get_adapter", "registry"]
