"""Loads what a compliance report needs through the engine's search (every page, in batches), with the access of
the engine's caller.

Queries: the CLR Referrals authored in the period widened by a day on each side (the report keeps those whose
plan-local date falls in it), then the Tasks focused on them except obligations of kinds that are not notices,
``VALUES_PER_QUERY`` referrals per query, then the
Referring Entity resources by ``_id``, as many per query, and the channels of the Communications that satisfied
notice obligations (by ``_id``, as many per query). Pages hold ``PAGE_SIZE`` resources and counts are
skipped (``_total=none``), so each page is one store query.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import orjson

from fhir_clr.clr.config import extension_url
from fhir_clr.clr.report import ComplianceReporter, ReportData, ReportPeriod
from fhir_clr.engine.engine import Engine

PAGE_SIZE = 1000
VALUES_PER_QUERY = 400
"""References or ids OR-ed in one search parameter: at most this many, each an index lookup of its own in the
embedded store (one UNION ALL term each), so every batch is one short query."""
ENTITY_TYPES = ("Organization", "Practitioner", "PractitionerRole")
"""Requester types looked up for display names (the Member's side is never named)."""


def _batches(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


async def search_all(engine: Engine, resource_type: str, params: list[tuple[str, str]],
                     page_size: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Every match of a search, following the pages to the end, as JSON dicts."""
    pages = engine.iter_pages(resource_type, [*params, ("_count", str(page_size)), ("_total", "none")])
    return [orjson.loads(r.body) async for page in pages for r in page.matches if r.body is not None]


def _ids_by_type(references: Iterable[str], types: Iterable[str]) -> dict[str, list[str]]:
    wanted = set(types)
    ids: dict[str, set[str]] = {}
    for reference in references:
        resource_type, _, resource_id = reference.partition("/")
        if resource_type in wanted and resource_id and "/" not in resource_id:
            ids.setdefault(resource_type, set()).add(resource_id)
    return {t: sorted(i) for t, i in ids.items()}


async def load_report_data(engine: Engine, period: ReportPeriod, reporter: ComplianceReporter,
                           batch_size: int = VALUES_PER_QUERY) -> ReportData:
    """The referrals of ``period`` (plus a day each side), their Tasks and their Referring Entities."""
    referrals = await search_all(engine, "ServiceRequest", [
        ("_profile", extension_url(reporter.rules, "clr-referral")),
        ("authored", f"ge{(period.start - timedelta(days=1)).isoformat()}"),
        ("authored", f"le{(period.end + timedelta(days=1)).isoformat()}")])
    referral_ids = sorted({r["id"] for r in referrals if r.get("id")})
    data = ReportData(referrals)
    kinds = reporter.codes["notice-kinds"]
    not_notices = ",".join(f"{kinds.system}|{code}" for code in kinds.concepts
                           if code not in reporter.rules["noticing"]["notice_kinds"])
    for batch in _batches(referral_ids, batch_size):
        focus = ",".join(f"ServiceRequest/{i}" for i in batch)
        # Obligations other than notices (status clocks, decision clocks) count for nothing here: not read.
        for task in await search_all(engine, "Task", [("focus", focus), ("code:not", not_notices)]):
            if reporter.is_obligation(task):
                data.obligations.append(task)
            elif reporter.is_referral_task(task):
                data.referral_tasks.append(task)
    await _load_notice_channels(engine, reporter, data, batch_size)
    requesters = (r["requester"]["reference"] for r in referrals
                  if isinstance(r.get("requester"), dict) and isinstance(r["requester"].get("reference"), str))
    for resource_type, ids in _ids_by_type(requesters, ENTITY_TYPES).items():
        for batch in _batches(ids, batch_size):
            data.referring_entities.extend(await search_all(engine, resource_type, [("_id", ",".join(batch))]))
    return data


async def _load_notice_channels(engine: Engine, reporter: ComplianceReporter, data: ReportData,
                                batch_size: int) -> None:
    """The channel of each completed notice obligation's Communication (``data.notice_channels``)."""
    by_communication = {ref.partition("/")[2]: o["id"] for o in data.obligations if o.get("status") == "completed"
                        for out in o.get("output", ()) if isinstance(out, dict)
                        and isinstance(ref := (out.get("valueReference") or {}).get("reference"), str)
                        and ref.startswith("Communication/")}
    channel_url = extension_url(reporter.rules, "notice-channel")
    for batch in _batches(sorted(by_communication), batch_size):
        for message in await search_all(engine, "Communication", [("_id", ",".join(batch)),
                                                                  ("_elements", "extension")]):
            channel = next((e.get("valueCoding", {}).get("code") for e in message.get("extension", ())
                            if isinstance(e, dict) and e.get("url") == channel_url), None)
            if channel and message.get("id") in by_communication:
                data.notice_channels[by_communication[message["id"]]] = str(channel)
