"""NDJSON files of one export, one resource type per file, split every ``max_lines`` lines. Lines are the stored
JSON bytes as they are (no parsing, no model): memory holds one page at a time, whatever the export size."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from fhir_clr.bulk.jobs import OutputFile


class NdjsonFiles:
    """Writes ``<prefix><Type>.<n>.ndjson`` files into a folder."""

    def __init__(self, folder: Path, max_lines: int, prefix: str = "") -> None:
        self.folder = folder
        self.max_lines = max_lines
        self.prefix = prefix
        self.files: list[OutputFile] = []
        self._handle: BinaryIO | None = None
        self._type: str | None = None

    def write(self, resource_type: str, line: bytes) -> None:
        """Append one resource (its JSON without line breaks) to the current file of its type."""
        current = self.files[-1] if self.files else None
        if self._handle is None or resource_type != self._type or (current and current.count >= self.max_lines):
            self._open(resource_type)
        assert self._handle is not None
        self._handle.write(line)
        self._handle.write(b"\n")
        self.files[-1].count += 1

    def _open(self, resource_type: str) -> None:
        self.close()
        number = sum(1 for f in self.files if f.type == resource_type) + 1
        name = f"{self.prefix}{resource_type}.{number}.ndjson"
        self._handle = (self.folder / name).open("wb")
        self._type = resource_type
        self.files.append(OutputFile(resource_type, name, 0))

    def close(self) -> None:
        """Flush and close the open file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
