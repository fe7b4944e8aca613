"""Builders of CLR resources (referrals, referral Tasks, notice obligations) as plain JSON for report tests."""

from __future__ import annotations

from typing import Any

BASE = "http://fhir-clr.org/fhir"
REFERRAL_PROFILE = f"{BASE}/StructureDefinition/clr-referral"
REFERRAL_TASK_PROFILE = f"{BASE}/StructureDefinition/clr-referral-task"
OBLIGATION_PROFILE = f"{BASE}/StructureDefinition/clr-notice-obligation"
STATUS_DATE_URL = f"{BASE}/StructureDefinition/date-of-referral-status-update"
CLOSURE_DATE_URL = f"{BASE}/StructureDefinition/referral-loop-closure-date"


def referral(referral_id: str, authored: str, *, service: str = "ecm", requester: str | None = "Organization/clinic",
             referral_type: str = "1", authorization: str | None = None, decided: str | None = None,
             flag: str | None = None, subject: str = "Patient/member") -> dict[str, Any]:
    """A CLR Referral ServiceRequest authored ``authored``; optionally decided (status, date) and flagged."""
    extensions: list[dict[str, Any]] = [{"url": f"{BASE}/StructureDefinition/referral-type",
                                         "valueCoding": {"system": f"{BASE}/CodeSystem/referral-type",
                                                         "code": referral_type}}]
    if authorization:
        parts: list[dict[str, Any]] = [{"url": "status", "valueCoding": {
            "system": f"{BASE}/CodeSystem/authorization-status", "code": authorization}}]
        if decided:
            parts.append({"url": "date", "valueDateTime": decided})
        extensions.append({"url": f"{BASE}/StructureDefinition/authorization-decision", "extension": parts})
    meta: dict[str, Any] = {"profile": [REFERRAL_PROFILE]}
    if flag:
        meta["tag"] = [{"system": f"{BASE}/CodeSystem/referral-flags", "code": flag}]
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest", "id": referral_id, "meta": meta, "status": "active", "intent": "order",
        "code": {"coding": [{"system": f"{BASE}/CodeSystem/clr-services", "code": service}]},
        "subject": {"reference": subject}, "authoredOn": authored, "extension": extensions}
    if requester:
        resource["requester"] = {"reference": requester}
    return resource


def referral_task(task_id: str, referral_id: str, *, status_code: str = "3", status_date: str = "2026-10-01",
                  closure_reason: str | None = None, closure_date: str | None = None,
                  task_status: str = "requested", subject: str = "Patient/member") -> dict[str, Any]:
    """A CLR Referral Task for Member ``subject`` focused on ``ServiceRequest/referral_id`` with Referral Status
    ``status_code``."""
    extensions: list[dict[str, Any]] = [{"url": STATUS_DATE_URL, "valueDateTime": status_date}]
    if closure_date:
        extensions.append({"url": CLOSURE_DATE_URL, "valueDate": closure_date})
    task: dict[str, Any] = {
        "resourceType": "Task", "id": task_id, "meta": {"profile": [REFERRAL_TASK_PROFILE]},
        "status": task_status, "intent": "order",
        "businessStatus": {"coding": [{"system": f"{BASE}/CodeSystem/referral-status", "code": status_code}]},
        "focus": {"reference": f"ServiceRequest/{referral_id}"}, "for": {"reference": subject},
        "extension": extensions}
    if closure_reason:
        task["statusReason"] = {"coding": [{"system": f"{BASE}/CodeSystem/loop-closure-reason",
                                            "code": closure_reason}]}
    return task


def obligation(task_id: str, referral_id: str, due: str, *, kind: str = "authorization-decision-member",
               status: str = "requested", sent: str | None = None, subject: str = "Patient/member") -> dict[str, Any]:
    """A CLR Notice Obligation of ``kind`` for the referral of Member ``subject``, due ``due``; ``sent`` = when
    it was satisfied."""
    task: dict[str, Any] = {
        "resourceType": "Task", "id": task_id, "meta": {"profile": [OBLIGATION_PROFILE]}, "status": status,
        "intent": "order", "code": {"coding": [{"system": f"{BASE}/CodeSystem/notice-kinds", "code": kind}]},
        "focus": {"reference": f"ServiceRequest/{referral_id}"}, "for": {"reference": subject},
        "restriction": {"period": {"start": "2026-10-01", "end": due}}}
    if sent:
        task["executionPeriod"] = {"end": sent}
    return task
