"""Which referral a file row is about (RTF and ASF rows).

A row names its referral by the spec's ``match`` columns: the Member's CIN, the service and the servicing
provider's NPI. The referral is the one open referral Task for that Member whose owner is that provider and
whose CLR Referral is for that service; none, or more than one, is a rejection that says which.

Lookups are batched: :meth:`ReferralMatcher.prefetch` resolves every Member, provider and open referral of a batch
of rows in a handful of queries, all through the caller's access policy. A provider (any caller whose policy
limits the referrals it sees) matches rows only against the referral Tasks its own Organization owns, and every
row that matches none of them gets the one reason :data:`NOT_YOURS`, whatever the store holds: an unknown CIN, a
Member the provider cannot see and another provider's referral are refused alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_clr.clr.obligations import is_obligation
from fhir_clr.clr.rules.context import REFERRAL_TASK_PROFILE, reference_of
from fhir_clr.clr.workflow import TERMINAL_STATUSES
from fhir_clr.engine.engine import Engine
from fhir_clr.fhirmodel.profiles import claims_profile
from fhir_clr.imports.caller import restricted_organization
from fhir_clr.mapping.spec import MappingSpec

SERVICING = "Organization[servicing]"
LOOKUP_LIMIT = 200
_REFERRAL_TASK_BYTES = REFERRAL_TASK_PROFILE.encode()
TASKS_PER_MEMBER = 50
"""Most Tasks (referral Tasks and their obligations) read per Member when matching rows."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why a row was refused: the column (None for the whole row), the rule and a message without values."""

    column: str | None
    rule: str
    message: str


NOT_YOURS = RowProblem(None, "match", "None of your organization's open referrals matches this row's Member "
                                     "CIN, service and servicing provider NPI")
"""The reason a provider's row that matches none of its own referrals gets (never a reason that says why)."""


@dataclass(frozen=True, slots=True)
class RowKeys:
    """The identifying values of one row, read from its FHIR projection."""

    cin: str | None
    service: str | None
    npi: str | None


def row_keys(fragments: dict[str, dict[str, Any]], systems: dict[str, str]) -> RowKeys:
    """The CIN, service code and provider NPI a row's FHIR projection carries (``systems``: the rules
    configuration's identifier systems)."""
    service = None
    code = fragments.get("ServiceRequest", {}).get("code")
    if isinstance(code, dict) and code.get("coding"):
        service = code["coding"][0].get("code")
    return RowKeys(_identifier(fragments.get("Patient"), systems["cin"]), service,
                   _identifier(fragments.get(SERVICING), systems["npi"]))


def _identifier(fragment: dict[str, Any] | None, system: str) -> str | None:
    for identifier in (fragment or {}).get("identifier", ()):
        if identifier.get("system") == system:
            return identifier.get("value")
    return None


