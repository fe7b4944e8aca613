"""A SQLite connection stand-in for plan tests: it records the query plan of every statement it runs."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

BIG_TABLES = ("resources", "versions", "outbox", "match_keys", "records", "idx_token", "idx_reference", "idx_date",
              "idx_string", "idx_number", "idx_quantity", "idx_uri")
"""Tables that grow with the store: no hot statement may read one of them from end to end."""


class Explaining:
    """Runs statements on ``conn`` after recording ``EXPLAIN QUERY PLAN`` of each: ``statements`` holds every
    statement with its plan's detail lines, ``plans`` all the lines."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.plans: list[str] = []
        self.statements: list[tuple[str, list[str]]] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """Record the plan of ``sql`` (a query or a data change), then run it."""
        if sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            plan = [row[3] for row in self.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            self.plans += plan
            self.statements.append((sql, plan))
        return self.conn.execute(sql, params)

    def full_scans(self) -> list[str]:
        """The plan lines that read a big table from end to end (``SCAN <table or its alias>``), each with the
        start of its statement."""
        return [f"{line}  <-  {sql[:200]}" for sql, plan in self.statements for line in plan
                if _scanned_table(sql, line) in BIG_TABLES]

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.plans.clear()
        self.statements.clear()


def _scanned_table(sql: str, line: str) -> str | None:
    """The table a ``SCAN x`` plan line reads (``x`` is a table, or an alias declared as ``<table> [AS] x``)."""
    words = line.split()
    if len(words) < 2 or words[0] != "SCAN":
        return None
    name = words[1]
    if name in BIG_TABLES:
        return name
    declared = re.search(rf"\b({'|'.join(BIG_TABLES)})\s+(?:AS\s+)?{re.escape(name)}\b", sql)
    return declared.group(1) if declared else None
