"""Importing one file: keep it, read it row by row, apply each row through the engine in atomic batches, and
report every row as applied, unchanged or rejected (with reasons).

The file is kept first (a Binary + DocumentReference identified by its SHA-256), so the receipt time starts the
RTF processing clock; once every row has an outcome the DocumentReference is marked processed, which satisfies
that clock. Rows go through :class:`fhir_clr.engine.row_batches.RowBatchWriter`: a crash mid-import leaves
whole rows or nothing, and importing the same file again finds every applied row unchanged and finishes the
rest. Memory stays flat: rows are streamed, and only rejected rows are kept.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import islice
from typing import Any

from fhir_clr.engine.bundles import BundleProcessor
from fhir_clr.engine.row_batches import GroupResult, RowBatchWriter
from fhir_clr.engine.validation_pool import shared_pool
from fhir_clr.errors import FhirError
from fhir_clr.imports.asf_rows import AsfRows
from fhir_clr.imports.caller import restricted_organization
from fhir_clr.imports.mif_rows import MifRows
from fhir_clr.imports.received import keep_received_file, mark_processed, row_source
from fhir_clr.imports.referral_match import ReferralMatcher, RowProblem, row_keys
from fhir_clr.imports.results import (
    APPLIED,
    REJECTED,
    UNCHANGED,
    ImportReport,
    Problem,
    RejectedRow,
    rejects_csv,
)
from fhir_clr.imports.row_kinds import Parsed, RowKind, RowOutcome
from fhir_clr.imports.rtf_rows import RtfRows
from fhir_clr.mapping.fhir_map import record_to_fhir
from fhir_clr.mapping.headers import HeaderMatch, match_headers
from fhir_clr.mapping.readers import FileFormatError, RawRow, open_table
from fhir_clr.mapping.rows import parse_row
from fhir_clr.mapping.spec import MappingSpec, find_spec
from fhir_clr.observability.metrics import IMPORT_ROWS

BATCH_ROWS = 500
IMPORTABLE_KINDS = ("rtf", "mif", "asf")
"""File kinds that can be imported: RTF rows update referral statuses, MIF rows create referrals, ASF rows
record authorization decisions."""
PROVIDER_KINDS = ("rtf",)
"""What a provider (a caller who sees only its own referrals) may import: its own referral statuses."""
CONTENT_TYPES = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """What to import and how."""

    kind: str
    data: bytes
    filename: str | None = None
    program: str | None = None
    provider_npi: str | None = None
    """Only rows for this servicing provider may be applied (a provider's own RTF)."""
    dry_run: bool = False
    received: datetime | None = None
    sheet: str | None = None
    """The XLSX worksheet to read (None: the first one)."""


class FileImporter:
    """Imports files through one bundle processor (and so one engine acting for one caller)."""

    def __init__(self, bundles: BundleProcessor, clock: Callable[[], datetime],
                 specs: dict[str, MappingSpec]) -> None:
        self.bundles = bundles
        self.engine = bundles.engine
        self.clock = clock
        self.specs = specs
        """The loaded mapping specs (of the configured mappings directory), by id."""

    def check(self, request: ImportRequest) -> None:
        """Refuse (one line) a request that cannot start: 400 for a kind that cannot be imported or a layout that
        neither ``program`` nor the file's headers tell, 403 for a MIF or ASF from a caller who sees only its own
        referrals (those files are the plan's). A file that cannot be read is left to :meth:`run`'s report."""
        self._check_caller(request)
        try:
            table = open_table(request.data, request.filename, request.sheet)
        except FileFormatError:
            return
        with table:
            choose_spec(request.kind, request.program, table.headers, self.specs)

    def _check_caller(self, request: ImportRequest) -> None:
        """400 for a kind that cannot be imported; 403 for a MIF or ASF from a provider."""
        _check_kind(request.kind)
        if request.kind not in PROVIDER_KINDS and restricted_organization(self.engine) is not None:
            raise FhirError(403, "forbidden", f"Only the plan imports {request.kind.upper()} files; a provider "
                            "imports its RTF")

    async def run(self, request: ImportRequest, progress: Callable[[int], None] | None = None) -> ImportReport:
        """Import ``request``'s file; the report says what became of every row."""
        started = time.perf_counter()
        self._check_caller(request)
        try:
            table = open_table(request.data, request.filename, request.sheet)
        except FileFormatError as error:
            report = ImportReport(request.kind, _spec_or_kind(request, self.specs), request.dry_run)
            report.file_problems.append(str(error))
            return report
        with table:
            spec = choose_spec(request.kind, request.program, table.headers, self.specs)
            report = ImportReport(request.kind, spec.id, request.dry_run)
            report.file_format, report.encoding = table.format, table.encoding
            header_match = match_headers(spec, table.headers)
            report.extra_headers = list(header_match.extra)
            if not header_match.ok:
                report.file_problems.append("required columns missing: " + ", ".join(
                    spec.by_name[name].header for name in header_match.missing))
                return report
            if not request.dry_run:
                kept = await keep_received_file(
                    self.engine, request.data, kind=request.kind, filename=request.filename,
                    content_type=CONTENT_TYPES.get(table.format, "text/csv"),
                    received=request.received or self.clock())
                report.document_id, report.sha256 = kept.document_id, kept.sha256
            rows = _RowSource(spec, header_match, iter(table))
            await self._apply_rows(spec, rows, request, report, progress)
        if not request.dry_run:
            for outcome, count in report.counts.items():
                IMPORT_ROWS.labels(request.kind, outcome).inc(count)
        if report.document_id is not None:
            await mark_processed(self.engine, report.document_id, report.summary(),
                                 rejects_csv(report) if report.rejected else None)
        report.seconds = time.perf_counter() - started
        return report

    def _row_kind(self, spec: MappingSpec, request: ImportRequest) -> RowKind:
        """The strategy for the rows of ``spec``'s file kind."""
        if spec.kind == "mif":
            return MifRows(self.engine.rules)
        matcher = ReferralMatcher(self.engine, spec)
        if spec.kind == "asf":
            return AsfRows(matcher, request.provider_npi, self.clock)
        return RtfRows(matcher, request.provider_npi)

    async def _apply_rows(self, spec: MappingSpec, rows: _RowSource, request: ImportRequest, report: ImportReport,
                          progress: Callable[[int], None] | None) -> None:
        """Apply the rows batch by batch; a batch's commit runs while the next batch is matched and planned (when
        the file kind allows it, see :attr:`RowKind.pipelined`)."""
        kind = self._row_kind(spec, request)
        writer = RowBatchWriter(self.bundles, dry_run=request.dry_run, validation=shared_pool())
        committing: _Committing | None = None
        try:
            while batch := list(islice(rows, BATCH_ROWS)):
                for part in kind.rounds(self._parsed(spec, batch, report)):
                    committing = await self._apply_batch(kind, spec, rows, writer, part, report, committing)
                if progress is not None:
                    progress(report.rows)
        except BaseException:
            if committing is not None:  # let a running commit end (its batch is whole either way)
                await asyncio.gather(committing.results, return_exceptions=True)
            raise
        if committing is not None:
            self._record(spec, rows, await committing.results, committing.raws, committing.bundles, report)

    def _parsed(self, spec: MappingSpec, batch: list[tuple[RawRow, Any]], report: ImportReport) -> list[Parsed]:
        """The batch's rows projected to FHIR, with their keys; rows with refused cells rejected here, rows
        with cells kept as text flagged with a warning."""
        parsed = []
        systems = self.engine.rules["identifier_systems"]
        for raw, record in batch:
            if not record.ok:
                self._reject(report, raw, [Problem(_header(spec, e.column), e.value, e.rule, e.message)
                                           for e in record.errors])
                continue
            if record.warnings:
                report.warnings.append(RejectedRow(raw.number, [Problem(_header(spec, w.column), None, w.rule,
                                                                        w.message) for w in record.warnings]))
            fragments = record_to_fhir(spec, record.values)
            parsed.append((raw, fragments, row_keys(fragments, systems)))
        return parsed

    async def _apply_batch(self, kind: RowKind, spec: MappingSpec, rows: _RowSource, writer: RowBatchWriter,
                           parsed: list[Parsed], report: ImportReport, committing: _Committing | None
                           ) -> _Committing | None:
        """Plan one round of rows (at most one per referral) and start its commit; returns that commit while it
        runs (``committing`` is the previous round's), or None once committed (a kind that is not pipelined)."""
        await kind.prefetch(parsed)
        if committing is not None and kind.members & committing.patients:
            # these rows read what the running commit writes: wait for it, then read again
            self._record(spec, rows, await committing.results, committing.raws, committing.bundles, report)
            committing = None
            await kind.prefetch(parsed)
        groups: list[tuple[int, dict[str, Any]]] = []
        raws: dict[int, RawRow] = {}
        for raw, fragments, keys in parsed:
            change = await kind.change(raw.number, fragments, keys)
            if change is RowOutcome.SKIPPED:
                report.skipped += 1  # another provider's row: not this provider's to report
            elif change is RowOutcome.UNCHANGED:
                report.count(UNCHANGED)
            elif isinstance(change, RowProblem):
                self._reject(report, raw, [Problem(_header(spec, change.column), rows.cell(raw, change.column),
                                                   change.rule, change.message)])
            else:
                groups.append((raw.number, change))
                raws[raw.number] = raw
        groups = _stamped(report, groups)
        if not kind.pipelined:  # e.g. creates claim conditional keys: committed before the next round is planned
            self._record(spec, rows, await writer.write(groups), raws, dict(groups), report)
            return committing
        finish = await writer.start(groups)
        if committing is not None:
            self._record(spec, rows, await committing.results, committing.raws, committing.bundles, report)
        return _Committing(asyncio.ensure_future(finish()), kind.members, raws, dict(groups))

    def _record(self, spec: MappingSpec, rows: _RowSource, results: list[GroupResult], raws: dict[int, RawRow],
                bundles: dict[int, dict[str, Any]], report: ImportReport) -> None:
        """Count a committed batch's rows; the engine's refusals become rejected rows, each problem with the
        text of the cell it is about."""
        for result in results:
            if result.outcome == REJECTED and result.error is not None:
                number = int(str(result.key))
                problems = [replace(p, value=rows.cell(raws[number], _column_name(spec, p.column)))
                            for p in _engine_problems(spec, result.error, bundles[number])]
                self._reject(report, raws[number], problems)
            else:
                report.count(APPLIED if result.outcome == APPLIED else UNCHANGED)

    @staticmethod
    def _reject(report: ImportReport, raw: RawRow, problems: list[Problem]) -> None:
        report.count(REJECTED)
        report.rejected.append(RejectedRow(raw.number, problems))


def _check_kind(kind: str) -> None:
    if kind not in IMPORTABLE_KINDS:
        raise FhirError(400, "not-supported", f"Importing {kind} files is not supported; "
                        f"importable kinds: {', '.join(IMPORTABLE_KINDS)}")


def choose_spec(kind: str, program: str | None, headers: list[str],
                specs: dict[str, MappingSpec]) -> MappingSpec:
    """The layout of a ``kind`` file among ``specs``: the ``program``'s, or, without
    one, the only layout of that kind whose required columns the headers hold (ECM and CS RTFs name their
    provider columns differently). 400 with one line when it cannot be told."""
    if program is not None or len({s.program for s in specs.values() if s.kind == kind}) <= 1:
        try:
            return find_spec(kind, program, specs=specs)
        except LookupError as error:
            raise FhirError(400, "invalid", str(error)) from None
    fitting = {s.program: s for s in specs.values() if s.kind == kind and match_headers(s, headers).ok}
    if len(fitting) == 1:
        return find_spec(kind, next(iter(fitting)), specs=specs)
    programs = sorted({s.program for s in specs.values() if s.kind == kind})
    why = "its headers fit no layout" if not fitting else "its headers fit more than one layout"
    raise FhirError(400, "invalid", f"Cannot tell the {kind.upper()} layout of this file ({why}); name the "
                    f"program: one of {', '.join(programs)}", expression="program")


def _spec_or_kind(request: ImportRequest, specs: dict[str, MappingSpec]) -> str:
    """The spec id to report for a file that could not be read (the kind when the layout is unknown)."""
    try:
        return find_spec(request.kind, request.program, specs=specs).id
    except LookupError:
        return request.kind


def _column_name(spec: MappingSpec, header: str | None) -> str | None:
    return next((c.name for c in spec.columns if c.header == header), None) if header else None


@dataclass(slots=True)
class _Committing:
    """A batch whose commit may still be running, with what its report needs."""

    results: Awaitable[list[GroupResult]]
    patients: set[str]
    """The Members whose resources the batch read and writes."""
    raws: dict[int, RawRow]
    bundles: dict[int, dict[str, Any]]


class _RowSource:
    """The file's rows, each with its parsed record."""

    def __init__(self, spec: MappingSpec, header_match: HeaderMatch, rows: Iterator[RawRow]) -> None:
        self.spec, self.header_match, self.rows = spec, header_match, rows

    def __iter__(self) -> _RowSource:
        return self

    def __next__(self) -> tuple[RawRow, Any]:
        raw = next(self.rows)
        return raw, parse_row(self.spec, self.header_match, raw)

    def cell(self, raw: RawRow, column: str | None) -> str | None:
        """The text of ``column``'s cell in ``raw`` (None when the file has no such cell)."""
        index = self.header_match.indexes.get(column or "")
        return raw.cells[index] if index is not None and index < len(raw.cells) else None


def _header(spec: MappingSpec, column: str | None) -> str | None:
    return spec.by_name[column].header if column in spec.by_name else None


def _stamped(report: ImportReport, groups: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """The row groups with ``meta.source`` naming their file row (when the file is kept, i.e. not a dry run)."""
    if report.document_id is None:
        return groups
    return [(number, _sourced(bundle, row_source(report.document_id, number))) for number, bundle in groups]


def _sourced(bundle: dict[str, Any], source: str) -> dict[str, Any]:
    """``bundle`` with ``meta.source`` of every entry's resource set to the file row that wrote it."""
    entries = [{**e, "resource": {**e["resource"], "meta": {**e["resource"].get("meta", {}), "source": source}}}
               if isinstance(e.get("resource"), dict) else e for e in bundle.get("entry", ())]
    return {**bundle, "entry": entries}


_ENTRY = re.compile(r"^Bundle\.entry\[(?P<index>\d+)\]\.resource")
_ENTRY_MESSAGE = re.compile(r"^Bundle\.entry\[\d+\]: ")


def _engine_problems(spec: MappingSpec, error: FhirError, bundle: dict[str, Any]) -> list[Problem]:
    """The engine's refusal of a row, each issue attributed to the file column whose target it names."""
    problems = []
    entries = bundle.get("entry", [])
    for issue in error.issues:
        expression = _ENTRY.sub(lambda m: entries[int(m["index"])]["resource"]["resourceType"],
                                issue.expression or "")
        column = next((c for c in spec.columns if c.path is not None and _names(c.target, expression)), None)
        problems.append(Problem(column.header if column else None, None, "rule", _ENTRY_MESSAGE.sub("",
                                                                                                   issue.message)))
    return problems or [Problem(None, None, "rule", str(error))]


def _names(target: str, expression: str) -> bool:
    """True when a FHIRPath-ish issue ``expression`` points at the element a column ``target`` fills."""
    if "extension('" in expression and "extension[" in target:
        url = expression.split("extension('", 1)[1].split("'", 1)[0]
        return target.split("extension[", 1)[1].split("]", 1)[0] == url.rsplit("/", 1)[-1]
    element = expression.split("(")[0].split("[")[0]
    if element == "Task.status":
        element = "Task.businessStatus"
    return bool(element) and target.split("[")[0].startswith(element)
