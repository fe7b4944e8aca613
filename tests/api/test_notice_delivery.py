"""Notice delivery by secure email (issue 22): a live server sends the notices its obligations ask for through a
real SMTP relay in the test process (STARTTLS with a test CA), and records each as sent.

One server for the module; the tests run in order: a decision notice arrives with the minimum necessary and
completes its obligation at the send time; the relay down for a while, then the notice sent once; a refused
recipient makes the notice fail and the obligation show on the worklist; the server killed between the commit
and the send, then the notice sent once after the restart."""

from __future__ import annotations

import base64
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key, pkcs7

from tests.api.clr_helpers import BASE, created, decided, referral_body, updated
from tests.api.helpers import unique
from tests.api.smtp_sink import SmtpSink
from tests.conftest import LiveServer

NOTICE_PROFILE = f"{BASE}/StructureDefinition/clr-notice"
OBLIGATION_PROFILE = f"{BASE}/StructureDefinition/clr-notice-obligation"
DELIVERY_STATUS = f"{BASE}/CodeSystem/notice-delivery-status"
OPT_OUT = "https://fhir-clr.org/StructureDefinition/written-communication-opt-out"
CLINICAL = ("Quibblesworth", "Major depressive disorder", "opioid use", "foster care placement", "PRIVATE NOTE")


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpSink]:
    relay = SmtpSink(tmp_path_factory.mktemp("smtp"))
    relay.start()
    yield relay
    relay.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("notices"), {
        **sink.env, "FHIR_CLR_NOTICE_DELIVERY": "true", "FHIR_CLR_NOTICE_POLL_SECONDS": "0.3",
        "FHIR_CLR_NOTICE_RETRY_BASE_SECONDS": "0.5", "FHIR_CLR_NOTICE_RETRY_MAX_SECONDS": "1",
        # a killed worker's lease is taken over once it runs out: 2 s here, not the 30 s default
        "FHIR_CLR_SUBSCRIPTION_LEASE_SECONDS": "2"})
    live.start()
    yield live
    live.stop()


def _client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30.0, headers={"Accept": "application/fhir+json"})


@pytest.fixture()
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with _client(server) as http:
        yield http


def _referral(client: httpx.Client, address: str) -> dict[str, Any]:
    """A referral for ECM from a Referring Entity with the email ``address``, about a Member with clinical
    details that must never reach a notice."""
    referring = created(client, {"resourceType": "Organization", "name": unique("Clinic"),
                                 "telecom": [{"system": "email", "value": address}]})
    member = created(client, {"resourceType": "Patient", "name": [{"family": "Quibblesworth", "given": ["Zed"]}],
                              "address": [{"line": ["1 Main St"], "city": "Fresno", "state": "CA"}]})
    return created(client, referral_body(
        f"Patient/{member['id']}", f"Organization/{referring['id']}", service="ECM",
        reasonCode=[{"text": "Major depressive disorder; opioid use; foster care placement"}],
        note=[{"text": "PRIVATE NOTE"}]))


def _decide(client: httpx.Client, referral: dict[str, Any], status: str = "approved") -> None:
    updated(client, decided(referral, status, datetime.now(UTC).isoformat(timespec="seconds")))


def _notices(client: httpx.Client, referral: dict[str, Any]) -> list[dict[str, Any]]:
    found = client.get("/Communication", params={
        "_profile": NOTICE_PROFILE, "subject": referral["subject"]["reference"], "_count": "50"}).json()
    return [e["resource"] for e in found.get("entry", [])]


def _obligation(client: httpx.Client, referral: dict[str, Any], kind: str) -> dict[str, Any]:
    found = client.get("/Task", params={"_profile": OBLIGATION_PROFILE, "code": kind,
                                        "focus": f"ServiceRequest/{referral['id']}"}).json()
    (entry,) = found["entry"]
    return entry["resource"]


