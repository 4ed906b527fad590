"""Database: SQLAlchemy models, engine set-up and the migration check."""

from observatoire.db.engine import DatabaseNotReady, make_engine, require_migrated
from observatoire.db.models import Base, Probe, TargetRow

__all__ = ["Base", "DatabaseNotReady", "Probe", "TargetRow", "make_engine", "require_migrated"]
