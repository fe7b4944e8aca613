"""MIF rows to new referrals: each row becomes one transaction creating — or finding, on a second import — the
Member (by CIN), the servicing provider (by NPI), the Referring Entity (by name), the CLR Referral and its
Pending referral Task. The referral and Task carry a key derived from CIN, service, provider NPI and referral
date, so importing the same row again finds them and changes nothing."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from fhir_clr.clr.config import extension_url
from fhir_clr.imports.referral_match import SERVICING, RowKeys, RowProblem
from fhir_clr.imports.row_kinds import Parsed, RowChange

REFERRAL_KEY_SYSTEM = "http://fhir-clr.org/fhir/sid/referral-key"
REFERRING = "Organization[referring]"
PLAN = "Organization[plan]"


def referral_key(cin: str | None, service: str | None, npi: str | None, referral_date: str) -> str:
    """The key a MIF-created referral and its Task carry (``identifier`` in :data:`REFERRAL_KEY_SYSTEM`)."""
    return hashlib.sha256(f"{cin}|{service}|{npi}|{referral_date}".encode()).hexdigest()[:32]


def _first_identifier(fragment: dict[str, Any] | None, system: str) -> str | None:
    return next((i.get("value") for i in (fragment or {}).get("identifier", ()) if i.get("system") == system), None)


def _entry(full_url: str, resource: dict[str, Any], if_none_exist: str) -> dict[str, Any]:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": if_none_exist}}


def mif_group(fragments: dict[str, dict[str, Any]], row_number: int,
              rules: dict[str, Any]) -> dict[str, Any] | RowProblem:
    """The transaction Bundle for one MIF row's projection under the rules configuration ``rules``, or why the
    row cannot make a referral."""
    systems = rules["identifier_systems"]
    patient = dict(fragments.get("Patient", {}))
    servicing = dict(fragments.get(SERVICING, {}))
    request = dict(fragments.get("ServiceRequest", {}))
    cin, npi = _first_identifier(patient, systems["cin"]), _first_identifier(servicing, systems["npi"])
    service = ((request.get("code") or {}).get("coding") or [{}])[0].get("code")
    if not request.get("authoredOn"):
        return RowProblem(None, "required", "A MIF row needs the referral date to record a referral")
    referring = dict(fragments.get(REFERRING) or fragments.get(PLAN) or {})
    if not referring.get("name"):
        return RowProblem(None, "required", "A MIF row needs the Referring Entity (or the plan) by name")
    key = referral_key(cin, service, npi, request["authoredOn"])
    urls = {name: f"urn:uuid:{hashlib.md5(f'{row_number}:{name}'.encode()).hexdigest()[:8]}-0000-4000-8000-"
                  f"{key[:12]}" for name in ("patient", "provider", "referring", "request", "task")}
    request.update({"meta": {"profile": [extension_url(rules, "clr-referral")]}, "status": "active",
                    "intent": "order", "subject": {"reference": urls["patient"]},
                    "requester": {"reference": urls["referring"]},
                    "performer": [{"reference": urls["provider"]}],
                    "identifier": [*request.get("identifier", ()), {"system": REFERRAL_KEY_SYSTEM, "value": key}]})
    task = dict(fragments.get("Task", {}))
    status_date = next((e.get("valueDateTime") for e in task.get("extension", ())
                        if e.get("url") == extension_url(rules, "date-of-referral-status-update")), None)
    if status_date is None:
        task["extension"] = [*task.get("extension", ()), {
            "url": extension_url(rules, "date-of-referral-status-update"), "valueDateTime": request["authoredOn"]}]
    task.update({"resourceType": "Task", "meta": {"profile": [extension_url(rules, "clr-referral-task")]},
                 "status": "requested", "intent": "order", "focus": {"reference": urls["request"]},
                 "for": {"reference": urls["patient"]}, "requester": {"reference": urls["referring"]},
                 "owner": {"reference": urls["provider"]}, "authoredOn": request["authoredOn"],
                 "identifier": [{"system": REFERRAL_KEY_SYSTEM, "value": key}]})
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        _entry(urls["patient"], {"resourceType": "Patient", **patient}, f"identifier={systems['cin']}|{cin}"),
        _entry(urls["provider"], {"resourceType": "Organization", **servicing},
               f"identifier={systems['npi']}|{npi}"),
        _entry(urls["referring"], {"resourceType": "Organization", **referring},
               f"name:exact={quote(referring['name'])}"),
        _entry(urls["request"], request, f"identifier={REFERRAL_KEY_SYSTEM}|{key}"),
        _entry(urls["task"], task, f"identifier={REFERRAL_KEY_SYSTEM}|{key}")]}


class MifRows:
    """MIF rows: each one transaction creating its referral. Their conditional creates claim keys a later row of
    the same referral looks up, so each batch commits before the next is planned, in one round."""

    pipelined = False

    def __init__(self, rules: dict[str, Any]) -> None:
        self.rules = rules

    @property
    def members(self) -> set[str]:
        """Nothing is read ahead."""
        return set()

    def rounds(self, parsed: list[Parsed]) -> list[list[Parsed]]:
        """The whole batch at once."""
        return [parsed]

    async def prefetch(self, parsed: list[Parsed]) -> None:
        """Nothing to read ahead: the transactions' conditional creates find what exists."""

    async def change(self, number: int, fragments: dict[str, dict[str, Any]], keys: RowKeys) -> RowChange:
        """The row's transaction (see :func:`mif_group`)."""
        return mif_group(fragments, number, self.rules)
