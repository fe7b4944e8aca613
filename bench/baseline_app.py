"""The bare baseline for bench/crud.py: a minimal ASGI app that stores the same JSON in SQLite with no FHIR
logic (no validation, no index extraction, no versions, no search parameters). Our server's throughput is
reported as a fraction of this one's."""

from __future__ import annotations

import os
import sqlite3
import uuid
from typing import Any

import orjson

DB_PATH = os.environ.get("BASELINE_DB", "/tmp/fhir-clr-baseline.sqlite3")
db = sqlite3.connect(DB_PATH, isolation_level=None, check_same_thread=False)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS res (id TEXT PRIMARY KEY, owner TEXT, status TEXT, body BLOB)")
db.execute("CREATE INDEX IF NOT EXISTS res_owner ON res(owner, status)")


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _fields(doc: dict) -> tuple[str, str]:
    return doc.get("owner", {}).get("reference", ""), doc.get("status", "")


async def app(scope: dict, receive: Any, send: Any) -> None:
    """Task create (POST /Task), read (GET /Task/id), update (PUT /Task/id), search (GET /Task?owner=…)."""
    if scope["type"] != "http":
        return
    method, parts = scope["method"], [p for p in scope["path"].split("/") if p]
    if method == "POST" and len(parts) == 1:
        doc = orjson.loads(await _body(receive))
        doc["id"] = str(uuid.uuid4())
        body = orjson.dumps(doc)
        db.execute("INSERT INTO res VALUES (?,?,?,?)", (doc["id"], *_fields(doc), body))
        await _send(send, 201, body)
    elif method == "GET" and len(parts) == 2:
        row = db.execute("SELECT body FROM res WHERE id=?", (parts[1],)).fetchone()
        await _send(send, 200 if row else 404, row[0] if row else b"{}")
    elif method == "PUT" and len(parts) == 2:
        doc = orjson.loads(await _body(receive))
        body = orjson.dumps(doc)
        db.execute("UPDATE res SET owner=?, status=?, body=? WHERE id=?", (*_fields(doc), body, parts[1]))
        await _send(send, 200, body)
    elif method == "GET" and len(parts) == 1:
        query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
        rows = db.execute("SELECT body FROM res WHERE owner=? AND status=? LIMIT 20",
                          (query.get("owner", "").replace("%2F", "/"), query.get("status", ""))).fetchall()
        await _send(send, 200, b'{"entry":[' + b",".join(r[0] for r in rows) + b"]}")
    else:
        await _send(send, 404, b"{}")
