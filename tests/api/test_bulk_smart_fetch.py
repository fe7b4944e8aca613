"""SMART's smart-fetch (a production bulk client from PyPI) runs system and Group exports against a live secured
server with its own backend-services credentials (a registered JWKS, scopes only for the types it exports, no
Group scope), and gets exactly the resources a search with the same access finds."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.api.helpers import FHIR_JSON, patient
from tests.api.security_client import access_token, http_for, new_client, start_secured
from tests.conftest import LiveServer

SMART_FETCH = Path(sys.executable).with_name("smart-fetch")
FETCHED_TYPES = ("Condition", "Device", "DocumentReference", "Encounter", "EpisodeOfCare", "Observation", "Patient",
                 "Procedure", "ServiceRequest")
"""The served types among smart-fetch's defaults (it skips the others after reading the CapabilityStatement)."""
ADMIN = new_client("sf-admin", "Organization/plan", "plan", ["system/*.cruds"])
FETCHER = new_client("smart-fetch", "Organization/plan", "plan", [f"system/{t}.read" for t in FETCHED_TYPES])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str, Path, dict[str, int]]]:
    data_dir = tmp_path_factory.mktemp("smart-fetch")
    server = start_secured(data_dir, ADMIN, FETCHER)
    with http_for(server.base_url, access_token(server.base_url, ADMIN)) as admin:
        members = [admin.post("/Patient", json=patient(f"Fetch{i}"), headers=FHIR_JSON).json()["id"] for i in range(4)]
        admin.post("/Patient", json=patient("NotInGroup"), headers=FHIR_JSON)
        for pid in members[:3]:
            for kind in ("Condition", "Encounter"):
                body = {"resourceType": kind, "subject": {"reference": f"Patient/{pid}"}}
                body |= ({"code": {"text": "housing"}} if kind == "Condition" else
                         {"status": "finished", "class": {"code": "AMB"}})
                assert admin.post(f"/{kind}", json=body, headers=FHIR_JSON).status_code == 201
        admin.post("/Device", json={"resourceType": "Device", "status": "active",
                                    "patient": {"reference": f"Patient/{members[0]}"}}, headers=FHIR_JSON)
        admin.post("/Device", json={"resourceType": "Device", "status": "active"}, headers=FHIR_JSON)
        group = admin.post("/Group", json={"resourceType": "Group", "type": "person", "actual": True, "member": [
            {"entity": {"reference": f"Patient/{p}"}} for p in members]}, headers=FHIR_JSON).json()["id"]
        totals = {t: int(admin.get(f"/{t}", params={"_summary": "count"}).json()["total"]) for t in FETCHED_TYPES}
    key = data_dir / "smart-fetch.private.jwks"
    key.write_bytes(orjson.dumps({"keys": [{**FETCHER.key.as_dict(private=True), "alg": FETCHER.alg,
                                            "key_ops": ["sign"]}]}))
    yield server, group, key, totals
    server.stop()


def _fetch(server: LiveServer, key: Path, out: Path, *extra: str) -> dict[str, int]:
    shutil.rmtree(out, ignore_errors=True)
    run = subprocess.run([str(SMART_FETCH), "bulk", "--fhir-url", server.base_url, "--smart-client-id",
                          FETCHER.client_id, "--smart-key", str(key), "--no-compression", *extra, str(out)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    counts: dict[str, int] = {}
    for path in out.glob("*.ndjson"):
        if path.name == "log.ndjson":
            continue
        resource_type = path.name.split(".", 1)[0]
        counts[resource_type] = counts.get(resource_type, 0) + len(path.read_bytes().splitlines())
    return counts


@pytest.mark.skipif(not SMART_FETCH.exists(), reason="smart-fetch is installed with the test extra")
def test_smart_fetch_system_and_group_exports(seeded, tmp_path: Path) -> None:
    server, group, key, totals = seeded
    system = _fetch(server, key, tmp_path / "system")
    assert system == {t: n for t, n in totals.items() if n}
    cohort = _fetch(server, key, tmp_path / "group", "--group", group)
    assert cohort == {"Patient": 4, "Condition": 3, "Encounter": 3, "Device": 1}
