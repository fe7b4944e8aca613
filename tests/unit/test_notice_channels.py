"""Channel choice per recipient from FHIR data, and the digest day rule."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import pytest

from fhir_clr.clr.config import bundled_rules
from fhir_clr.notices.channels import ChannelChooser, Route
from fhir_clr.notices.digest import digest_day

PREFERENCE = "http://fhir-clr.org/fhir/StructureDefinition/notice-channel-preference"
OPT_OUT = "https://fhir-clr.org/StructureDefinition/written-communication-opt-out"
EMAIL = {"system": "email", "value": "intake@clinic.example.org"}
PHONE = {"system": "phone", "value": "555-0100"}
ADDRESS = [{"line": ["1 Main St"], "city": "Fresno"}]
LOOP = "loop-closure-referring-entity"
DECISION = "authorization-decision-referring-entity"


def route(resource: dict[str, Any], kind: str = DECISION, subscribed: bool = False,
          others: dict[str, dict[str, Any]] | None = None) -> Route:
    reference = f"{resource['resourceType']}/x"
    found = {reference: resource, **(others or {})}

    async def read(ref: str) -> dict[str, Any] | None:
        return found.get(ref)

    async def subscription_of(_: str) -> str | None:
        return "sub-1" if subscribed else None

    return asyncio.run(ChannelChooser(bundled_rules(), read, subscription_of).route(reference, kind))


def prefers(code: str) -> dict[str, Any]:
    return {"url": PREFERENCE, "valueCode": code}


@pytest.mark.parametrize(("resource", "kind", "subscribed", "expected"), [
    ({"resourceType": "Organization", "telecom": [EMAIL]}, DECISION, False, ("email", None)),
    ({"resourceType": "Organization", "telecom": [EMAIL]}, DECISION, True, ("email", None)),
    ({"resourceType": "Organization"}, DECISION, True, ("fhir", None)),
    ({"resourceType": "Organization"}, DECISION, False, (None, "no-channel")),
    ({"resourceType": "Organization", "telecom": [EMAIL], "extension": [prefers("fhir")]}, DECISION, False,
     (None, "no-channel")),
    ({"resourceType": "Organization", "telecom": [EMAIL], "extension": [prefers("digest")]}, LOOP, False,
     ("digest", None)),
    ({"resourceType": "Organization", "telecom": [EMAIL], "extension": [prefers("digest")]}, DECISION, False,
     ("email", None)),
    ({"resourceType": "Organization", "telecom": [EMAIL], "extension": [prefers("letter")]}, DECISION, False,
     (None, "no-channel")),
    ({"resourceType": "Organization", "extension": [prefers("phone")]}, DECISION, False, ("phone", "needs-contact")),
    ({"resourceType": "Patient", "address": ADDRESS}, "authorization-decision-member", False, ("letter", None)),
    ({"resourceType": "Patient"}, "authorization-decision-member", False, (None, "no-channel")),
    ({"resourceType": "Patient", "address": ADDRESS, "telecom": [EMAIL],
      "extension": [{"url": OPT_OUT, "valueBoolean": True}]}, "authorization-decision-member", False, ("email", None)),
    ({"resourceType": "Patient", "address": ADDRESS, "telecom": [PHONE],
      "extension": [{"url": OPT_OUT, "valueBoolean": True}]}, "authorization-decision-member", False,
     ("phone", "needs-contact")),
    ({"resourceType": "Patient", "address": ADDRESS, "extension": [{"url": OPT_OUT, "valueBoolean": True}]},
     "authorization-decision-member", False, (None, "needs-contact")),
])
def test_route(resource: dict[str, Any], kind: str, subscribed: bool, expected: tuple[str | None, str | None]) -> None:
    chosen = route(resource, kind, subscribed)
    assert (chosen.channel, chosen.status) == expected
    assert (chosen.reason != "") == (expected[1] is not None)
    assert "555-0100" not in chosen.reason and "intake@" not in chosen.reason


def test_a_practitioner_role_falls_back_to_its_organizations_address() -> None:
    role = {"resourceType": "PractitionerRole", "organization": {"reference": "Organization/o"}}
    chosen = route(role, others={"Organization/o": {"resourceType": "Organization", "name": "Clinic",
                                                    "telecom": [EMAIL]}})
    assert (chosen.channel, chosen.address, chosen.name) == ("email", EMAIL["value"], "Clinic")


@pytest.mark.parametrize(("processed", "expected"), [
    (date(2026, 12, 3), date(2026, 12, 5)), (date(2026, 12, 5), date(2026, 12, 5)),
    (date(2026, 12, 6), date(2027, 1, 5))])
def test_digest_day(processed: date, expected: date) -> None:
    assert digest_day(processed, bundled_rules()) == expected


def test_digest_day_in_a_short_month() -> None:
    rules = bundled_rules()
    rules["notices"]["digest"]["day_of_month"] = 31
    assert digest_day(date(2027, 2, 10), rules) == date(2027, 2, 28)