def _referring_notice(client: httpx.Client, referral: dict[str, Any]) -> dict[str, Any]:
    (notice,) = [n for n in _notices(client, referral)
                 if n["reasonCode"][0]["coding"][0]["code"] == "authorization-decision-referring-entity"]
    return notice


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _eventually(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, KeyError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_decision_notice_arrives_with_the_minimum_necessary_and_completes_the_obligation(
        client: httpx.Client, sink: SmtpSink) -> None:
    address = f"{unique('intake')}@clinic.example.org"
    referral = _referral(client, address)
    _decide(client, referral)
    message = sink.wait_for(address, timeout=15)
    text = f"{message.message['Subject']}\n{message.text}"
    assert message.message["To"] == address and "Enhanced Care Management" in text and "Approved" in text
    assert referral["id"] in text and message.message["Message-ID"].startswith("<notice-")
    assert not [c for c in CLINICAL if c.lower() in text.lower()], text

    def completed() -> dict[str, Any]:
        obligation = _obligation(client, referral, "authorization-decision-referring-entity")
        assert obligation["status"] == "completed"
        return obligation
    obligation = _eventually(completed)
    notice = _referring_notice(client, referral)
    sent = _instant(notice["sent"])
    assert notice["status"] == "completed" and _instant(obligation["executionPeriod"]["end"]) == sent
    assert sent - 5 <= message.at <= sent + 5
    assert notice["payload"][0]["contentString"] == f"Subject: {message.message['Subject']}\n\n{message.text}"
    assert obligation["output"][0]["valueReference"]["reference"] == f"Communication/{notice['id']}"
    assert message.message["Message-ID"] == f"<notice-{notice['id']}@plan.example.org>"
    # the Member's notice is a letter left in preparation for the print batch
    (letter,) = [n for n in _notices(client, referral) if n["medium"][0]["coding"][0]["code"] == "MAILWRIT"]
    assert letter["status"] == "preparation" and letter["recipient"] == [referral["subject"]] and \
        "Zed Quibblesworth" in letter["payload"][0]["contentString"]
    fields = orjson.loads(base64.b64decode(letter["payload"][1]["contentAttachment"]["data"]))
    assert letter["payload"][1]["contentAttachment"]["title"] == "notice-fields"
    assert fields["service"] == "Enhanced Care Management" and fields["authorization_decision"] == "Approved"
    assert not [c for c in CLINICAL[1:] if c.lower() in orjson.dumps(fields).decode().lower()]
    time.sleep(1.5)
    assert len(sink.to(address)) == 1


def test_relay_down_for_a_while_then_the_notice_is_sent_once(client: httpx.Client, sink: SmtpSink) -> None:
    address = f"{unique('later')}@clinic.example.org"
    referral = _referral(client, address)
    sink.stop()
    try:
        _decide(client, referral)

        def retrying() -> None:
            notice = _referring_notice(client, referral)
            assert notice["status"] == "preparation" and "unreachable" in notice["statusReason"]["text"]
        _eventually(retrying)
        assert _obligation(client, referral, "authorization-decision-referring-entity")["status"] == "requested"
    finally:
        sink.start()
    sink.wait_for(address, timeout=15)
    _eventually(lambda: _assert_status(_referring_notice(client, referral), "completed"))
    time.sleep(2)
    assert len(sink.to(address)) == 1


def _assert_status(resource: dict[str, Any], status: str) -> None:
    assert resource["status"] == status, resource["status"]


def test_refused_recipient_fails_and_shows_on_the_worklist(client: httpx.Client, sink: SmtpSink) -> None:
    address = f"refused-{unique('x')}@clinic.example.org"
    referral = _referral(client, address)
    _decide(client, referral, "denied")

    def failed() -> dict[str, Any]:
        notice = _referring_notice(client, referral)
        assert notice["status"] == "not-done" and "550" in notice["statusReason"]["text"]
        return notice
    _eventually(failed)

    def marked_failed() -> dict[str, Any]:
        # the worker marks the obligation just after it records the failed notice
        obligation = _obligation(client, referral, "authorization-decision-referring-entity")
        assert obligation["status"] == "requested"
        assert obligation["businessStatus"]["coding"][0]["code"] == "failed"
        return obligation
    obligation = _eventually(marked_failed)
    assert "550" in obligation["statusReason"]["text"]
    listed = client.get("/Task", params={"_profile": OBLIGATION_PROFILE, "status": "requested",
                                         "business-status": f"{DELIVERY_STATUS}|failed"}).json()
    assert obligation["id"] in {e["resource"]["id"] for e in listed["entry"]}
    worklist = client.get("/$clr-worklist").json()
    groups = {p["name"]: p for p in worklist["parameter"]}
    assert "notice-failed" in groups


def test_a_notice_held_for_review_is_previewed_and_sent_from_the_console(client: httpx.Client, sink: SmtpSink,
                                                                         server: LiveServer) -> None:
    address = f"{unique('asks')}@clinic.example.org"
    referral = _referral(client, address)
    created(client, {"resourceType": "Communication", "status": "completed", "sender": referral["requester"],
                     "about": [{"reference": f"ServiceRequest/{referral['id']}"}],
                     "category": [{"coding": [{"system": f"{BASE}/CodeSystem/message-category",
                                               "code": "status-inquiry"}]}]})

    def held() -> dict[str, Any]:
        (notice,) = [n for n in _notices(client, referral)
                     if n["reasonCode"][0]["coding"][0]["code"] == "inquiry-response"]
        assert notice["status"] == "on-hold"
        return notice
    notice = _eventually(held)

    def marked_held() -> None:
        # the worker marks the obligation just after it creates the held notice
        assert _obligation(client, referral, "inquiry-response")["businessStatus"]["coding"][0]["code"] == "held"
    _eventually(marked_held)
    page = client.get("/console/notices", headers={"Accept": "text/html"})
    assert page.status_code == 200 and f'data-notice="{notice["id"]}"' in page.text
    assert referral["id"] in page.text and "Send notice" in page.text
    time.sleep(1)
    assert sink.to(address) == []  # held: nothing goes before a person sends it
    sent = client.post(f"/console/notices/{notice['id']}/send", headers={"Origin": server.base_url},
                       follow_redirects=False)
    assert sent.status_code == 303, sent.text
    message = sink.wait_for(address, timeout=15)
    assert "status" in message.message["Subject"].lower() and referral["id"] in message.text
    _eventually(lambda: _assert_status(_obligation(client, referral, "inquiry-response"), "completed"))
    timeline = client.get(f"/console/referrals/{referral['id']}", headers={"Accept": "text/html"})
    assert timeline.status_code == 200 and "exactly as sent" in timeline.text
    assert message.text.splitlines()[0] in timeline.text
    again = client.post(f"/console/notices/{notice['id']}/send", headers={"Origin": server.base_url})
    assert again.status_code == 409  # a sent notice is not sent again from here


def test_a_recipient_with_a_registered_certificate_gets_smime_encrypted_email(client: httpx.Client,
                                                                             sink: SmtpSink) -> None:
    address = f"{unique('smime')}@clinic.example.org"
    issued = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert(address, key_type=trustme.KeyType.RSA)
    certificate = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())
    der = base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()
    referral = _referral(client, address)
    requester = client.get(f"/{referral['requester']['reference']}").json()
    updated(client, {**requester, "extension": [{"url": f"{BASE}/StructureDefinition/smime-certificate",
                                                 "valueAttachment": {"contentType": "application/pkix-cert",
                                                                     "data": der}}]})
    _decide(client, referral)
    message = sink.wait_for(address, timeout=15)
    assert message.message.get_content_type() == "application/pkcs7-mime"
    assert b"Enhanced Care Management" not in message.message.as_bytes()
    inner = pkcs7.pkcs7_decrypt_der(message.message.get_content(), certificate,
                                    load_pem_private_key(issued.private_key_pem.bytes(), None), [])
    assert b"Enhanced Care Management" in inner and b"Approved" in inner


