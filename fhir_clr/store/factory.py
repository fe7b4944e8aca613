"""Choose and build the store adapter from settings (``FHIR_CLR_STORE_URL``)."""

from __future__ import annotations

from pathlib import Path

from fhir_clr.config import Settings
from fhir_clr.store.port import Store, StoreUnavailable


def build_store(settings: Settings) -> Store:
    """The configured store: embedded SQLite (default, under the data directory) or MongoDB."""
    url = settings.store_url or ""
    if url.startswith(("mongodb://", "mongodb+srv://")):
        try:
            from fhir_clr.store.mongo import MongoStore, database_name
        except ImportError as exc:  # pragma: no cover - only before the adapter exists
            raise StoreUnavailable(f"MongoDB store is not available: {exc}") from exc
        return MongoStore(url, database_name(url, settings.mongo_db))
    from fhir_clr.store.sqlite import SqliteStore

    return SqliteStore(_sqlite_path(settings), synchronous=settings.sqlite_synchronous,
                       read_threads=settings.sqlite_read_threads)


def build_log_store(settings: Settings) -> Store | None:
    """A store of its own for append-only logs (the audit trail), or None to keep them in the main store.
    With the embedded store: a second SQLite file beside the FHIR data (``<name>-log.sqlite3``), so that log
    appends never change the FHIR data file, whose readers would otherwise drop their page caches at every
    append. MongoDB keeps logs in the main database (their own documents; nothing to invalidate)."""
    if (settings.store_url or "").startswith(("mongodb://", "mongodb+srv://")):
        return None
    from fhir_clr.store.sqlite import SqliteStore

    path = _sqlite_path(settings)
    return SqliteStore(path.with_name(f"{path.stem}-log.sqlite3"), synchronous=settings.sqlite_synchronous,
                       read_threads=1)


def _sqlite_path(settings: Settings) -> Path:
    url = settings.store_url or ""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if url:
        raise StoreUnavailable("FHIR_CLR_STORE_URL must start with sqlite:/// or mongodb://")
    return settings.data_dir / "fhir-clr.sqlite3"
