"""A provider's RTF ``$import`` on a live secured server (plan, cbo-a, cbo-b): the provider matches rows only
against its own referrals, so every row about anything else — another provider's referral, a Member only the
plan knows, an unknown CIN — is refused with one and the same reason; the real import completes, and each
organization reads back its own received file and rejects and never another's. The plan's import keeps its
precise reasons."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_clr.clr.config import bundled_rules
from tests.api.clr_helpers import created, referral_body, referral_task_body, status_code
from tests.api.helpers import FHIR_JSON
from tests.api.security_client import access_token, http_for, new_client, start_secured
from tests.api.test_rtf_import import row, rtf, valid_npi
from tests.conftest import LiveServer

SYSTEMS = bundled_rules()["identifier_systems"]
PLAN = new_client("import-plan", "Organization/plan", "plan", ["system/*.cruds"])
CBO_A = new_client("import-cbo-a", "Organization/cbo-a", "servicing-provider", ["system/*.cruds"])
CBO_B = new_client("import-cbo-b", "Organization/cbo-b", "servicing-provider", ["system/*.cruds"], ec=True)
NPI = {"cbo-a": valid_npi("811111111"), "cbo-b": valid_npi("822222222")}
CIN_B, CIN_A, CIN_PLAN_ONLY, CIN_UNKNOWN = "81234567B", "82234567A", "83234567P", "84234567U"
REFERRED = (date.today() - timedelta(days=10)).isoformat()
STATUS_DAY = date.today() - timedelta(days=2)
"""The secured server runs on the real clock (a fixed one is for development mode only)."""


@dataclass
class World:
    """The server, one client per organization and the referral Tasks of cbo-a and cbo-b."""

    server: LiveServer
    plan: httpx.Client
    a: httpx.Client
    b: httpx.Client
    task_a: str
    task_b: str


def _referral(plan: httpx.Client, cin: str, provider: str) -> str:
    member = created(plan, {"resourceType": "Patient", "identifier": [{"system": SYSTEMS["cin"], "value": cin}]})
    referral = created(plan, referral_body(f"Patient/{member['id']}", "Organization/plan", authored=REFERRED,
                                           performer=[{"reference": f"Organization/{provider}"}]))
    return str(created(plan, referral_task_body(referral, f"Organization/{provider}", since=REFERRED))["id"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One referral for cbo-a, one for cbo-b, and a Member the plan knows without any referral."""
    data_dir: Path = tmp_path_factory.mktemp("import-access-server")
    server = start_secured(data_dir, PLAN, CBO_A, CBO_B)
    plan = http_for(server.base_url, access_token(server.base_url, PLAN))
    for org in ("plan", "cbo-a", "cbo-b"):
        body: dict[str, Any] = {"resourceType": "Organization", "id": org, "name": org}
        if org in NPI:
            body["identifier"] = [{"system": SYSTEMS["npi"], "value": NPI[org]}]
        assert plan.put(f"/Organization/{org}", json=body, headers=FHIR_JSON).status_code in (200, 201)
    task_a, task_b = _referral(plan, CIN_A, "cbo-a"), _referral(plan, CIN_B, "cbo-b")
    created(plan, {"resourceType": "Patient", "identifier": [{"system": SYSTEMS["cin"], "value": CIN_PLAN_ONLY}]})
    a = http_for(server.base_url, access_token(server.base_url, CBO_A))
    b = http_for(server.base_url, access_token(server.base_url, CBO_B))
    yield World(server, plan, a, b, task_a, task_b)
    for http in (plan, a, b):
        http.close()
    server.stop()


def _b_file(status: str = "1") -> bytes:
    """cbo-b's RTF: its own referral (row 2), then rows about anything else (rows 3 to 6)."""
    return rtf([row(CIN_B, NPI["cbo-b"], status, STATUS_DAY),
                row(CIN_A, NPI["cbo-a"], "1", STATUS_DAY),  # cbo-a's referral, as cbo-a would report it
                row(CIN_A, NPI["cbo-b"], "1", STATUS_DAY),  # cbo-a's Member, with cbo-b's NPI
                row(CIN_PLAN_ONLY, NPI["cbo-b"], "1", STATUS_DAY),  # a Member only the plan knows
                row(CIN_UNKNOWN, NPI["cbo-b"], "1", STATUS_DAY)])  # nobody has this CIN


def _import(http: httpx.Client, data: bytes, **params: str) -> dict[str, Any]:
    started = http.post("/$import", params={"kind": "rtf", "program": "ecm", "filename": "rtf.csv", **params},
                        content=data, headers={"Content-Type": "text/csv"})
    assert started.status_code == 202, started.text
    status_url = started.headers["Content-Location"]
    for _ in range(400):
        response = http.get(status_url)
        if response.status_code != 202:
            assert response.status_code == 200, response.text
            return {**response.json(), "status_url": status_url}
        time.sleep(0.05)
    raise AssertionError("the import did not finish")


