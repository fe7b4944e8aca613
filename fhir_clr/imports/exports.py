"""Exports: the referrals of one servicing provider rendered as a MIF, ASF or RTF through the same mapping specs
the importer reads, so what the server writes it can read back. Everything is read through the caller's engine:
a provider's export holds only referrals, Members and Organizations its access policy lets it see.

A referral belongs to the export when its referral Task is owned by the provider (found by NPI), its service
belongs to the spec's program (ECM, or the Community Supports services), and it was open at some time in the
period: referred on or before the period's last day, and not closed before its first day.
"""

from __future__ import annotations

import calendar
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any, BinaryIO

import orjson

from fhir_clr.clr.config import extension_url
from fhir_clr.clr.obligations import is_obligation
from fhir_clr.engine.engine import Engine
from fhir_clr.errors import FhirError
from fhir_clr.mapping.fhir_map import fhir_to_record
from fhir_clr.mapping.spec import MappingSpec
from fhir_clr.mapping.writers import write_table

PAGE = "500"


@dataclass(frozen=True, slots=True)
class ExportPeriod:
    """A calendar month (``YYYY-MM``)."""

    first: date
    last: date

    @classmethod
    def parse(cls, text: str) -> ExportPeriod:
        """``2026-11`` → 1 to 30 November 2026; ValueError otherwise."""
        year, month = (int(part) for part in text.split("-", 1))
        return cls(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]))


class ReferralExporter:
    """Reads a provider's referrals through an engine and writes them in a spec's layout."""

    def __init__(self, engine: Engine, spec: MappingSpec) -> None:
        self.engine = engine
        self.spec = spec
        rules = engine.rules
        self.npi_system = rules["identifier_systems"]["npi"]
        self.services = engine.codes["clr-services"]
        self.program = "ECM" if spec.program == "ecm" else "CS"
        self.closure_url = extension_url(rules, "referral-loop-closure-date")
        self.task_profile = extension_url(rules, "clr-referral-task")

    async def write(self, provider_npi: str, period: ExportPeriod, fmt: str, out: BinaryIO) -> int:
        """Write the export; the number of referral rows written (0 when the provider is unknown)."""
        found = await self.engine.planner.find("Organization", [("identifier", f"{self.npi_system}|{provider_npi}")])
        if not found or found[0].body is None:
            return write_table(self.spec, [], fmt, out)
        provider = orjson.loads(found[0].body)
        records = [fhir_to_record(self.spec, resources) async for resources in self._referrals(provider, period)]
        return write_table(self.spec, records, fmt, out)

    async def _referrals(self, provider: dict[str, Any], period: ExportPeriod
                         ) -> AsyncIterator[dict[str, dict[str, Any]]]:
        async for task in self._tasks(f"Organization/{provider['id']}"):
            referral = await self._read((task.get("focus") or {}).get("reference"))
            if referral is None or not self._in_program(referral) or not self._open_in(referral, task, period):
                continue
            resources = {"Task": task, "ServiceRequest": referral, "Organization[servicing]": provider}
            if (patient := await self._read((task.get("for") or {}).get("reference"))) is not None:
                resources["Patient"] = patient
            requester = (referral.get("requester") or {}).get("reference")
            referring = await self._read(requester) if str(requester).startswith("Organization/") else None
            if referring is not None:
                resources["Organization[referring]"] = referring
            yield resources

    async def _tasks(self, owner: str) -> AsyncIterator[dict[str, Any]]:
        params = [("_profile", self.task_profile), ("owner", owner), ("_count", PAGE)]
        async for page in self.engine.iter_pages("Task", params, strict=True):
            for stored in page.matches:
                if stored.body is not None and not is_obligation(task := orjson.loads(stored.body)):
                    yield task

    async def _read(self, reference: Any) -> dict[str, Any] | None:
        """The referenced resource as the caller may read it (None when it is not there for the caller)."""
        if not isinstance(reference, str) or reference.count("/") != 1:
            return None
        resource_type, resource_id = reference.split("/")
        try:
            stored = await self.engine.read(resource_type, resource_id)
        except FhirError:  # unknown, deleted, or outside the caller's reach: all the same here
            return None
        return orjson.loads(stored.body) if stored.body is not None else None

    def _in_program(self, referral: dict[str, Any]) -> bool:
        service = self.services.code_of(referral.get("code"))
        return service is not None and self.services.concepts[service].properties.get("program") == self.program

    def _open_in(self, referral: dict[str, Any], task: dict[str, Any], period: ExportPeriod) -> bool:
        if str(referral.get("authoredOn", ""))[:10] > period.last.isoformat():
            return False
        closed = next((e.get("valueDate") for e in task.get("extension", ()) if e.get("url") == self.closure_url),
                      None)
        return closed is None or closed >= period.first.isoformat()
