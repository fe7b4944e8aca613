"""Records of the MongoDB store (see ``Record`` in the port): one ``records`` document per record,
``{_id: kind + NUL + key, kind, key, rev, doc}``, listed through the unique ``(kind, key)`` index in key order.
A batch of writes is one transaction: every precondition is checked first (RecordConflict aborts it), then
each write is a compare-and-swap on ``rev``, so a concurrent writer makes the transaction retry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_clr.store.mongo.tx import RetryWrite
from fhir_clr.store.port import Record, RecordConflict, RecordWrite


def record_id(kind: str, key: str) -> str:
    """The document ``_id`` of a record."""
    return f"{kind}\x00{key}"


def _record(doc: dict[str, Any]) -> Record:
    return Record(doc["kind"], doc["key"], doc["doc"], doc["rev"])


async def get_record(collection: Any, kind: str, key: str) -> Record | None:
    """One record."""
    found = await collection.find_one({"_id": {"$eq": record_id(kind, key)}})
    return _record(found) if found else None


async def list_records(collection: Any, kind: str, prefix: str, after: str | None, limit: int) -> list[Record]:
    """Records of ``kind`` whose key starts with ``prefix``, after ``after``, in key order."""
    bounds: dict[str, str] = {"$gt": after} if after is not None and after >= prefix else {"$gte": prefix}
    if prefix:
        bounds["$lt"] = prefix + "\U0010ffff"
    cursor = collection.find({"kind": {"$eq": kind}, "key": bounds}, sort=[("key", 1)], limit=limit)
    return [_record(d) for d in await cursor.to_list(None) if d["key"].startswith(prefix)]


async def write_records(collection: Any, writes: Sequence[RecordWrite], session: Any) -> list[Record | None]:
    """Apply ``writes`` inside the caller's transaction ``session``."""
    ids = [record_id(w.kind, w.key) for w in writes]
    found = await collection.find({"_id": {"$in": ids}}, {"rev": 1}, session=session).to_list(None)
    revs = {d["_id"]: d["rev"] for d in found}
    for write, rid in zip(writes, ids, strict=True):
        if write.expected_rev is not None and write.expected_rev != revs.get(rid, 0):
            raise RecordConflict(write.kind, write.key, write.expected_rev, revs.get(rid, 0))
    out: list[Record | None] = []
    for write, rid in zip(writes, ids, strict=True):
        current = revs.get(rid, 0)
        if write.doc is None:
            await collection.delete_one({"_id": {"$eq": rid}}, session=session)
            revs.pop(rid, None)
            out.append(None)
            continue
        document = {"_id": rid, "kind": write.kind, "key": write.key, "rev": current + 1, "doc": write.doc}
        if current == 0:
            await collection.insert_one(document, session=session)
        else:
            result = await collection.replace_one({"_id": rid, "rev": current}, document,
                                                  session=session)
            if result.matched_count != 1:
                raise RetryWrite(rid)
        revs[rid] = current + 1
        out.append(Record(write.kind, write.key, write.doc, current + 1))
    return out
