"""Bulk Data ``$export`` over HTTP on a live server: kick-off → poll → manifest → download at system, Patient
and Group level; every line parses and validates as R4; counts match the store; ``_since`` (with deletions),
``_type`` and ``_typeFilter``; errors; cancel; and a server killed mid-export that finishes after restart."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fhir_clr.fhirmodel.validate import validate_resource
from tests.api.helpers import FHIR_JSON, unique
from tests.conftest import LiveServer

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    started = LiveServer(tmp_path_factory.mktemp("bulk"), {"FHIR_CLR_EXPORT_FILE_LINES": "7"})
    started.start()
    yield started
    started.stop()


@pytest.fixture()
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30.0, headers={"Accept": "application/fhir+json"}) as http:
        yield http


def transaction(api: httpx.Client, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create ``resources`` in one transaction (``urn:uuid:`` fullUrls allowed); the stored resources."""
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": r.pop("fullUrl", f"urn:uuid:{unique('x')}"), "resource": r,
         "request": {"method": "POST", "url": r["resourceType"]}} for r in resources]}
    response = api.post("/", json=bundle, headers={**FHIR_JSON, "Prefer": "return=representation"})
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json()["entry"]]


def members_with_referrals(api: httpx.Client, count: int) -> list[tuple[dict, dict, dict]]:
    """``count`` Members, each with one ServiceRequest and one Task about it."""
    out = []
    for _ in range(count):
        patient_url, request_url = f"urn:uuid:{unique('p')}", f"urn:uuid:{unique('s')}"
        patient, request, task = transaction(api, [
            {"fullUrl": patient_url, "resourceType": "Patient", "name": [{"family": unique("member")}]},
            {"fullUrl": request_url, "resourceType": "ServiceRequest", "status": "active", "intent": "order",
             "subject": {"reference": patient_url}},
            {"resourceType": "Task", "status": "requested", "intent": "order", "for": {"reference": patient_url},
             "focus": {"reference": request_url}}])
        out.append((patient, request, task))
    return out


