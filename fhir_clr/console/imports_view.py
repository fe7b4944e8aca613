"""The imports pages: every received MIF, RTF and ASF file (newest first, paged) with its row counts, and one
file's details with its rejected rows and the reasons. Files are the DocumentReferences the import job keeps;
counts come from the summary it records, rejected rows from the CSV attachment it keeps beside the file."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_clr.clr.codes import CodeList
from fhir_clr.engine.engine import Engine
from fhir_clr.errors import FhirError
from fhir_clr.imports.received import FILE_HASH_SYSTEM, PROCESSED, REJECTS_TITLE
from fhir_clr.imports.results import parse_summary, read_rejects_csv
from fhir_clr.search.parse import PAGE_TOKEN

PAGE_SIZE = 25
MAX_REJECT_LINES = 1000
"""Reject lines shown on a file's page; the download always has them all."""


@dataclass(slots=True)
class ReceivedFileLine:
    """One received file as listed."""

    id: str
    received: str
    kind: str
    name: str
    size: int
    processed: bool
    counts: dict[str, int] | None
    summary: str
    rejects_binary: str | None


@dataclass(slots=True)
class ImportsPage:
    """The files of one page, newest first."""

    files: list[ReceivedFileLine]
    kind: str
    kinds: list[tuple[str, str]]
    next_token: str | None
    prev_token: str | None


@dataclass(slots=True)
class ImportDetail:
    """One file and its rejected rows."""

    file: ReceivedFileLine
    sha256: str
    rejects: list[dict[str, str]] = field(default_factory=list)
    rejects_total: int = 0


def _attachments(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [c.get("attachment") or {} for c in document.get("content", ()) if isinstance(c, dict)]


def file_line(document: dict[str, Any], file_types: CodeList) -> ReceivedFileLine:
    """The listing line of a received file's DocumentReference (its kind one of ``file_types``)."""
    attachments = _attachments(document)
    original = next((a for a in attachments if a.get("title") != REJECTS_TITLE), {})
    rejects = next((a for a in attachments if a.get("title") == REJECTS_TITLE), None)
    kind = file_types.code_of(document.get("type")) or ""
    summary = str(document.get("description") or "")
    return ReceivedFileLine(document["id"], str(document.get("date", "")), kind.upper(),
                            str(original.get("title") or "(unnamed)"), int(original.get("size") or 0),
                            document.get("docStatus") == PROCESSED, parse_summary(summary), summary,
                            str(rejects["url"]).removeprefix("Binary/") if rejects and rejects.get("url") else None)


async def imports_page(engine: Engine, kind: str, page_token: str | None) -> ImportsPage:
    """One page of received files (all kinds, or ``kind``: mif, asf or rtf), newest first."""
    file_types = engine.codes["file-types"]
    kinds = [(code, concept.display) for code, concept in file_types.concepts.items()]
    wanted = kind if kind in file_types.concepts else ",".join(file_types.concepts)
    params = [("type", ",".join(f"{file_types.system}|{k}" for k in wanted.split(","))),
              ("identifier", f"{FILE_HASH_SYSTEM}|"), ("_sort", "-date"), ("_count", str(PAGE_SIZE))]
    if page_token:
        params.append((PAGE_TOKEN, page_token))
    result = await engine.search("DocumentReference", params)
    files = [file_line(orjson.loads(m.body), file_types) for m in result.matches if m.body is not None]
    return ImportsPage(files, kind if kind in file_types.concepts else "", kinds, result.next_token,
                       result.prev_token)


async def rejects_text(engine: Engine, line: ReceivedFileLine) -> str:
    """The rejected rows CSV kept for a file ('' when none were rejected)."""
    if line.rejects_binary is None:
        return ""
    binary = orjson.loads((await engine.read("Binary", line.rejects_binary)).body or b"{}")
    return base64.b64decode(binary.get("data", "")).decode("utf-8")


async def received_file(engine: Engine, document_id: str) -> tuple[ReceivedFileLine, str]:
    """A received file's listing line and SHA-256 (404 for anything but a received file)."""
    document = orjson.loads((await engine.read("DocumentReference", document_id)).body or b"{}")
    sha256 = next((i.get("value") for i in document.get("identifier", ()) if i.get("system") == FILE_HASH_SYSTEM),
                  None)
    if sha256 is None:
        raise FhirError(404, "not-found", f"DocumentReference/{document_id} is not a received file")
    return file_line(document, engine.codes["file-types"]), sha256


async def import_detail(engine: Engine, document_id: str) -> ImportDetail:
    """One received file with its rejected rows (404 for anything but a received file)."""
    line, sha256 = await received_file(engine, document_id)
    rejects = read_rejects_csv(await rejects_text(engine, line))
    return ImportDetail(line, sha256, rejects[:MAX_REJECT_LINES], len(rejects))
