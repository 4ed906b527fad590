"""The adapter registry: one place, one name per platform family.

Third parties can add an adapter through the `observatoire.adapters` entry point group;
a name registered twice is refused rather than silently replaced.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from observatoire.adapters.base import Adapter, ProbeContext

_REGISTRY: dict[str, type[Adapter]] = {}
_entry_points_loaded = False


class DuplicateAdapter(ValueError):
    pass


def register(cls: type[Adapter]) -> type[Adapter]:
    name = getattr(cls, "name", None)
    if not name or not getattr(cls, "version", None):
        raise ValueError(f"{cls.__name__} needs a `name` and a `version`")
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise DuplicateAdapter(
            f"adapter name {name!r} is already registered by {existing.__module__}"
        )
    _REGISTRY[name] = cls
    return cls


def _load_builtin() -> None:
    from observatoire.adapters import (  # noqa: F401
        demarches_simplifiees,
        eappointment,
        legacy_booking,
        rdv_prefecture,
        scripted,
    )


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group="observatoire.adapters"):
        register(ep.load())


def registry() -> dict[str, type[Adapter]]:
    _load_builtin()
    _load_entry_points()
    return dict(_REGISTRY)


def get_adapter(name: str) -> Adapter:
    adapters = registry()
    if name not in adapters:
        raise KeyError(f"no adapter for platform {name!r} (have: {', '.join(sorted(adapters))})")
    return adapters[name]()


__all__ = ["Adapter", "DuplicateAdapter", "ProbeContext", "get_adapter", "register", "registry"]
