"""A synthetic CLR population for demos, tests and benchmarks — invented people only, no real PHI.

``fhir-clr seed --members N`` builds N Members with referrals across every service, Referral Type,
authorization outcome, Referral Status and closure reason, then loads them the way a plan would: a MIF file
creates the referrals, the plan records authorization decisions, and monthly RTF files from the providers move
the statuses forward (each file through the same import job as a real one). With ``--files DIR`` the MIF and
RTF files are also written there, the last RTF with a few deliberately bad rows. Then a second MIF brings
duplicate referrals (one for a Member already authorized, one while the first referral is open) and the plan's
and Members' events follow (:mod:`fhir_clr.synthetic_events`): declined referrals reassigned, status inquiries,
notices recorded on time and late.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from fhir_clr.app import Services
from fhir_clr.clr.codes import CodeLists
from fhir_clr.clr.config import extension_url
from fhir_clr.clr.deadlines import Deadlines
from fhir_clr.imports.job import FileImporter, ImportRequest
from fhir_clr.imports.mif_rows import REFERRAL_KEY_SYSTEM, referral_key
from fhir_clr.mapping.spec import find_spec
from fhir_clr.mapping.values import npi_check_digit_ok
from fhir_clr.mapping.writers import write_table
from fhir_clr.synthetic_events import reassign_declined, record_notices, send_inquiries

FAMILY = ["Alder", "Birch", "Cedar", "Dogwood", "Elm", "Fir", "Ginkgo", "Hazel", "Juniper", "Laurel", "Maple",
          "Oak", "Pine", "Quince", "Redwood", "Spruce", "Tamarack", "Willow", "Yew", "Zelkova"]
GIVEN = ["Avery", "Blake", "Casey", "Devon", "Emery", "Finley", "Harper", "Jordan", "Kendall", "Logan", "Morgan",
         "Parker", "Quinn", "Riley", "Rowan", "Sawyer", "Taylor", "Reese"]
CITIES = ["Fresno", "Oakland", "Sacramento", "San Diego", "Riverside", "Stockton", "Bakersfield", "Salinas"]
REFERRING = ["Eastside Community Clinic", "Valley Family Medicine", "Harbor Hospital", "Lincoln Unified School",
             "Hope Street Food Bank"]
PATHS: list[list[tuple[str, str | None]]] = [
    [("3", None)],
    [("3", None), ("1", None)],
    [("3", None), ("1", None), ("4", None)],
    [("3", None), ("1", None), ("4", None), ("5", "services-received")],
    [("3", None), ("1", None), ("4", None), ("5", "member-declined")],
    [("3", None), ("1", None), ("5", "unable-to-reach")],
    [("3", None), ("1", None), ("4", None), ("5", "member-disenrolled")],
    [("3", None), ("2", None)],
    [("3", None), ("5", "member-not-eligible")],
    [("3", None), ("5", "other")],
    [("3", None), ("4", None)],
    [("3", None), ("5", "services-received")],
    [("3", None), ("1", None), ("5", "provider-unable-to-serve")],
    [("3", None), ("4", None), ("5", "member-deceased")],
]
"""Referral Status paths (status, closure reason): every status, every closure reason a provider reports
(Authorization Denied comes from the plan's denials), and months in which a referral skips states."""


@dataclass(slots=True)
class SyntheticReferral:
    """One invented Member's referral and the statuses its provider will report."""

    cin: str
    family: str
    given: str
    birth_date: date
    city: str
    service: str
    referral_type: str
    referring: str
    referred: date
    provider: int
    decision: str | None
    path: list[tuple[str, str | None, date]] = field(default_factory=list)


@dataclass(slots=True)
class Population:
    """The invented Members' referrals and the providers (name, NPI) serving them."""

    referrals: list[SyntheticReferral]
    providers: list[tuple[str, str]]


def _npi(rng: random.Random) -> str:
    while True:
        candidate = f"1{rng.randrange(10**8, 10**9):09d}"[:10]
        if npi_check_digit_ok(candidate):
            return candidate


def generate_population(members: int, as_of: date, codes: CodeLists, seed: int = 2025) -> Population:
    """``members`` invented referrals for the services of ``codes``, dated in the 120 days before ``as_of``,
    deterministic for ``seed``."""
    rng = random.Random(seed)
    services = list(codes["clr-services"].concepts)
    providers = [(f"Synthetic {kind} Provider {n + 1}", _npi(rng)) for n, kind in enumerate(("ECM", "ECM", "CS",
                                                                                                "CS", "CS"))]
    referrals = []
    for n in range(members):
        service = services[n % len(services)]
        path = PATHS[n % len(PATHS)]
        referred = as_of - timedelta(days=rng.randrange(20 + 7 * len(path), 120))
        decision = None if path == PATHS[0] and n % 3 == 0 else ("denied" if n % 17 == 5 else "approved")
        steps, day = [], referred
        for status, reason in path:
            steps.append((status, reason, day))
            day = min(as_of, day + timedelta(days=rng.randrange(3, 10)))
        if decision == "denied":
            steps = steps[:1]
        referrals.append(SyntheticReferral(
            cin=f"{90000000 + n:08d}{chr(65 + n % 26)}", family=FAMILY[n % len(FAMILY)],
            given=GIVEN[(n * 7) % len(GIVEN)], birth_date=date(1950 + n % 55, 1 + n % 12, 1 + n % 28),
            city=CITIES[n % len(CITIES)], service=service, referral_type=("1", "1", "2", "3")[n % 4],
            referring=REFERRING[n % len(REFERRING)], referred=referred,
            provider=(n % 2) if service == "ecm" else 2 + n % 3, decision=decision, path=steps))
    return Population(referrals, providers)


def mif_records(population: Population) -> list[dict[str, Any]]:
    """The MIF rows that create every referral (Pending)."""
    return [{"mcp_name": "Synthetic Health Plan", "member_cin": r.cin, "member_last_name": r.family,
             "member_first_name": r.given, "member_date_of_birth": r.birth_date, "member_residential_city": r.city,
             "member_residential_state": "CA", "service": r.service, "referral_date": r.referred,
             "referral_type": r.referral_type, "referring_organization": r.referring, "referral_status": "3",
             "referral_status_date": r.referred, "ecm_provider_name": population.providers[r.provider][0],
             "ecm_provider_npi": population.providers[r.provider][1]} for r in population.referrals]


def rtf_records(population: Population, step: int, program: str) -> list[dict[str, Any]]:
    """The RTF rows reporting each referral's ``step``-th status change, for one program's layout."""
    rows = []
    for r in population.referrals:
        if step >= len(r.path) or (r.service == "ecm") != (program == "ecm"):
            continue
        status, reason, day = r.path[step]
        name, npi = population.providers[r.provider]
        if program == "ecm":
            rows.append({"mcp_name": "Synthetic Health Plan", "member_cin": r.cin, "ecm_provider_name": name,
                         "ecm_provider_npi": npi, "referral_status": status, "referral_status_date": day,
                         "loop_closure_reason": reason})
        else:
            rows.append({"mcp_name": "Synthetic Health Plan", "member_cin": r.cin, "cs_service": r.service,
                         "cs_provider_name": name, "cs_provider_npi": npi, "referral_status": status,
                         "referral_status_date": day, "loop_closure_reason": reason})
    return rows


def bad_rtf_rows(population: Population) -> list[dict[str, Any]]:
    """Rows an import must reject, each for a different reason."""
    name, npi = population.providers[0]
    base = {"mcp_name": "Synthetic Health Plan", "ecm_provider_name": name, "ecm_provider_npi": npi,
            "referral_status": "1", "referral_status_date": date(2025, 7, 1)}
    return [{**base, "member_cin": "00000000Z"},  # no such Member
            {**base, "member_cin": population.referrals[0].cin, "referral_status": "4",
             "referral_status_date": date(2099, 1, 1)}]  # a status date in the future


def _file(services: Services, spec_kind: str, program: str | None, records: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    write_table(find_spec(spec_kind, program, specs=services.specs), records, "csv", out)
    return out.getvalue()


async def load_population(services: Services, population: Population, files: Path | None = None) -> dict[str, int]:
    """Load ``population`` through the import job and the engine; counts of applied, unchanged, rejected rows."""
    importer = FileImporter(services.bundles, services.engine.clock, services.specs)
    totals = {"applied": 0, "unchanged": 0, "rejected": 0}
    batches: list[tuple[str, str | None, str, bytes]] = [("mif", None, "mif.csv", _file(services, "mif", None,
                                                                                       mif_records(population)))]
    steps = max(len(r.path) for r in population.referrals)
    for step in range(1, steps):
        for program in ("ecm", "cs"):
            records = rtf_records(population, step, program)
            if step == steps - 1 and program == "ecm":
                records += bad_rtf_rows(population)
            if records:
                batches.append(("rtf", program, f"rtf-{program}-{step}.csv",
                                _file(services, "rtf", program, records)))
    batches.append(("mif", None, "mif-duplicates.csv", _file(services, "mif", None,
                                                             duplicate_records(population))))
    first_load = False
    for index, (kind, layout, name, data) in enumerate(batches):
        if files is not None:
            files.mkdir(parents=True, exist_ok=True)
            (files / name).write_bytes(data)
        report = await importer.run(ImportRequest(kind, data, name, layout))
        for outcome, count in report.counts.items():
            totals[outcome] += count
        if index == 0:
            first_load = report.counts["applied"] > 0
            await _decide(services, population)
    if first_load:  # the events happen once: a repeat run adds nothing
        as_of = Deadlines(services.rules).local_date(services.engine.clock())  # the plan's date, as the rules use
        await reassign_declined(services, await _providers_by_program(services, population))
        await send_inquiries(services, as_of)
        await record_notices(services, as_of)
    return totals


def duplicate_records(population: Population) -> list[dict[str, Any]]:
    """MIF rows referring two Members again for the same service a few days later, to another provider of the
    program: one whose referral was approved (recorded and denied: already authorized) and one whose referral
    is still undecided and open (tracked in full; both flagged for coordination)."""
    approved = next((r for r in population.referrals if r.decision == "approved"), None)
    undecided = next((r for r in population.referrals if r.decision is None), None)
    rows = []
    for original in (r for r in (approved, undecided) if r is not None):
        row = next(m for m in mif_records(Population([original], population.providers)))
        referred = original.referred + timedelta(days=5)
        same_program = [0, 1] if original.service == "ecm" else [2, 3, 4]
        other = population.providers[same_program[(same_program.index(original.provider) + 1) % len(same_program)]]
        rows.append({**row, "referral_date": referred, "referral_status_date": referred,
                     "ecm_provider_name": other[0], "ecm_provider_npi": other[1],
                     "referring_organization": REFERRING[(REFERRING.index(original.referring) + 1) % len(REFERRING)]})
    return rows


async def _providers_by_program(services: Services, population: Population) -> dict[str, list[str]]:
    """The providers' Organization references, ECM and CS apart (a reassignment stays within its program)."""
    out: dict[str, list[str]] = {"ecm": [], "cs": []}
    npi_system = services.rules["identifier_systems"]["npi"]
    for index, (_, npi) in enumerate(population.providers):
        found = await services.engine.planner.find("Organization", [("identifier", f"{npi_system}|{npi}")])
        if found:
            out["ecm" if index < 2 else "cs"].append(f"Organization/{found[0].resource_id}")
    return out


async def _decide(services: Services, population: Population) -> None:
    """The plan records the authorization decisions (approved ones get the configured period)."""
    auth_url = extension_url(services.rules, "authorization-decision")
    for r in population.referrals:
        if r.decision is None:
            continue
        key = referral_key(r.cin, r.service, population.providers[r.provider][1], r.referred.isoformat())
        found = await services.engine.planner.find("ServiceRequest", [("identifier", f"{REFERRAL_KEY_SYSTEM}|{key}")])
        if not found or found[0].body is None:
            continue
        referral = orjson.loads(found[0].body)
        decided_on = (r.referred + timedelta(days=3)).isoformat()
        referral["extension"] = [e for e in referral.get("extension", ()) if e.get("url") != auth_url] + [{
            "url": auth_url, "extension": [{"url": "status", "valueCoding": {"code": r.decision}},
                                           {"url": "date", "valueDateTime": decided_on}]}]
        await services.engine.update("ServiceRequest", referral["id"], referral)
