"""``/openapi.json`` describes the FHIR API the CapabilityStatement declares, and schemathesis (a third-party API
fuzzer) finds no server error in any operation it lists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
SEED = "20261202"


def test_openapi_follows_the_capability_statement(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    statement = client.get("/metadata").json()
    paths = document["paths"]
    for entry in statement["rest"][0]["resource"]:
        kind = entry["type"]
        assert {"get", "post"} <= set(paths[f"/{kind}"]), kind
        assert {"get", "put", "delete"} <= set(paths[f"/{kind}/{{id}}"]), kind
        assert {p["name"] for p in paths[f"/{kind}"]["get"]["parameters"]} >= {p["name"] for p in entry["searchParam"]}
    assert "post" in paths["/"] and "get" in paths["/metadata"] and "get" in paths["/_history"]


def test_openapi_lists_patch_and_every_advertised_operation(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    rest = client.get("/metadata").json()["rest"][0]
    patch = paths["/Task/{id}"]["patch"]["requestBody"]["content"]
    assert set(patch) == {"application/json-patch+json", "application/fhir+json"}
    assert patch["application/fhir+json"]["schema"]["properties"]["resourceType"]["enum"] == ["Parameters"]
    system_ops = {p[2:] for p in paths if p.startswith("/$") and "/" not in p[1:]}
    assert system_ops == {o["name"] for o in rest["operation"]} >= {"export", "import", "clr-worklist", "clr-export"}
    # the URLs an asynchronous kick-off hands back (Content-Location) are described too
    jobs = {p: set(methods) for p, methods in paths.items() if p.startswith("/$") and "/" in p[1:]}
    assert jobs == {"/$export-status/{job_id}": {"get", "delete"}, "/$export-file/{job_id}/{name}": {"get"},
                    "/$import-status/{job_id}": {"get", "delete"}, "/$import-status/{job_id}/outcome": {"get"},
                    "/$import-status/{job_id}/rejects.csv": {"get"}}
    levels = {
        ("Task", "validate"): {"/Task/$validate", "/Task/{id}/$validate"},
        ("Patient", "export"): {"/Patient/$export"},
        ("Group", "export"): {"/Group/{id}/$export"},
        ("Subscription", "topic-list"): {"/Subscription/$topic-list"},
        ("Subscription", "status"): {"/Subscription/$status", "/Subscription/{id}/$status"},
        ("Subscription", "events"): {"/Subscription/{id}/$events"},
        ("Subscription", "resend"): {"/Subscription/{id}/$resend"},
    }
    for entry in rest["resource"]:
        for operation in entry["operation"]:
            found = {p for p in paths if p.startswith(f"/{entry['type']}/") and p.endswith(f"${operation['name']}")}
            assert found, (entry["type"], operation["name"])
            assert found == levels.get((entry["type"], operation["name"]), found), found
    assert set(paths["/$import"]) == {"post"} and set(paths["/Subscription/{id}/$resend"]) == {"post"}
    assert {p["name"] for p in paths["/$clr-worklist"]["get"]["parameters"]} == {"days"}


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is installed with the test extra")
def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    # Its own server on an empty store and a fixed seed: a failure replays exactly (``--seed`` as printed),
    # whatever other tests stored. The fuzzer's caches stay out of the repository (cwd).
    live_server = LiveServer(tmp_path / "server")
    live_server.start()
    try:
        run = subprocess.run(
            [str(SCHEMATHESIS), "run", f"{live_server.base_url}/openapi.json", "--checks", "not_a_server_error",
             "--max-examples", "3", "--workers", "1", "--phases", "coverage,fuzzing", "--no-color",
             "--suppress-health-check", "all", "--seed", SEED, "--report-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=1500, cwd=tmp_path)
        paths = httpx.get(f"{live_server.base_url}/openapi.json").json()["paths"]
    finally:
        live_server.stop()
    summary = run.stdout[-4000:]
    assert run.returncode == 0, _failures(run.stdout) + summary[-1500:] + run.stderr[-2000:]
    operations = sum(len(methods) for methods in paths.values())
    assert f"Tested: {operations}" in summary  # every operation listed was exercised
    tested = next(line for line in summary.splitlines() if "generated," in line)
    generated, passed = (int(word) for word in tested.replace(",", "").split() if word.isdigit())
    assert generated == passed > 1000, tested


def _failures(output: str) -> str:
    """The report's FAILURES section (each failing operation with its curl reproduction), which a summary's
    tail would cut off."""
    start = output.find("FAILURES")
    end = output.find("SUMMARY", start)
    return output[start:end][:6000] if start >= 0 else ""
