"""Channel choice per recipient from FHIR data, the digest day rule, and S/MIME encryption for a recipient's
registered certificate."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs7

from fhir_clr.clr.config import bundled_rules
from fhir_clr.notices.channels import ChannelChooser, Route
from fhir_clr.notices.digest import digest_day
from fhir_clr.notices.smtp import OutgoingEmail, SmtpConfig, build_message

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


def test_email_to_a_recipient_with_a_certificate_is_smime_encrypted_for_it() -> None:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    recipient = ca.issue_cert("intake@clinic.example.org", key_type=trustme.KeyType.RSA)
    config = SmtpConfig("relay", 587, "starttls", "notices@plan.example.org", None, None, None, 5.0)
    email = OutgoingEmail("intake@clinic.example.org", "Referral 1", "Authorization decision: Approved\n",
                          "<notice-1@plan.example.org>", datetime(2026, 12, 2, tzinfo=UTC),
                          recipient.cert_chain_pems[0].bytes())
    message = build_message(config, email)
    assert message.get_content_type() == "application/pkcs7-mime" and message["Message-ID"] == email.message_id
    assert b"Approved" not in message.as_bytes()
    inner = pkcs7.pkcs7_decrypt_der(message.get_content(), _certificate(recipient), _key(recipient), [])
    assert b"Authorization decision: Approved" in inner


def _certificate(issued: trustme.LeafCert) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())


def _key(issued: trustme.LeafCert) -> Any:
    return load_pem_private_key(issued.private_key_pem.bytes(), None)
