"""Bulk exports by clients holding only the scopes of the types they export (as SMART smart-fetch and
cumulus-etl ask for them), on a live secured server: Group exports without a Group scope, unsupported types
refused or skipped under ``Prefer: handling=lenient``, a bare ``$export`` limited to the token's types, and
exact access (scopes and Organization) in what is exported."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api.helpers import FHIR_JSON, patient, task
from tests.api.security_client import access_token, http_for, new_client, start_secured
from tests.api.test_bulk_export import ASYNC, download, poll
from tests.conftest import LiveServer

ADMIN = new_client("bulk-admin", "Organization/plan", "plan", ["system/*.cruds"])
PLAN_BULK = new_client("bulk-plan", "Organization/plan", "plan",
                       ["system/Patient.read", "system/Task.read", "system/Device.read"])
CBO_BULK = new_client("bulk-cbo-a", "Organization/cbo-a", "servicing-provider",
                      ["system/Patient.read", "system/Task.read"])
CLIENT_TYPES = "Patient,Task,Device,DiagnosticReport"
"""A bulk client's default type list: Device is in the Patient compartment, DiagnosticReport is not served."""


@dataclass
class BulkWorld:
    server: LiveServer
    group_id: str
    hidden_group_id: str
    about_group_task: str
    patients: dict[str, list[str]]
    tasks: dict[str, list[str]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BulkWorld]:
    data_dir = tmp_path_factory.mktemp("bulk-scopes")
    server = start_secured(data_dir, ADMIN, PLAN_BULK, CBO_BULK)
    admin = http_for(server.base_url, access_token(server.base_url, ADMIN))
    for org in ("plan", "cbo-a", "cbo-b"):
        admin.put(f"/Organization/{org}", json={"resourceType": "Organization", "id": org, "name": org},
                  headers=FHIR_JSON)
    patients: dict[str, list[str]] = {"a": [], "b": []}
    tasks: dict[str, list[str]] = {"a": [], "b": []}
    for side in ("a", "b"):
        for n in range(2):
            pid = admin.post("/Patient", json=patient(f"Bulk{side}{n}"), headers=FHIR_JSON).json()["id"]
            patients[side].append(pid)
            tasks[side].append(admin.post("/Task", json=task(
                owner=f"Organization/cbo-{side}", requester={"reference": "Organization/plan"},
                **{"for": {"reference": f"Patient/{pid}"}}), headers=FHIR_JSON).json()["id"])
    members = [{"entity": {"reference": f"Patient/{p}"}} for side in ("a", "b") for p in patients[side]]
    group_id = admin.post("/Group", json={"resourceType": "Group", "type": "person", "actual": True,
                                          "member": members}, headers=FHIR_JSON).json()["id"]
    admin.post("/Device", json={"resourceType": "Device", "status": "active"}, headers=FHIR_JSON)
    hidden_group = admin.post("/Group", json={"resourceType": "Group", "type": "person", "actual": True,
                                              "member": members}, headers=FHIR_JSON).json()["id"]
    # cbo-a sees the first Group through a Task of its own about it (the access rule for Groups).
    about_group = admin.post("/Task", json=task(owner="Organization/cbo-a", requester={
        "reference": "Organization/plan"}, focus={"reference": f"Group/{group_id}"}), headers=FHIR_JSON).json()["id"]
    admin.close()
    yield BulkWorld(server, group_id, hidden_group, about_group, patients, tasks)
    server.stop()


def _client(world: BulkWorld, client: Any, scope: str | None = None) -> httpx.Client:
    return http_for(world.server.base_url, access_token(world.server.base_url, client, scope))


def _ids(found: dict[str, list[dict]], resource_type: str) -> set[str]:
    return {r["id"] for r in found.get(resource_type, [])}


def test_group_export_refuses_unexportable_types_unless_lenient(world: BulkWorld) -> None:
    with _client(world, PLAN_BULK) as http:
        strict = http.get(f"/Group/{world.group_id}/$export", params={"_type": CLIENT_TYPES}, headers=ASYNC)
        assert strict.status_code == 400
        assert strict.json()["issue"][0]["expression"] == ["_type"]
        assert "_type DiagnosticReport cannot" in strict.json()["issue"][0]["details"]["text"]
        lenient = http.get(f"/Group/{world.group_id}/$export", params={"_type": CLIENT_TYPES},
                           headers={"Prefer": "respond-async, handling=lenient"})
        assert lenient.status_code == 202  # no Group scope needed
        note = lenient.json()["issue"][0]
        assert note["severity"] == "warning" and note["details"]["text"].endswith(": DiagnosticReport")
        manifest = poll(http, lenient.headers["Content-Location"])
        found = download(http, manifest)
        assert _ids(found, "Patient") == set(world.patients["a"] + world.patients["b"])
        assert _ids(found, "Task") == set(world.tasks["a"] + world.tasks["b"])
        [skipped] = manifest["error"]
        outcome = http.get(skipped["url"])
        assert outcome.status_code == 200 and b"DiagnosticReport" in outcome.content


def test_group_export_by_a_provider_holds_only_its_members_data(world: BulkWorld) -> None:
    with _client(world, CBO_BULK) as http:
        started = http.get(f"/Group/{world.group_id}/$export", params={"_type": CLIENT_TYPES},
                           headers={"Prefer": "respond-async, handling=lenient"})
        assert started.status_code == 202, started.text
        assert started.json()["issue"][0]["details"]["text"].endswith(": DiagnosticReport, Device")  # no Device scope
        found = download(http, poll(http, started.headers["Content-Location"]))
        assert set(found) == {"Patient", "Task"}
        assert _ids(found, "Task") == set(world.tasks["a"])
        assert _ids(found, "Patient") == set(world.patients["a"])
        strict = http.get(f"/Group/{world.group_id}/$export", params={"_type": "Patient,Device"}, headers=ASYNC)
        assert strict.status_code == 403


def test_bare_system_export_covers_the_token_types(world: BulkWorld) -> None:
    with _client(world, PLAN_BULK, "system/Patient.read") as http:
        started = http.get("/$export", headers=ASYNC)
        assert started.status_code == 202, started.text
        manifest = poll(http, started.headers["Content-Location"])
        assert {item["type"] for item in manifest["output"]} == {"Patient"}
        assert _ids(download(http, manifest), "Patient") == set(world.patients["a"] + world.patients["b"])
        named = http.get("/$export", params={"_type": "Patient,Task"}, headers=ASYNC)
        assert named.status_code == 403  # a type named outside the token's scopes is refused, not dropped
    with _client(world, CBO_BULK) as http:
        started = http.get("/$export", headers=ASYNC)
        assert started.status_code == 202, started.text
        found = download(http, poll(http, started.headers["Content-Location"]))
        assert set(found) <= {"Patient", "Task"}
        assert _ids(found, "Task") == {*world.tasks["a"], world.about_group_task}
        assert _ids(found, "Patient") == set(world.patients["a"])


def test_group_out_of_reach_and_missing_are_alike(world: BulkWorld) -> None:
    with _client(world, CBO_BULK) as http:
        missing = http.get("/Group/no-such-group/$export", params={"_type": "Patient"}, headers=ASYNC)
        hidden = http.get(f"/Group/{world.hidden_group_id}/$export", params={"_type": "Patient"}, headers=ASYNC)
        assert missing.status_code == hidden.status_code == 404
        assert missing.json()["issue"][0]["code"] == hidden.json()["issue"][0]["code"] == "not-found"
