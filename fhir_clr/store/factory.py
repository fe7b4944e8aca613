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

    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
    elif url:
        raise StoreUnavailable("FHIR_CLR_STORE_URL must start with sqlite:/// or mongodb://")
    else:
        path = settings.data_dir / "fhir-clr.sqlite3"
    return SqliteStore(path, synchronous=settings.sqlite_synchronous, read_threads=settings.sqlite_read_threads)
