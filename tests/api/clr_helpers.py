"""Builders for CLR scenario tests over HTTP: referrals, referral Tasks, status changes and obligation lookups,
written the way a plan system and a provider would send them."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.api.helpers import FHIR_JSON, unique
from tests.conftest import LiveServer

BASE = "http://fhir-clr.org/fhir"
REFERRAL_PROFILE = f"{BASE}/StructureDefinition/clr-referral"
TASK_PROFILE = f"{BASE}/StructureDefinition/clr-referral-task"
DATE_URL = f"{BASE}/StructureDefinition/date-of-referral-status-update"
CLOSURE_URL = f"{BASE}/StructureDefinition/referral-loop-closure-date"
TYPE_URL = f"{BASE}/StructureDefinition/referral-type"
AUTH_URL = f"{BASE}/StructureDefinition/authorization-decision"
STATUS_SYSTEM = f"{BASE}/CodeSystem/referral-status"
FLAGS_SYSTEM = f"{BASE}/CodeSystem/referral-flags"


def fixed_clock_server(directory: Path, now: str) -> LiveServer:
    """A started dev-mode live server whose business clock is fixed at ``now``."""
    server = LiveServer(directory, {"FHIR_CLR_FIXED_NOW": now})
    server.start()
    return server


def created(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body``; the stored resource (201 required)."""
    response = client.post(f"/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()


def updated(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """PUT ``body``; the stored resource (200 required)."""
    response = client.put(f"/{body['resourceType']}/{body['id']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    return response.json()


def member(client: httpx.Client) -> str:
    """A new Member (Patient); its reference."""
    return f"Patient/{created(client, {'resourceType': 'Patient', 'name': [{'family': unique('member')}]})['id']}"


def organization(client: httpx.Client, prefix: str = "org") -> str:
    """A new Organization; its reference."""
    return f"Organization/{created(client, {'resourceType': 'Organization', 'name': unique(prefix)})['id']}"


def referral_body(subject: str, requester: str, *, service: str = "ECM", referral_type: str = "1",
                  authored: str = "2026-11-20", **extra: Any) -> dict[str, Any]:
    """A CLR Referral ServiceRequest (service and type as free text, parsed leniently by the server)."""
    return {"resourceType": "ServiceRequest", "meta": {"profile": [REFERRAL_PROFILE]}, "status": "active",
            "intent": "order", "code": {"text": service}, "subject": {"reference": subject},
            "requester": {"reference": requester}, "authoredOn": authored,
            "extension": [{"url": TYPE_URL, "valueCoding": {"code": referral_type}}], **extra}


def referral_task_body(referral: dict[str, Any], owner: str, *, since: str = "2026-11-02") -> dict[str, Any]:
    """The Pending referral Task of ``referral``, assigned to ``owner``."""
    return {"resourceType": "Task", "meta": {"profile": [TASK_PROFILE]}, "status": "requested", "intent": "order",
            "businessStatus": {"text": "3"}, "focus": {"reference": f"ServiceRequest/{referral['id']}"},
            "for": referral["subject"], "requester": referral["requester"], "owner": {"reference": owner},
            "authoredOn": since, "extension": [{"url": DATE_URL, "valueDateTime": since}]}


def with_status(task: dict[str, Any], business: str, when: str, status: str, **extra: Any) -> dict[str, Any]:
    """``task`` moved to Referral Status ``business`` (free text) dated ``when``, Task.status ``status``."""
    body = copy.deepcopy(task)
    body["meta"] = {"profile": [TASK_PROFILE]}
    body["businessStatus"] = {"text": business}
    body["status"] = status
    body["extension"] = [e for e in body.get("extension", []) if e["url"] != DATE_URL]
    body["extension"].append({"url": DATE_URL, "valueDateTime": when})
    body.update(extra)
    return body


def decided(referral: dict[str, Any], status: str, when: str, **parts: Any) -> dict[str, Any]:
    """``referral`` with the plan's authorization decision ``status`` dated ``when``."""
    body = copy.deepcopy(referral)
    body["extension"] = [e for e in body["extension"] if e["url"] != AUTH_URL]
    body["extension"].append({"url": AUTH_URL, "extension": [
        {"url": "status", "valueCoding": {"code": status}}, {"url": "date", "valueDateTime": when},
        *({"url": name, **value} for name, value in parts.items())]})
    return body


def obligations(client: httpx.Client, **params: str) -> list[tuple[str, str, str]]:
    """(kind, status, due) of the obligation Tasks matching ``params``, sorted."""
    found = client.get("/Task", params={"_profile": f"{BASE}/StructureDefinition/clr-notice-obligation",
                                        "_count": "100", **params}).json()
    return sorted((e["resource"]["code"]["coding"][0]["code"], e["resource"]["status"],
                   e["resource"]["restriction"]["period"]["end"]) for e in found.get("entry", []))


def obligation(client: httpx.Client, kind: str, **params: str) -> dict[str, Any]:
    """The one obligation of ``kind`` matching ``params``."""
    found = client.get("/Task", params={"_profile": f"{BASE}/StructureDefinition/clr-notice-obligation",
                                        "code": kind, **params}).json()
    entries = found.get("entry", [])
    assert len(entries) == 1, [e["resource"]["code"] for e in entries]
    return entries[0]["resource"]


def status_code(task: dict[str, Any]) -> str:
    """The Referral Status code of a referral Task."""
    return task["businessStatus"]["coding"][0]["code"]


def fixed_clock_client(directory: Path, now: str) -> Iterator[httpx.Client]:
    """A client of a dev-mode live server whose clock is fixed at ``now`` (for module-scoped fixtures)."""
    server = fixed_clock_server(directory, now)
    try:
        with httpx.Client(base_url=server.base_url, timeout=30.0,
                          headers={"Accept": "application/fhir+json"}) as http:
            yield http
    finally:
        server.stop()