class ReferralMatcher:
    """Finds the referral Task (and its CLR Referral) each row of a batch is about."""

    def __init__(self, engine: Engine, spec: MappingSpec) -> None:
        self.engine = engine
        self.spec = spec
        rules = engine.rules
        self.systems = rules["identifier_systems"]
        self.codes = engine.codes
        self.owner = restricted_organization(engine)
        """The caller's Organization when only its own referral Tasks may match (None: any provider's)."""
        self._patients: dict[str, str] = {}
        self._providers: dict[str, str] = {}
        self._tasks: dict[tuple[str, str], list[tuple[dict[str, Any], str | None]]] = {}
        self.referrals: dict[str, dict[str, Any]] = {}
        """The CLR Referrals of the prefetched Tasks, by id."""
        self._match_columns = {self._column_for(prefix): prefix for prefix in (
            "Patient.identifier", "ServiceRequest.code", f"{SERVICING}.identifier")}

    @property
    def patient_ids(self) -> set[str]:
        """The Members found by the last :meth:`prefetch`."""
        return set(self._patients.values())

    def _column_for(self, target_prefix: str) -> str | None:
        return next((name for name in self.spec.match
                     if self.spec.by_name[name].target.startswith(target_prefix)), None)

    # ---- batched lookups ---------------------------------------------------------------------------------

    async def prefetch(self, rows: Sequence[RowKeys]) -> None:
        """Resolve the Members, providers and open referral Tasks of ``rows`` (replacing earlier lookups)."""
        cins = sorted({r.cin for r in rows if r.cin})
        npis = sorted({r.npi for r in rows if r.npi})
        self._patients, self._providers = await asyncio.gather(
            self._ids_by_identifier("Patient", self.systems["cin"], cins),
            self._ids_by_identifier("Organization", self.systems["npi"], npis))
        self._tasks, self.referrals = {}, {}
        patients = sorted(set(self._patients.values()))
        if not patients:
            return
        # by Member only (adding _profile makes SQLite pick a slow plan, 12x here); obligations dropped below
        found = await self.engine.planner.find("Task", [("patient", ",".join(f"Patient/{p}" for p in patients))],
                                               limit=TASKS_PER_MEMBER * len(patients),
                                               restriction=self.engine.access.restriction("Task"))
        # stored bodies are orjson output (no escaped slashes), so a referral Task's body holds the profile URL
        # verbatim: the test skips parsing the Member's obligations, most of what the search returns
        tasks = [orjson.loads(t.body) for t in found if t.body is not None and _REFERRAL_TASK_BYTES in t.body]
        tasks = [t for t in tasks if not is_obligation(t) and claims_profile(t, REFERRAL_TASK_PROFILE)
                 and (self.owner is None or reference_of(t.get("owner")) == self.owner)]
        focus_ids = {t["focus"]["reference"].split("/", 1)[1] for t in tasks
                     if str((t.get("focus") or {}).get("reference", "")).startswith("ServiceRequest/")}
        stored = await self.engine.visible(
            await self.engine.store.read_many([("ServiceRequest", i) for i in sorted(focus_ids)]))
        self.referrals = {r.resource_id: orjson.loads(r.body) for r in stored if r.body is not None}
        service_of = {rid: self._service(body) for rid, body in self.referrals.items()}
        for task in tasks:
            patient = str((task.get("for") or {}).get("reference", "")).removeprefix("Patient/")
            owner = str((task.get("owner") or {}).get("reference", "")).removeprefix("Organization/")
            focus = str((task.get("focus") or {}).get("reference", "")).removeprefix("ServiceRequest/")
            self._tasks.setdefault((patient, owner), []).append((task, service_of.get(focus)))

    async def _ids_by_identifier(self, resource_type: str, system: str, values: list[str]) -> dict[str, str]:
        """Resource ids by identifier value, the chunked searches running side by side."""
        chunks = [values[start:start + LOOKUP_LIMIT] for start in range(0, len(values), LOOKUP_LIMIT)]
        restriction = self.engine.access.restriction(resource_type)
        pages = await asyncio.gather(*(self.engine.planner.find(resource_type, [
            ("identifier", ",".join(f"{system}|{v}" for v in chunk))], limit=LOOKUP_LIMIT * 2,
            restriction=restriction) for chunk in chunks))
        out: dict[str, str] = {}
        for stored in (found for page in pages for found in page):
            body = orjson.loads(stored.body) if stored.body is not None else {}
            value = _identifier(body, system)
            if value is not None:
                out.setdefault(value, stored.resource_id)
        return out

    def _service(self, referral: dict[str, Any]) -> str | None:
        return self.codes["clr-services"].code_of(referral.get("code")) if referral.get("code") else None

    # ---- one row -----------------------------------------------------------------------------------------

    def match(self, keys: RowKeys) -> dict[str, Any] | RowProblem:
        """The open referral Task the row updates (or, when all are closed, the latest closed one, which the
        workflow keeps closed), or why there is none (for a provider: :data:`NOT_YOURS`, whatever the cause)."""
        found = self._match(keys)
        if self.owner is not None and isinstance(found, RowProblem) and found.rule == "match":
            return NOT_YOURS
        return found

    def _match(self, keys: RowKeys) -> dict[str, Any] | RowProblem:
        cin_column = next((c for c, p in self._match_columns.items() if p == "Patient.identifier"), None)
        npi_column = next((c for c, p in self._match_columns.items() if p.startswith(SERVICING)), None)
        if keys.cin is None or keys.cin not in self._patients:
            return RowProblem(cin_column, "match", "No Member has this CIN")
        if keys.npi is None or keys.npi not in self._providers:
            return RowProblem(npi_column, "match", "No servicing provider has this NPI")
        same = [task for task, service in self._tasks.get((self._patients[keys.cin], self._providers[keys.npi]), [])
                if service == keys.service]
        candidates = [task for task in same if task.get("status") not in TERMINAL_STATUSES]
        if not candidates and same:  # only closed ones: the latest, so a repeated closing row is "unchanged"
            return max(same, key=lambda task: str((task.get("meta") or {}).get("lastUpdated", "")))
        if not candidates:
            return RowProblem(None, "match", "The Member has no open referral for this service with this "
                                             "servicing provider")
        if len(candidates) > 1:
            return RowProblem(None, "ambiguous", f"{len(candidates)} open referrals match this Member, service "
                                                 "and servicing provider; close the extra ones first")
        return candidates[0]
