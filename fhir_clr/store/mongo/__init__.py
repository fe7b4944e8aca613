"""The MongoDB adapter of the storage port (``FHIR_CLR_STORE_URL=mongodb://…``): :class:`MongoStore`.

Its modules are internals of the adapter: ``adapter`` (the port's methods and transactions), ``schema``,
``docs`` (document shapes), ``filters`` (Query AST to filters), ``keyset`` (paging), ``tx``, ``records`` and
``lease``."""

from fhir_clr.store.mongo.adapter import MongoStore, database_name

__all__ = ["MongoStore", "database_name"]