def _without_row(lines: list[str]) -> list[str]:
    """Reject lines with their row number cut off (the first CSV field)."""
    return [line.split(",", 1)[1] for line in lines]


def _rejects(http: httpx.Client, report: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    lines = http.get(report["rejects"]["csv"]).text.splitlines()[1:]
    issues = http.get(report["rejects"]["outcome"]).json()["issue"]
    return lines, issues


def _assert_one_reason_for_foreign_rows(http: httpx.Client, report: dict[str, Any]) -> None:
    lines, issues = _rejects(http, report)
    assert [line.split(",", 1)[0] for line in lines] == ["3", "4", "5", "6"], lines
    assert len(set(_without_row(lines))) == 1, lines
    for marker in (CIN_A, CIN_PLAN_ONLY, CIN_UNKNOWN, NPI["cbo-a"]):
        assert marker not in "\n".join(lines)
    assert len(issues) == 4 and len({re.sub(r"row \d+", "row N", json.dumps(issue)) for issue in issues}) == 1, issues


def test_a_provider_dry_run_gives_one_reason_for_every_foreign_row(world: World) -> None:
    report = _import(world.b, _b_file(), dryRun="true")
    assert (report["applied"], report["unchanged"], report["rejected"]) == (1, 0, 4), report
    _assert_one_reason_for_foreign_rows(world.b, report)
    assert status_code(world.plan.get(f"/Task/{world.task_b}").json()) == "3"  # a dry run writes nothing


def test_the_plans_import_keeps_its_precise_reasons(world: World) -> None:
    report = _import(world.plan, _b_file(), dryRun="true")
    lines, _ = _rejects(world.plan, report)
    messages = {line.split(",", 1)[0]: line for line in lines}
    assert set(messages) == {"4", "5", "6"}, lines  # rows 2 and 3 name real referrals of their provider
    assert "No Member has this CIN" in messages["6"] and CIN_UNKNOWN in messages["6"]
    assert "no open referral" in messages["5"] and "no open referral" in messages["4"]


def _binary_text(http: httpx.Client, reference: str) -> str:
    response = http.get(f"/{reference}")
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["data"]).decode()


def _attachments(http: httpx.Client, document: str) -> dict[str, str]:
    response = http.get(f"/{document}")
    assert response.status_code == 200, response.text
    return {c["attachment"].get("title", ""): c["attachment"]["url"] for c in response.json()["content"]}


def test_a_provider_import_completes_and_only_its_organization_reads_the_files(world: World) -> None:
    data = _b_file()
    report = _import(world.b, data)
    assert (report["applied"], report["rejected"]) == (1, 4), report
    _assert_one_reason_for_foreign_rows(world.b, report)
    assert status_code(world.b.get(f"/Task/{world.task_b}").json()) == "1"
    assert status_code(world.plan.get(f"/Task/{world.task_a}").json()) == "3"  # cbo-a's referral untouched

    document = report["documentReference"]
    files = _attachments(world.b, document)
    assert _binary_text(world.b, files["rtf.csv"]).encode() == data
    rejects = list(csv.DictReader(io.StringIO(_binary_text(world.b, files["rejected-rows.csv"]))))
    assert [r["row"] for r in rejects] == ["3", "4", "5", "6"]
    for reference in (document, *files.values()):
        assert world.a.get(f"/{reference}").status_code == 404, reference
        assert world.plan.get(f"/{reference}").status_code == 200, reference
    assert world.a.get(report["status_url"]).status_code == 404
    assert document not in str(world.a.get("/DocumentReference").json())

    # the same bytes from cbo-a are cbo-a's own received file, not cbo-b's
    again = _import(world.a, data)
    assert again["documentReference"] != document
    assert (again["applied"], again["rejected"]) == (1, 4), again  # row 3 is cbo-a's own referral
    theirs = _attachments(world.a, again["documentReference"])
    assert _binary_text(world.a, theirs["rtf.csv"]).encode() == data
    for reference in (again["documentReference"], *theirs.values()):
        assert world.b.get(f"/{reference}").status_code == 404, reference
    assert _attachments(world.b, document) == files  # cbo-b's record is as cbo-b's import left it


def test_a_provider_imports_rtf_files_only(world: World) -> None:
    for kind in ("mif", "asf"):
        refused = world.b.post("/$import", params={"kind": kind}, content=_b_file())
        assert refused.status_code == 403, refused.text
        assert refused.json()["issue"][0]["details"]["text"] == f"Only the plan imports {kind.upper()} files; a " \
                                                             "provider imports its RTF"
    unknown = world.plan.post("/$import", params={"kind": "xyz"}, content=_b_file())
    assert unknown.status_code == 400 and "not supported" in unknown.text
