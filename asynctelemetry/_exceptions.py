"""The exceptions asynctelemetry raises.

Every one derives from :class:`TelemetryError`, and from a builtin where callers already catch it::

    TelemetryError
    ├── ConfigError (ValueError)            bad argument, URL, option or price file
    ├── MissingDependencyError (ImportError) an optional extra is not installed
    ├── StoreClosedError                     a store, tracer or collector used after aclose()
    ├── StoreError                           the database failed (disk full, locked, corrupt)
    │   └── SchemaVersionError               the file was written by a newer asynctelemetry
    └── ExportError                          an exporter gave up on a batch
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ExportError",
    "MissingDependencyError",
    "SchemaVersionError",
    "StoreClosedError",
    "StoreError",
    "TelemetryError",
]


class TelemetryError(Exception):
    """Root of every error raised by asynctelemetry itself."""


class ConfigError(TelemetryError, ValueError):
    """An argument, URL, option or file given to asynctelemetry is not valid."""


class MissingDependencyError(TelemetryError, ImportError):
    """An optional extra is needed; the message is the pip command that installs it."""

    def __init__(self, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs an optional extra: pip install 'asynctelemetry[{extra}]'"
        )
        self.extra = extra


class StoreClosedError(TelemetryError):
    """A store, tracer, exporter or collector was used after it was closed."""


class StoreError(TelemetryError):
    """The store's database failed (disk full, locked past the retry budget, corrupt file)."""


class SchemaVersionError(StoreError):
    """The database file was written by a newer version of asynctelemetry."""


class ExportError(TelemetryError):
    """An exporter could not deliver a batch and gave up on it."""


def require_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) >= ``minimum``, else :class:`ConfigError`."""
    if value.__class__ is not int or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def require(module: str, extra: str, feature: str) -> object:
    """Import an optional dependency, or raise :class:`MissingDependencyError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(extra, feature) from exc
