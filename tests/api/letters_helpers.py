"""Builders for Member letter tests: a Member with clinical details that must never reach a letter, a decided
referral, and the letter Communication the core notice worker queues for a Member reached by mail."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.clr_helpers import BASE, created, decided, obligation, organization, referral_body, updated
from tests.api.helpers import unique

OPT_OUT_URL = f"{BASE}/StructureDefinition/written-communication-opt-out"
MAILWRIT = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode", "code": "MAILWRIT",
                        "display": "mail"}]}
CLINICAL = ("Schizophrenia-F20-SECRET", "opioid use disorder SECRET", "case note SECRET")
"""Clinical text put on the Member's referral; none of it may appear in a letter."""


def member_with_address(client: httpx.Client, *, opted_out: bool = False) -> dict[str, Any]:
    """A Member with a CIN, birth date, phone and mailing address (and the opt-out extension when asked)."""
    body: dict[str, Any] = {
        "resourceType": "Patient", "identifier": [{"system": f"{BASE}/sid/medi-cal-cin", "value": "91234567A"}],
        "name": [{"use": "official", "family": unique("Garcia"), "given": ["Ana"]}], "birthDate": "1980-04-01",
        "telecom": [{"system": "phone", "value": "555-0199"}],
        "address": [{"use": "home", "line": ["12 Main Street", "Apt 3"], "city": "Fresno", "state": "CA",
                     "postalCode": "93701"}]}
    if opted_out:
        body["extension"] = [{"url": OPT_OUT_URL, "valueBoolean": True}]
    return created(client, body)


def decided_referral(client: httpx.Client, patient: dict[str, Any], status: str, when: str,
                     reason: str | None = None) -> dict[str, Any]:
    """An ECM referral of ``patient`` carrying clinical details, with the plan's decision ``status``."""
    referral = created(client, referral_body(
        f"Patient/{patient['id']}", organization(client, "clinic"), authored="2026-11-30",
        reasonCode=[{"text": CLINICAL[0]}, {"text": CLINICAL[1]}], note=[{"text": CLINICAL[2]}]))
    parts = {"denial-reason": {"valueCodeableConcept": {"text": reason}}} if reason else {}
    return updated(client, decided(referral, status, when, **parts))


def queued_letter(client: httpx.Client, referral: dict[str, Any], text: list[str]) -> dict[str, Any]:
    """The CLR Notice the core worker creates for a Member reached by mail: in preparation, MAILWRIT, ``basedOn``
    the Member's decision obligation, to and about the Member, the composed text as payload."""
    owed = obligation(client, "authorization-decision-member", focus=f"ServiceRequest/{referral['id']}")
    return created(client, {
        "resourceType": "Communication", "meta": {"profile": [f"{BASE}/StructureDefinition/clr-notice"]},
        "status": "preparation", "basedOn": [{"reference": f"Task/{owed['id']}"}],
        "about": [{"reference": f"ServiceRequest/{referral['id']}"}], "subject": referral["subject"],
        "recipient": [referral["subject"]], "medium": [MAILWRIT],
        "category": [{"coding": [{"system": f"{BASE}/CodeSystem/message-category", "code": "notice"}]}],
        "extension": [{"url": f"{BASE}/StructureDefinition/notice-channel",
                       "valueCoding": {"system": f"{BASE}/CodeSystem/notice-channels", "code": "mail"}}],
        **({"payload": [{"contentString": t} for t in text]} if text else {})})
