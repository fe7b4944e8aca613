"""Member letters over HTTP on a dev-mode live server whose clock is fixed at Wednesday 2 December 2026, 10:00 in
California: letters the notice worker queued (MAILWRIT Communications in preparation) are cut into the day's
print batch, downloaded as one PDF (letter + enclosures, checked with pypdf), and marked mailed, which completes
each Member's decision notice obligation with the mailing date. Cutting and marking twice change nothing; a
Member who opted out of written communication is never printed and shows on the worklist as written-opt-out."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from tests.api.clr_helpers import fixed_clock_client, obligation
from tests.api.helpers import FHIR_JSON
from tests.api.letters_helpers import CLINICAL, OPT_OUT_URL, decided_referral, member_with_address, queued_letter

NOW = "2026-12-02T18:00:00+00:00"
DAY = "2026-12-02"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    yield from fixed_clock_client(Path(tmp_path_factory.mktemp("letters")), NOW)


def _pages(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def _cut(client: httpx.Client, day: str = DAY) -> httpx.Response:
    return client.post("/$clr-print-batch", params={"date": day})


def _items(batch: dict[str, Any]) -> list[str]:
    return [e["item"]["reference"] for e in batch.get("entry", [])]


@pytest.fixture(scope="module")
def world(client: httpx.Client) -> dict[str, Any]:
    """A denied letter, an approved letter and an opted-out Member's letter, queued before the batch is cut."""
    denied_member = member_with_address(client)
    denied = decided_referral(client, denied_member, "denied", "2026-12-01T09:00:00-08:00",
                              reason="The service is not medically necessary for you")
    denied_letter = queued_letter(client, denied, [
        "We reviewed the request for Enhanced Care Management and denied it on December 1, 2026."])
    approved_member = member_with_address(client)
    approved = decided_referral(client, approved_member, "approved", "2026-12-01T11:00:00-08:00")
    approved_letter = queued_letter(client, approved, [])
    opted_member = member_with_address(client, opted_out=True)
    opted = decided_referral(client, opted_member, "approved", "2026-12-01T11:00:00-08:00")
    opted_letter = queued_letter(client, opted, ["Never printed"])
    return {"denied": denied, "denied_letter": denied_letter, "denied_member": denied_member,
            "approved": approved, "approved_letter": approved_letter, "opted": opted, "opted_letter": opted_letter}


def test_a_queued_letter_leaves_its_obligation_open(client: httpx.Client, world: dict[str, Any]) -> None:
    owed = obligation(client, "authorization-decision-member", focus=f"ServiceRequest/{world['denied']['id']}")
    assert owed["status"] == "requested"


def test_cutting_the_batch_takes_the_waiting_letters_once(client: httpx.Client, world: dict[str, Any]) -> None:
    first = _cut(client)
    assert first.status_code == 201, first.text
    batch = first.json()
    assert batch["resourceType"] == "List" and batch["identifier"] == [
        {"system": "http://fhir-clr.org/fhir/sid/print-batch", "value": DAY}]
    assert first.headers["content-location"].endswith(f"/$clr-print-batch?batch={DAY}")
    assert sorted(_items(batch)) == sorted(f"Communication/{world[k]['id']}" for k in ("denied_letter",
                                                                                       "approved_letter"))
    assert batch["note"] == [{"text": f"Left out: Communication/{world['opted_letter']['id']} (opted out of "
                                      "written communication)"}]
    again = _cut(client)
    assert again.status_code == 200 and again.json()["id"] == batch["id"] and _items(again.json()) == _items(batch)
    stored = client.get("/List", params={"identifier": f"http://fhir-clr.org/fhir/sid/print-batch|{DAY}"}).json()
    assert stored["total"] == 1


