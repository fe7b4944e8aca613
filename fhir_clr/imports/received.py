"""A received file, kept as it arrived: a ``Binary`` with the bytes and a ``DocumentReference`` describing it
(kind, received time, size, SHA-256). The hash identifies the file, so receiving the same bytes again finds
the first copy instead of storing another. The DocumentReference's ``docStatus`` moves from ``preliminary``
(received) to ``final`` (processed); for an RTF the CLR rules turn both moments into the processing clock.

A file a provider sends is that provider's record: the DocumentReference names its Organization as ``author`` and
each Binary (the file, the rejected rows) names it as ``securityContext``, which is what lets that organization,
and no other, read them back. The plan's files name neither. A file is found again by its hash among the
receiving organization's own files only, so the same bytes from two organizations are two records."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from fhir_clr.clr.codes import CodeList
from fhir_clr.engine.engine import Engine
from fhir_clr.imports.caller import restricted_organization

FILE_HASH_SYSTEM = "http://fhir-clr.org/fhir/sid/file-sha256"
ROW_SOURCE = re.compile(r"^DocumentReference/(?P<document>[A-Za-z0-9\-.]{1,64})#row-(?P<row>\d+)$")
"""``meta.source`` of a version written by a file row: the received file and the row number."""
RECEIVED, PROCESSED = "preliminary", "final"


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """The stored file: its DocumentReference id, hash, and whether an earlier import already finished it."""

    document_id: str
    sha256: str
    processed: bool
    first_receipt: bool


def _document(data: bytes, sha256: str, kind: str, file_types: CodeList, filename: str | None, content_type: str,
              binary_id: str, received: datetime, sender: str | None) -> dict[str, Any]:
    attachment: dict[str, Any] = {"contentType": content_type, "url": f"Binary/{binary_id}", "size": len(data),
                                  "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),
                                  "creation": received.isoformat()}
    if filename:
        attachment["title"] = filename
    document = {"resourceType": "DocumentReference", "status": "current", "docStatus": RECEIVED,
                "identifier": [{"system": FILE_HASH_SYSTEM, "value": sha256}],
                "type": {"coding": [file_types.coding(kind)]},
                "date": received.isoformat(), "content": [{"attachment": attachment}]}
    if sender is not None:
        document["author"] = [{"reference": sender}]
    return document


def row_source(document_id: str, row: int) -> str:
    """The ``meta.source`` of a resource version written by row ``row`` of the received file ``document_id``."""
    return f"DocumentReference/{document_id}#row-{row}"


async def _keep_bytes(engine: Engine, data: bytes, content_type: str) -> str:
    """Store ``data`` as a new Binary (the sending provider's, when a provider sent it); its id."""
    binary: dict[str, Any] = {"resourceType": "Binary", "contentType": content_type,
                              "data": base64.b64encode(data).decode("ascii")}
    sender = restricted_organization(engine)
    if sender is not None:
        binary["securityContext"] = {"reference": sender}
    created = await engine.create("Binary", binary)
    assert created.stored is not None
    return created.stored.resource_id


async def keep_received_file(engine: Engine, data: bytes, *, kind: str, filename: str | None, content_type: str,
                             received: datetime) -> ReceivedFile:
    """Store ``data`` (a ``kind`` file: mif, asf or rtf) unless the same bytes were received before."""
    sha256 = hashlib.sha256(data).hexdigest()
    sender = restricted_organization(engine)
    params = [("identifier", f"{FILE_HASH_SYSTEM}|{sha256}"),
              ("author", sender) if sender is not None else ("author:missing", "true")]
    criteria = "&".join(f"{name}={value}" for name, value in params)
    found = await engine.planner.find("DocumentReference", params,
                                      restriction=engine.access.restriction("DocumentReference"))
    if found and found[0].body is not None:
        existing = orjson.loads(found[0].body)
        return ReceivedFile(found[0].resource_id, sha256, existing.get("docStatus") == PROCESSED, False)
    binary_id = await _keep_bytes(engine, data, content_type)
    document = _document(data, sha256, kind, engine.codes["file-types"], filename, content_type, binary_id, received,
                         sender)
    result = await engine.create("DocumentReference", document, criteria)
    assert result.stored is not None
    return ReceivedFile(result.stored.resource_id, sha256, False, result.status == 201)


REJECTS_TITLE = "rejected-rows.csv"


async def mark_processed(engine: Engine, document_id: str, summary: str, rejects: str | None = None) -> None:
    """Record that the file's rows have all been processed (``docStatus`` final, with a summary) and keep the
    rejected rows (``rejects``, CSV) as a second attachment, so the rejects stay downloadable later."""
    current = await engine.read("DocumentReference", document_id)
    assert current.body is not None
    document = orjson.loads(current.body)
    if document.get("docStatus") == PROCESSED and document.get("description") == summary:
        return
    content = [c for c in document.get("content", ()) if (c.get("attachment") or {}).get("title") != REJECTS_TITLE]
    if rejects:
        data = rejects.encode()
        binary_id = await _keep_bytes(engine, data, "text/csv")
        content.append({"attachment": {"contentType": "text/csv", "url": f"Binary/{binary_id}",
                                       "title": REJECTS_TITLE, "size": len(data)}})
    await engine.update("DocumentReference", document_id, {**document, "docStatus": PROCESSED,
                                                          "description": summary, "content": content})
