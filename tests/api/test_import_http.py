"""``POST /$import`` over HTTP on a live dev-mode server: 202 + status URL, polling, the report and the rejected
rows as CSV and as an OperationOutcome; an unknown job is 404 and a missing kind is 400."""

from __future__ import annotations

import io
import time
from datetime import date

import httpx

from fhir_clr.clr.config import bundled_rules
from fhir_clr.mapping.writers import write_table
from tests.api.clr_helpers import created, organization, referral_body, referral_task_body
from tests.api.test_rtf_import import row, valid_npi
from tests.bundled import find_spec

SYSTEMS = bundled_rules()["identifier_systems"]


def poll(client: httpx.Client, url: str) -> httpx.Response:
    for _ in range(200):
        response = client.get(url)
        if response.status_code != 202:
            return response
        time.sleep(0.05)
    raise AssertionError("the import did not finish")


def test_import_over_http(client: httpx.Client) -> None:
    npi = valid_npi("423456789")
    member = created(client, {"resourceType": "Patient", "identifier": [{"system": SYSTEMS["cin"],
                                                                         "value": "52345678E"}]})
    provider = created(client, {"resourceType": "Organization", "name": "ECM provider",
                                "identifier": [{"system": SYSTEMS["npi"], "value": npi}]})
    referral = created(client, referral_body(f"Patient/{member['id']}", organization(client, "clinic")))
    task = created(client, referral_task_body(referral, f"Organization/{provider['id']}", since="2026-10-01"))
    out = io.BytesIO()
    write_table(find_spec("rtf", "ecm"), [row("52345678E", npi, "Accepted", date(2026, 11, 2)),
                                          row("52345678E", npi, "Teleported", date(2026, 11, 2))], "pipe", out)

    assert client.post("/$import", content=out.getvalue()).status_code == 400
    started = client.post("/$import", params={"kind": "rtf", "program": "ecm", "filename": "rtf.txt"},
                          content=out.getvalue(), headers={"Content-Type": "text/plain"})
    assert started.status_code == 202, started.text
    status_url = started.headers["Content-Location"]
    report = poll(client, status_url)
    assert report.status_code == 200, report.text
    body = report.json()
    assert (body["applied"], body["rejected"], body["format"]) == (1, 1, "pipe")
    assert client.get(f"/Task/{task['id']}").json()["businessStatus"]["coding"][0]["code"] == "1"
    rejects = client.get(body["rejects"]["csv"])
    assert rejects.headers["content-type"].startswith("text/csv")
    assert rejects.text.splitlines()[1].startswith("3,Referral Status,Teleported,code,")
    outcome = client.get(body["rejects"]["outcome"]).json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["location"] == [
        "row 3, column 'Referral Status'"]
    assert client.get("/$import-status/unknown").status_code == 404
    assert client.delete(status_url).status_code == 202
    assert client.get(status_url).status_code == 404


def test_import_reads_the_named_xlsx_sheet(client: httpx.Client) -> None:
    from tests.api.test_rtf_import import with_cover_sheet

    out = io.BytesIO()
    write_table(find_spec("rtf", "ecm"), [row("62345678F", valid_npi("523456789"), "1", date(2026, 11, 2))],
                "xlsx", out)
    workbook = with_cover_sheet(out.getvalue(), "RTF")
    params = {"kind": "rtf", "program": "ecm", "filename": "rtf.xlsx", "dryRun": "true"}
    first = poll(client, client.post("/$import", params=params, content=workbook).headers["Content-Location"])
    assert first.json()["fileProblems"] == ["required columns missing: " + ", ".join(
        c.header for c in find_spec("rtf", "ecm").columns if c.required)]
    named = poll(client, client.post("/$import", params={**params, "sheet": "RTF"},
                                     content=workbook).headers["Content-Location"])
    assert (named.json()["format"], named.json()["rejected"], named.json()["fileProblems"]) == ("xlsx", 1, [])


def test_export_over_http(client: httpx.Client) -> None:
    npi = valid_npi("333456789")
    member = created(client, {"resourceType": "Patient", "identifier": [{"system": SYSTEMS["cin"],
                                                                         "value": "33345678M"}]})
    provider = created(client, {"resourceType": "Organization", "name": "ECM provider",
                                "identifier": [{"system": SYSTEMS["npi"], "value": npi}]})
    referral = created(client, referral_body(f"Patient/{member['id']}", organization(client, "clinic")))
    created(client, referral_task_body(referral, f"Organization/{provider['id']}", since="2026-10-01"))
    response = client.get("/$clr-export", params={"kind": "rtf", "program": "ecm", "provider": npi,
                                                  "period": "2026-11", "format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="ecm-rtf-clr-2026-11.csv"' in response.headers["content-disposition"]
    lines = response.text.splitlines()
    assert lines[0].startswith("Primary Payer (MCP) Identifier,") and "33345678M" in lines[1]
    assert client.get("/$clr-export", params={"kind": "rtf", "provider": npi}).status_code == 400
    assert client.get("/$clr-export", params={"kind": "rtf", "program": "ecm", "provider": npi,
                                              "period": "2026-13"}).status_code == 400
