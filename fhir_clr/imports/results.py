"""What an import reports: per-row outcomes, the rejected rows with their reasons, and renderings of the
rejects as CSV (for the provider's staff) and as a FHIR OperationOutcome (for systems)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

APPLIED, UNCHANGED, REJECTED = "applied", "unchanged", "rejected"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a row was refused: the file column (its header; None for the whole row), the cell text as it
    arrived (kept for the reject report only — never logged), the rule and a message."""

    column: str | None
    value: str | None
    rule: str
    message: str


@dataclass(slots=True)
class RejectedRow:
    """A refused row and every reason."""

    number: int
    problems: list[Problem]


@dataclass(slots=True)
class ImportReport:
    """The outcome of importing one file."""

    kind: str
    spec: str
    dry_run: bool
    file_format: str | None = None
    encoding: str | None = None
    document_id: str | None = None
    sha256: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: {APPLIED: 0, UNCHANGED: 0, REJECTED: 0})
    rejected: list[RejectedRow] = field(default_factory=list)
    file_problems: list[str] = field(default_factory=list)
    """Why the file as a whole could not be imported (unreadable, required columns missing)."""
    extra_headers: list[str] = field(default_factory=list)
    skipped: int = 0
    """Rows about another servicing provider than the one importing its own file: not this file's to apply."""
    warnings: list[RejectedRow] = field(default_factory=list)
    """Rows applied (or unchanged) with a cell kept as text that deserves a look (a formula-looking name)."""
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        """Rows read (every one has an outcome)."""
        return sum(self.counts.values()) + self.skipped

    def count(self, outcome: str) -> None:
        """Count one row's outcome."""
        self.counts[outcome] += 1

    def summary(self) -> str:
        """A one-line summary without any cell content."""
        if self.file_problems:
            return "file not imported: " + "; ".join(self.file_problems)
        return (f"{self.rows} rows: {self.counts[APPLIED]} applied, {self.counts[UNCHANGED]} unchanged, "
                f"{self.counts[REJECTED]} rejected" + (f", {self.skipped} skipped (other providers)"
                                                      if self.skipped else "")
                + (f", {len(self.warnings)} with warnings" if self.warnings else "")
                + (" (dry run: nothing written)" if self.dry_run else ""))

    def as_json(self) -> dict[str, Any]:
        """The report as JSON (counts and reasons; cell values only in the rejected rows' details)."""
        return {"kind": self.kind, "spec": self.spec, "dryRun": self.dry_run, "format": self.file_format,
                "encoding": self.encoding, "documentReference": self.document_id and
                f"DocumentReference/{self.document_id}", "sha256": self.sha256, "rows": self.rows,
                **self.counts, "skipped": self.skipped, "fileProblems": self.file_problems,
                "extraHeaders": self.extra_headers, "warnings": [
                    {"row": w.number, "column": p.column, "rule": p.rule, "message": p.message}
                    for w in self.warnings for p in w.problems],
                "seconds": round(self.seconds, 3), "summary": self.summary()}


_SUMMARY = re.compile(r"^(?P<rows>\d+) rows: (?P<applied>\d+) applied, (?P<unchanged>\d+) unchanged, "
                      r"(?P<rejected>\d+) rejected")


def parse_summary(text: str | None) -> dict[str, int] | None:
    """The row counts of a :meth:`ImportReport.summary` line (None for a file that was not imported)."""
    match = _SUMMARY.match(text or "")
    return {name: int(value) for name, value in match.groupdict().items()} if match else None


def read_rejects_csv(text: str) -> list[dict[str, str]]:
    """The lines of a :func:`rejects_csv` document as dicts (row, column, value, rule, message)."""
    return list(csv.DictReader(io.StringIO(text)))


def rejects_csv(report: ImportReport) -> str:
    """The rejected rows as CSV: one line per reason (row, column, value, rule, message), in row order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["row", "column", "value", "rule", "message"])
    for row in sorted(report.rejected, key=lambda r: r.number):
        for problem in row.problems:
            writer.writerow([row.number, problem.column or "", _neutral(problem.value or ""), problem.rule,
                             problem.message])
    return out.getvalue()


def rejects_outcome(report: ImportReport) -> dict[str, Any]:
    """The file and row problems as an OperationOutcome (``informational`` when there are none)."""
    issues: list[dict[str, Any]] = [{"severity": "error", "code": "structure", "details": {"text": text}}
                                    for text in report.file_problems]
    for row in report.rejected:
        for problem in row.problems:
            where = f"row {row.number}" + (f", column '{problem.column}'" if problem.column else "")
            issues.append({"severity": "error", "code": "business-rule" if problem.rule == "rule" else "invalid",
                           "details": {"text": problem.message}, "diagnostics": f"{where}: rule {problem.rule}",
                           "location": [where]})
    if not issues:
        issues = [{"severity": "information", "code": "informational", "details": {"text": report.summary()}}]
    return {"resourceType": "OperationOutcome", "issue": issues}


def _neutral(text: str) -> str:
    """Cell text made safe to open in a spreadsheet (no formula execution)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
