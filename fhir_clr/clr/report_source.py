"""Loads what the compliance report needs from the store, through the engine: the CLR Referrals authored in a
period (every page), the Tasks about them (referral Tasks and obligations, in batches of references) and the
names of the Referring Entities."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import orjson

from fhir_clr.clr.config import default_rules, extension_url
from fhir_clr.engine.engine import Engine
from fhir_clr.search.parse import PAGE_TOKEN

PAGE = "1000"
BATCH = 100


async def _all_pages(engine: Engine, resource_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page_params = [*params, ("_count", PAGE), *([(PAGE_TOKEN, token)] if token else [])]
        result = await engine.search(resource_type, page_params, strict=True)
        found += [orjson.loads(s.body) for s in result.matches if s.body is not None]
        token = result.next_token
        if not token:
            return found


async def load_report_inputs(engine: Engine, start: date, end: date
                             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """(CLR Referrals authored in the period, the Tasks focused on them, Referring Entity names by reference).
    The referral search is widened by a day on each side; the calculator applies the exact plan-local bounds."""
    referrals = await _all_pages(engine, "ServiceRequest", [
        ("_profile", extension_url(default_rules(), "clr-referral")),
        ("authored", f"ge{(start - timedelta(days=1)).isoformat()}"),
        ("authored", f"le{(end + timedelta(days=1)).isoformat()}")])
    references = [f"ServiceRequest/{r['id']}" for r in referrals]
    tasks: list[dict[str, Any]] = []
    for first in range(0, len(references), BATCH):
        tasks += await _all_pages(engine, "Task", [("focus", ",".join(references[first:first + BATCH]))])
    organizations = sorted({ref.removeprefix("Organization/") for r in referrals
                            if isinstance(ref := (r.get("requester") or {}).get("reference"), str)
                            and ref.startswith("Organization/")})
    names: dict[str, str] = {}
    for first in range(0, len(organizations), BATCH):
        for org in await _all_pages(engine, "Organization", [("_id", ",".join(organizations[first:first + BATCH]))]):
            if isinstance(org.get("name"), str):
                names[f"Organization/{org['id']}"] = org["name"]
    return referrals, tasks, names