def run_export(api: httpx.Client, path: str, params: dict[str, str] | None = None, *, method: str = "GET",
               body: dict | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """Kick off, poll to completion; the manifest."""
    if method == "POST":
        started = api.post(path, json=body, headers={**ASYNC, "Content-Type": "application/fhir+json"})
    else:
        started = api.get(path, params=params, headers=ASYNC)
    assert started.status_code == 202, started.text
    return poll(api, started.headers["Content-Location"], timeout)


def poll(api: httpx.Client, status_url: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(status_url)
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("application/json")
            return response.json()
        assert response.status_code == 202, response.text
        assert "Retry-After" in response.headers and "X-Progress" in response.headers
        time.sleep(0.05)
    raise AssertionError("the export did not finish")


def download(api: httpx.Client, manifest: dict[str, Any], key: str = "output") -> dict[str, list[dict]]:
    """Every resource of the manifest's files by type, each line checked to be one R4 resource."""
    found: dict[str, list[dict]] = {}
    for item in manifest[key]:
        response = api.get(item["url"])
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = response.content.split(b"\n")
        assert lines[-1] == b"" and len(lines) - 1 == item["count"]
        for line in lines[:-1]:
            resource = orjson.loads(line)
            assert resource["resourceType"] == item["type"]
            found.setdefault(item["type"], []).append(resource)
    return found


def total(api: httpx.Client, resource_type: str, **params: str) -> int:
    return int(api.get(f"/{resource_type}", params={"_summary": "count", **params}).json()["total"])


def test_system_export_matches_the_store_and_validates(api: httpx.Client) -> None:
    members_with_referrals(api, 9)
    manifest = run_export(api, "/$export", {"_type": "Patient,Task,ServiceRequest"})
    assert manifest["request"].endswith("/$export?_type=Patient%2CTask%2CServiceRequest") or "_type=" in \
        manifest["request"]
    assert manifest["error"] == [] and "deleted" not in manifest and manifest["transactionTime"]
    assert manifest["requiresAccessToken"] is False  # development mode
    assert {f["type"] for f in manifest["output"]} == {"Patient", "Task", "ServiceRequest"}
    assert max(f["count"] for f in manifest["output"]) <= 7  # split every 7 resources in this server
    exported = download(api, manifest)
    for resource_type in ("Patient", "Task", "ServiceRequest"):
        assert len(exported[resource_type]) == total(api, resource_type)
        assert len({r["id"] for r in exported[resource_type]}) == len(exported[resource_type])
        for resource in exported[resource_type][:5]:
            validate_resource(resource, resource_type)


def test_since_returns_later_changes_and_deletions(api: httpx.Client) -> None:
    [(_, _, old_task)] = members_with_referrals(api, 1)
    first = run_export(api, "/$export", {"_type": "Task"})
    since = first["transactionTime"]
    [(_, _, new_task)] = members_with_referrals(api, 1)
    assert api.delete(f"/Task/{old_task['id']}").status_code in (200, 204)
    manifest = run_export(api, "/$export", {"_type": "Task", "_since": since})
    exported = download(api, manifest)
    assert [t["id"] for t in exported["Task"]] == [new_task["id"]]
    deleted = download(api, manifest, "deleted")["Bundle"]
    assert [b["entry"][0]["request"] for b in deleted] == [{"method": "DELETE", "url": f"Task/{old_task['id']}"}]


def test_type_filter_narrows(api: httpx.Client) -> None:
    [(_, _, task)] = members_with_referrals(api, 1)
    api.put(f"/Task/{task['id']}", json={**task, "status": "completed"}, headers=FHIR_JSON).raise_for_status()
    manifest = run_export(api, "/$export", {"_type": "Task", "_typeFilter": "Task?status=completed"})
    exported = download(api, manifest)["Task"]
    assert exported and all(t["status"] == "completed" for t in exported)
    assert len(exported) == total(api, "Task", status="completed")


def test_patient_and_group_exports_include_the_referrals(api: httpx.Client) -> None:
    referrals = members_with_referrals(api, 3)
    (p1, s1, t1), (p2, s2, t2), _ = referrals
    group = api.post("/Group", json={"resourceType": "Group", "type": "person", "actual": True, "member": [
        {"entity": {"reference": f"Patient/{p1['id']}"}}, {"entity": {"reference": f"Patient/{p2['id']}"}}]},
                     headers=FHIR_JSON).json()
    manifest = run_export(api, f"/Group/{group['id']}/$export", method="POST", body={
        "resourceType": "Parameters", "parameter": [{"name": "_type", "valueString": "Patient,Task,ServiceRequest"}]})
    exported = download(api, manifest)
    assert {r["id"] for r in exported["Patient"]} == {p1["id"], p2["id"]}
    assert {r["id"] for r in exported["Task"]} == {t1["id"], t2["id"]}
    assert {r["id"] for r in exported["ServiceRequest"]} == {s1["id"], s2["id"]}
    everyone = download(api, run_export(api, "/Patient/$export", {"_type": "Task"}))
    assert len(everyone["Task"]) == total(api, "Task", **{"patient:missing": "false"})


def test_kick_off_errors_and_cancel(api: httpx.Client) -> None:
    assert api.get("/$export").status_code == 400  # no Prefer: respond-async
    for params, expected in [({"_type": "Nonsense"}, "_type"), ({"_outputFormat": "text/csv"}, "_outputFormat"),
                             ({"_since": "yesterday"}, "_since"), ({"_elements": "id"}, "_elements"),
                             ({"_typeFilter": "Patient?name=x", "_type": "Task"}, "_typeFilter")]:
        response = api.get("/$export", params=params, headers=ASYNC)
        assert response.status_code == 400, params
        assert response.json()["issue"][0]["expression"] == [expected]
    assert api.get("/Group/no-such-group/$export", headers=ASYNC).status_code == 404
    started = api.get("/$export", params={"_type": "Patient"}, headers=ASYNC)
    status_url = started.headers["Content-Location"]
    manifest = poll(api, status_url)
    file_url = manifest["output"][0]["url"]
    assert api.delete(status_url).status_code == 202
    assert api.get(status_url).status_code == 404
    assert api.get(file_url).status_code == 404
    assert api.get("/$export-status/unknown").status_code == 404


@contextlib.contextmanager
def _writes_held(database: Path) -> Iterator[None]:
    """A write transaction open on the embedded store's file: the server's writes wait for it (busy timeout)."""
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def test_a_server_killed_mid_export_finishes_it_after_restart(tmp_path: Path) -> None:
    first = LiveServer(tmp_path / "data", {"FHIR_CLR_EXPORT_FILE_LINES": "50"})
    first.start()
    try:
        with httpx.Client(base_url=first.base_url, timeout=60.0) as api:
            bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
                {"resource": {"resourceType": "Patient", "name": [{"family": f"m{n}"}]},
                 "request": {"method": "POST", "url": "Patient"}} for n in range(1000)]}
            for _ in range(4):
                assert api.post("/", json=bundle, headers=FHIR_JSON).status_code == 200
            # the export of 4,000 Patients takes some 20 ms, so a stall of this process between the kick-off's
            # answer and the kill let it complete first. A write held open on the store (as a long commit would
            # be) keeps the job at its write barrier: the kill lands before it finished, however slow this is.
            with _writes_held(tmp_path / "data" / "fhir-clr.sqlite3"):
                started = api.get("/$export", params={"_type": "Patient"}, headers=ASYNC)
                status_url = started.headers["Content-Location"].replace(first.base_url, "")
                assert first.process is not None
                first.process.kill()
                first.process.wait()
    finally:
        first.stop()
    job_id = status_url.rsplit("/", 1)[-1]
    left = orjson.loads((tmp_path / "data" / "exports" / job_id / "job.json").read_bytes())
    assert left["status"] in ("queued", "running")  # killed before it finished
    second = LiveServer(tmp_path / "data", {"FHIR_CLR_EXPORT_FILE_LINES": "50"})
    second.start()
    try:
        with httpx.Client(base_url=second.base_url, timeout=60.0) as api:
            manifest = poll(api, status_url, timeout=60)
            exported = download(api, manifest)["Patient"]
            assert len(exported) == 4000 == len({p["id"] for p in exported})
    finally:
        second.stop()


def test_cli_bulk_export_writes_ndjson_files(tmp_path: Path) -> None:
    import asyncio
    import subprocess
    import sys

    from fhir_clr.app import build_services
    from fhir_clr.config import Settings

    async def prepare() -> None:
        built = await build_services(Settings(data_dir=tmp_path / "data", dev=True))
        try:
            for n in range(3):
                await built.engine.create("Patient", {"resourceType": "Patient", "name": [{"family": f"m{n}"}]})
        finally:
            await built.store.close()

    asyncio.run(prepare())
    done = subprocess.run([sys.executable, "-m", "fhir_clr.cli", "export", "bulk", str(tmp_path / "out"),
                           "--type", "Patient,Task", "--data", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "transactionTime" in done.stderr and "Patient.1.ndjson" in done.stdout
    lines = (tmp_path / "out" / "Patient.1.ndjson").read_bytes().splitlines()
    assert len(lines) == 3 and all(orjson.loads(line)["resourceType"] == "Patient" for line in lines)
    assert not (tmp_path / "out" / "Task.1.ndjson").exists()
