"""The notice worker on every store adapter: one pass composes the owed notices, sends the email one through the
sender and records it sent (its obligation completed in the same write), queues the Member's letter; another
pass sends nothing again; a permanent refusal leaves the obligation open and marked failed."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_clr.config import BUNDLED_NOTICES_DIR
from fhir_clr.engine.engine import Engine
from fhir_clr.notices.smtp import DeliveryFailure, OutgoingEmail, SmtpConfig
from fhir_clr.notices.templates import NoticeTemplates
from fhir_clr.notices.worker import NoticeWorker, RetryPolicy
from fhir_clr.store.port import Store
from tests.bundled import clr_engine

BASE = "http://fhir-clr.org/fhir"


class RecordingSender:
    """Stands in for the SMTP relay: records each message, or refuses every recipient for good."""

    def __init__(self, refuse: bool = False) -> None:
        self.config = SmtpConfig("relay", 587, "starttls", "notices@plan.example.org", None, None, None, 5.0)
        self.sent: list[OutgoingEmail] = []
        self.refuse = refuse

    async def send(self, email: OutgoingEmail) -> None:
        if self.refuse:
            raise DeliveryFailure("SMTP 550: the relay refused the recipient", permanent=True)
        self.sent.append(email)

    async def close(self) -> None:
        return None


async def _body(engine: Engine, resource_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    found = await engine.search(resource_type, [*params, ("_count", "50")])
    return [orjson.loads(m.body) for m in found.matches if m.body is not None]


async def _decided_referral(engine: Engine, address: str) -> str:
    org = (await engine.create("Organization", {"resourceType": "Organization", "name": "Clinic",
                                                "telecom": [{"system": "email", "value": address}]})).stored
    patient = (await engine.create("Patient", {"resourceType": "Patient", "name": [{"family": "M"}],
                                               "address": [{"city": "Fresno"}]})).stored
    assert org is not None and patient is not None
    referral = (await engine.create("ServiceRequest", {
        "resourceType": "ServiceRequest", "meta": {"profile": [f"{BASE}/StructureDefinition/clr-referral"]},
        "status": "active", "intent": "order", "code": {"text": "ECM"},
        "subject": {"reference": f"Patient/{patient.resource_id}"},
        "requester": {"reference": f"Organization/{org.resource_id}"}, "authoredOn": "2026-11-30",
        "extension": [{"url": f"{BASE}/StructureDefinition/referral-type", "valueCoding": {"code": "1"}},
                      {"url": f"{BASE}/StructureDefinition/authorization-decision", "extension": [
                          {"url": "status", "valueCoding": {"code": "approved"}},
                          {"url": "date", "valueDateTime": "2026-12-01T10:00:00-08:00"}]}]})).stored
    assert referral is not None
    return f"ServiceRequest/{referral.resource_id}"


def _worker(store: Store, sender: RecordingSender) -> tuple[Engine, NoticeWorker]:
    engine = clr_engine(store)
    return engine, NoticeWorker(engine, store, NoticeTemplates(BUNDLED_NOTICES_DIR), sender,  # type: ignore[arg-type]
                                RetryPolicy(1, 2))


async def test_one_pass_sends_the_email_notice_and_queues_the_letter(store: Store) -> None:
    sender = RecordingSender()
    engine, worker = _worker(store, sender)
    referral = await _decided_referral(engine, "intake@clinic.example.org")
    await worker.run_once()
    assert [e.to for e in sender.sent] == ["intake@clinic.example.org"]
    subject = (await _body(engine, "ServiceRequest", [("_id", referral.partition("/")[2])]))[0]["subject"]
    notices = await _body(engine, "Communication", [("subject", subject["reference"])])
    assert {n["basedOn"][-1]["reference"] for n in notices if n["recipient"] != [subject]} == {referral}
    by_channel = {n["extension"][0]["valueCoding"]["code"]: n for n in notices}
    assert by_channel["email"]["status"] == "completed" and by_channel["letter"]["status"] == "preparation"
    obligations = {o["code"]["coding"][0]["code"]: o for o in await _body(engine, "Task", [("focus", referral)])}
    assert obligations["authorization-decision-referring-entity"]["status"] == "completed"
    assert obligations["authorization-decision-member"]["status"] == "requested"
    assert obligations["authorization-decision-member"]["businessStatus"]["coding"][0]["code"] == "queued"
    await worker.run_once()
    assert len(sender.sent) == 1


async def test_a_refused_recipient_fails_the_notice_and_keeps_the_obligation_open(store: Store) -> None:
    engine, worker = _worker(store, RecordingSender(refuse=True))
    referral = await _decided_referral(engine, "refused@clinic.example.org")
    await worker.run_once()
    notices = [n for n in await _body(engine, "Communication", [("based-on", referral)])
               if n["extension"][0]["valueCoding"]["code"] == "email"]
    assert [(n["status"], n["statusReason"]["text"]) for n in notices] == [
        ("not-done", "SMTP 550: the relay refused the recipient")]
    (obligation,) = await _body(engine, "Task", [("focus", referral),
                                                 ("code", "authorization-decision-referring-entity")])
    assert obligation["status"] == "requested" and obligation["businessStatus"]["coding"][0]["code"] == "failed"