def test_the_batch_pdf_holds_each_letter_and_its_enclosures(client: httpx.Client, world: dict[str, Any]) -> None:
    _cut(client)
    response = client.get("/$clr-print-batch", params={"batch": DAY}, headers={"Accept": "application/pdf"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == f'attachment; filename="print-batch-{DAY}.pdf"'
    pages = _pages(response.content)
    assert len(pages) == 6  # denied: letter + Your Rights + State Hearing + IMR; approved: letter + Your Rights
    letters = [i for i, text in enumerate(pages) if "Notice of Action" in text]
    assert len(letters) == 2
    denied = next(pages[i] for i in letters if world["denied_member"]["name"][0]["family"] in pages[i])
    assert "Enhanced Care Management" in denied and "denied it on December 1, 2026" in denied
    assert "Reason for our decision: The service is not medically necessary for you" in denied
    assert "12 Main Street" in denied and "Fresno, CA 93701" in denied
    approved_index = next(i for i in letters if pages[i] != denied)
    assert "the request was approved" in pages[approved_index] and "Reason for" not in pages[approved_index]
    assert "Your Rights" in pages[approved_index + 1] and "SAMPLE" in pages[approved_index + 1]
    text = "\n".join(pages)
    for secret in (*CLINICAL, "91234567A", "1980-04-01", "555-0199", "Never printed"):
        assert secret not in text, secret
    again = client.get("/$clr-print-batch", params={"batch": DAY}, headers={"Accept": "application/pdf"})
    assert again.content == response.content  # the same file again


def test_marking_the_batch_mailed_completes_the_obligations_once(client: httpx.Client,
                                                                 world: dict[str, Any]) -> None:
    _cut(client)
    marked = client.post("/$clr-print-batch-mailed", params={"batch": DAY, "date": DAY})
    assert marked.status_code == 200, marked.text
    counts = {p["name"]: p["valueInteger"] for p in marked.json()["parameter"]}
    assert counts == {"marked": 2, "alreadySent": 0, "notInPreparation": 0, "notPrinted": 0}
    for key in ("denied", "approved"):
        letter = client.get(f"/Communication/{world[key + '_letter']['id']}").json()
        assert (letter["status"], letter["sent"]) == ("completed", DAY)
        owed = obligation(client, "authorization-decision-member", focus=f"ServiceRequest/{world[key]['id']}")
        assert owed["status"] == "completed" and owed["executionPeriod"]["end"] == DAY
        assert owed["output"][0]["valueReference"] == {"reference": f"Communication/{letter['id']}"}
    # again, by a Parameters body this time: nothing changes
    body = {"resourceType": "Parameters", "parameter": [{"name": "batch", "valueString": DAY},
                                                         {"name": "date", "valueDate": DAY}]}
    again = client.post("/$clr-print-batch-mailed", json=body, headers=FHIR_JSON)
    assert {p["name"]: p["valueInteger"] for p in again.json()["parameter"]} == {
        "marked": 0, "alreadySent": 2, "notInPreparation": 0, "notPrinted": 0}
    letter = client.get(f"/Communication/{world['denied_letter']['id']}").json()
    assert letter["meta"]["versionId"] == "2" and letter["sent"] == DAY
    assert client.get(f"/Communication/{world['opted_letter']['id']}").json()["status"] == "preparation"


def test_the_opted_out_member_is_on_the_worklist_as_needs_contact(client: httpx.Client,
                                                                   world: dict[str, Any]) -> None:
    worklist = client.get("/$clr-worklist").json()
    group = next(p for p in worklist["parameter"] if p["name"] == "written-opt-out")
    parts = {p["name"]: p.get("valueInteger", p.get("valueString")) for p in group["part"]}
    assert parts["count"] == 1
    listed = client.get(f"/{parts['search']}").json()
    assert [e["resource"]["focus"]["reference"] for e in listed["entry"]] == [
        f"ServiceRequest/{world['opted']['id']}"]


def test_another_day_has_nothing_to_print(client: httpx.Client, world: dict[str, Any]) -> None:
    _cut(client)
    empty = client.post("/$clr-print-batch", params={"date": "2026-12-01"})
    assert empty.status_code == 200 and "id" not in empty.json()
    assert empty.json()["emptyReason"]["text"] == "No letter is waiting to be printed"
    missing = client.get("/$clr-print-batch", params={"batch": "2026-12-01"})
    assert missing.status_code == 404 and "No print batch was cut for 2026-12-01" in missing.text


@pytest.mark.parametrize(("method", "path", "params", "expression"), [
    ("POST", "/$clr-print-batch", {"date": "2026-13-01"}, "date"),
    ("POST", "/$clr-print-batch", {"date": "tomorrow"}, "date"),
    ("POST", "/$clr-print-batch", {"date": "2026-12-03"}, "date"),  # in the future
    ("GET", "/$clr-print-batch", {}, "batch"),
    ("POST", "/$clr-print-batch-mailed", {"date": DAY}, "batch"),
    ("POST", "/$clr-print-batch-mailed", {"batch": DAY, "date": "2026-12-01"}, "date"),  # before the batch day
    ("POST", "/$clr-print-batch-mailed", {"batch": DAY, "date": "2026-12-03"}, "date"),  # in the future
])
def test_bad_parameters_get_one_line_naming_the_parameter(client: httpx.Client, world: dict[str, Any],
                                                          method: str, path: str, params: dict[str, str],
                                                          expression: str) -> None:
    _cut(client)
    response = client.request(method, path, params=params)
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert issue["expression"] == [expression] and "\n" not in issue["details"]["text"]


def test_a_member_who_opts_out_after_the_cut_is_neither_printed_nor_marked(client: httpx.Client) -> None:
    member = member_with_address(client)
    referral = decided_referral(client, member, "approved", "2026-11-27T11:00:00-08:00")
    letter = queued_letter(client, referral, ["Approved"])
    cut = _cut(client, "2026-11-30")
    assert cut.status_code == 201 and _items(cut.json()) == [f"Communication/{letter['id']}"]
    opted = {**member, "extension": [{"url": OPT_OUT_URL, "valueBoolean": True}]}
    assert client.put(f"/Patient/{member['id']}", json=opted, headers=FHIR_JSON).status_code == 200
    pdf = client.get("/$clr-print-batch", params={"batch": "2026-11-30"}, headers={"Accept": "*/*"})
    assert pdf.status_code == 200 and _pages(pdf.content) == []
    marked = client.post("/$clr-print-batch-mailed", params={"batch": "2026-11-30", "date": DAY}).json()
    assert {p["name"]: p["valueInteger"] for p in marked["parameter"]}["notPrinted"] == 1
    assert client.get(f"/Communication/{letter['id']}").json()["status"] == "preparation"
    owed = obligation(client, "authorization-decision-member", focus=f"ServiceRequest/{referral['id']}")
    assert owed["status"] == "requested"


def test_a_member_reached_by_phone_is_never_sent_the_queued_letter(client: httpx.Client,
                                                                   world: dict[str, Any]) -> None:
    def needs_contact() -> int:
        group = next(p for p in client.get("/$clr-worklist").json()["parameter"] if p["name"] == "written-opt-out")
        return next(p["valueInteger"] for p in group["part"] if p["name"] == "count")

    before = needs_contact()
    owed = obligation(client, "authorization-decision-member", focus=f"ServiceRequest/{world['opted']['id']}")
    phoned = {**world["opted_letter"], "medium": [{"text": "telephone"}], "status": "completed",
              "sent": "2026-12-02T09:00:00-08:00", "payload": [{"contentString": "Told the Member by phone"}]}
    del phoned["id"], phoned["meta"]
    assert client.post("/Communication", json=phoned, headers=FHIR_JSON).status_code == 201
    assert client.get(f"/Task/{owed['id']}").json()["status"] == "completed"
    assert needs_contact() == before - 1
    patient_id = world["opted"]["subject"]["reference"].split("/")[1]
    member = client.get(f"/Patient/{patient_id}").json()
    member["extension"] = [{"url": OPT_OUT_URL, "valueBoolean": False}]  # opts back in later
    assert client.put(f"/Patient/{patient_id}", json=member, headers=FHIR_JSON).status_code == 200
    cut = client.post("/$clr-print-batch", params={"date": "2026-11-29"}).json()
    assert "entry" not in cut
    assert {"text": f"Left out: Communication/{world['opted_letter']['id']} (its notice obligation was already "
                    "satisfied or cancelled: set the letter to stopped)"} in cut["note"]
