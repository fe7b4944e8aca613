"""The embedded SQLite adapter of the storage port (the default store): :class:`SqliteStore`.

Its modules are internals of the adapter: ``adapter`` (the port's methods and threading), ``schema``,
``compiler`` and ``search`` (Query AST to SQL and keyset pages), ``reads``, ``scan``, ``writer`` and ``writes``
(group commit), ``pending`` (the rows of one transaction) and ``records`` (records and leases)."""

from fhir_clr.store.sqlite.adapter import SqliteStore

__all__ = ["SqliteStore"]