def test_recipients_without_a_usable_channel_show_on_the_worklist_with_the_reason(client: httpx.Client) -> None:
    referring = created(client, {"resourceType": "Organization", "name": unique("Paper Clinic"),
                                 "telecom": [{"system": "fax", "value": "555-0199"}]})
    member = created(client, {"resourceType": "Patient", "name": [{"family": unique("m")}],
                              "address": [{"city": "Fresno"}], "telecom": [{"system": "phone", "value": "555-0142"}],
                              "extension": [{"url": OPT_OUT, "valueBoolean": True}]})
    referral = created(client, referral_body(f"Patient/{member['id']}", f"Organization/{referring['id']}"))
    _decide(client, referral)

    def marked(kind: str, code: str) -> dict[str, Any]:
        obligation = _obligation(client, referral, kind)
        assert obligation["businessStatus"]["coding"][0]["code"] == code
        return obligation
    entity = _eventually(lambda: marked("authorization-decision-referring-entity", "no-channel"))
    assert "no email address" in entity["statusReason"]["text"] and "555" not in entity["statusReason"]["text"]
    person = _eventually(lambda: marked("authorization-decision-member", "needs-contact"))
    assert "opted out of written notices" in person["statusReason"]["text"]
    assert _notices(client, referral) == [] and entity["status"] == person["status"] == "requested"
    groups = {p["name"]: p for p in client.get("/$clr-worklist").json()["parameter"]}
    for name, obligation in (("no-notice-channel", entity), ("needs-contact", person)):
        search = next(part["valueString"] for part in groups[name]["part"] if part["name"] == "search")
        listed = client.get(f"/{search}&_count=500").json()
        assert obligation["id"] in {e["resource"]["id"] for e in listed.get("entry", [])}, name


def test_server_killed_between_commit_and_send_sends_after_restart_once(server: LiveServer, sink: SmtpSink,
                                                                        tmp_path: Path) -> None:
    address = f"{unique('crash')}@clinic.example.org"
    with _client(server) as client:
        referral = _referral(client, address)
        sink.stop()
        _decide(client, referral)
        _eventually(lambda: _assert_status(_referring_notice(client, referral), "preparation"))
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    sink.start()
    time.sleep(1)
    assert sink.to(address) == []
    server.start()
    sink.wait_for(address, timeout=20)
    with _client(server) as client:
        _eventually(lambda: _assert_status(_obligation(client, referral, "authorization-decision-referring-entity"),
                                           "completed"))
    time.sleep(2)
    assert len(sink.to(address)) == 1


def test_a_commit_wakes_the_worker_without_waiting_for_its_poll(sink: SmtpSink, tmp_path: Path) -> None:
    # the poll is ten minutes: a notice sent within seconds was started by the commit that owes it
    live = LiveServer(tmp_path / "data", {**sink.env, "FHIR_CLR_NOTICE_DELIVERY": "true",
                                          "FHIR_CLR_NOTICE_POLL_SECONDS": "600"})
    live.start()
    try:
        with _client(live) as client:
            address = f"{unique('woken')}@clinic.example.org"
            referral = _referral(client, address)
            time.sleep(1)  # the worker's first pass (at start-up) is over: it now waits
            _decide(client, referral)
            sink.wait_for(address, timeout=15)
            _eventually(lambda: _assert_status(
                _obligation(client, referral, "authorization-decision-referring-entity"), "completed"))
    finally:
        live.stop()
