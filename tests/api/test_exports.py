"""Exports render stored referrals through the mapping specs: an exported RTF imports back with every row
unchanged, and a MIF carries the Member and referral fields; the CLI writes the file."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from datetime import date
from pathlib import Path

from fhir_clr.app import Services, build_services
from fhir_clr.config import Settings
from fhir_clr.imports.exports import ExportPeriod, ReferralExporter
from fhir_clr.imports.job import FileImporter, ImportRequest
from fhir_clr.mapping.headers import match_headers
from fhir_clr.mapping.readers import open_table
from fhir_clr.mapping.rows import parse_row
from tests.api.test_rtf_import import referral, row, rtf, valid_npi
from tests.bundled import find_spec


async def export(services: Services, kind: str, npi: str, fmt: str = "csv") -> bytes:
    out = io.BytesIO()
    await ReferralExporter(services.engine, find_spec(kind, "ecm" if kind != "asf" else None)).write(
        npi, ExportPeriod.parse("2026-11"), fmt, out)
    return out.getvalue()


def records(kind: str, data: bytes) -> list[dict[str, object]]:
    spec = find_spec(kind, "ecm" if kind != "asf" else None)
    with open_table(data) as table:
        match = match_headers(spec, table.headers)
        return [parse_row(spec, match, raw).values for raw in table]


async def test_exported_rtf_imports_back_unchanged(services: Services) -> None:
    npi = valid_npi("923456789")
    for cin in ("82345678H", "92345678J"):
        await referral(services, cin, npi)
    importer = FileImporter(services.bundles, services.engine.clock, services.specs)
    applied = await importer.run(ImportRequest("rtf", rtf([row("82345678H", npi, "1", date(2026, 11, 10))]),
                                               "in.csv", "ecm"))
    assert applied.counts["applied"] == 1
    for fmt in ("csv", "pipe", "xlsx"):
        data = await export(services, "rtf", npi, fmt)
        exported = records("rtf", data)
        assert sorted((r["member_cin"], r["referral_status"]) for r in exported) == [
            ("82345678H", "1"), ("92345678J", "3")]
        back = await importer.run(ImportRequest("rtf", data, f"out.{fmt}", "ecm"))
        assert back.counts == {"applied": 0, "unchanged": 2, "rejected": 0}, back.rejected
    assert records("rtf", await export(services, "rtf", "1111111112")) == []


async def test_mif_export_carries_member_and_referral(services: Services) -> None:
    npi = valid_npi("133456789")
    await referral(services, "13345678K", npi)
    [mif] = records("mif", await export(services, "mif", npi))
    assert mif["member_cin"] == "13345678K"
    assert any(isinstance(v, date) and v == date(2026, 11, 20) for v in mif.values())  # the referral date


def test_export_cli(tmp_path: Path) -> None:
    npi = valid_npi("233456789")

    async def prepare() -> None:
        built = await build_services(Settings(data_dir=tmp_path, dev=True))
        try:
            await referral(built, "23345678L", npi)
        finally:
            await built.store.close()

    asyncio.run(prepare())
    out = tmp_path / "rtf.txt"
    done = subprocess.run([sys.executable, "-m", "fhir_clr.cli", "export", "rtf", "--provider", npi, "--period",
                           "2026-11", "--program", "ecm", "--format", "pipe", "--out", str(out), "--data",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 referrals written" in done.stderr
    assert "23345678L" in out.read_text() and "|" in out.read_text().splitlines()[0]
