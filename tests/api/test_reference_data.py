"""A plan's own reference data: ``FHIR_CLR_PROFILES_DIR`` and ``FHIR_CLR_MAPPINGS_DIR`` (through Settings)
replace the bundled code lists and layouts in what :func:`build_services` loads and hands down — to the engine's
CLR write rules and profile checks, the console and the imports alike (a live server shows each)."""

from __future__ import annotations

import io
import shutil
import time
from datetime import date
from pathlib import Path

import httpx
import orjson

from fhir_clr.app import build_services
from fhir_clr.config import BUNDLED_MAPPINGS_DIR, BUNDLED_PROFILES_DIR, Settings
from fhir_clr.mapping.writers import write_table
from tests.api.clr_helpers import created, organization, referral_body
from tests.api.test_rtf_import import row, valid_npi
from tests.bundled import clr_rules_of, find_spec
from tests.conftest import LiveServer

PLAN_SERVICE = "Plan-named Enhanced Care Management"
PLAN_TYPE = "Sent to the plan by an outside entity"
PLAN_FILE_KIND = "Plan status file (RTF)"


def plan_profiles(directory: Path) -> Path:
    """A copy of the shipped ``profiles/`` in which the plan renamed the ECM service, referral type 1 and the
    RTF file kind (displays only: codes and layouts stay the same)."""
    profiles = directory / "plan-profiles"
    shutil.copytree(BUNDLED_PROFILES_DIR, profiles)
    for name, code, display in (("clr-services", "ecm", PLAN_SERVICE), ("referral-type", "1", PLAN_TYPE),
                                ("file-types", "rtf", PLAN_FILE_KIND)):
        path = profiles / f"CodeSystem-{name}.json"
        system = orjson.loads(path.read_bytes())
        concept = next(c for c in system["concept"] if c["code"] == code)
        concept["display"] = display
        path.write_bytes(orjson.dumps(system))
    return profiles


async def test_build_services_loads_the_configured_profiles_and_mappings(tmp_path: Path) -> None:
    profiles, mappings = tmp_path / "profiles", tmp_path / "mappings"
    shutil.copytree(BUNDLED_PROFILES_DIR, profiles)
    shutil.copytree(BUNDLED_MAPPINGS_DIR, mappings)
    flags_path = profiles / "CodeSystem-referral-flags.json"
    flags = orjson.loads(flags_path.read_bytes())
    flags["concept"].append({"code": "plan-review", "display": "Held for the plan's review"})
    flags_path.write_bytes(orjson.dumps(flags))
    layout = mappings / "mif.yaml"
    layout.write_text(layout.read_text().replace("title: ECM Member Information File", "title: Plan MIF", 1))

    services = await build_services(Settings(data_dir=tmp_path / "data", profiles_dir=profiles,
                                             mappings_dir=mappings))
    try:
        assert "plan-review" in services.codes["referral-flags"].concepts
        assert services.specs["mif"].title.startswith("Plan MIF")
        assert services.specs["mif"].source == layout
    finally:
        await services.store.close()

    bundled = await build_services(Settings(data_dir=tmp_path / "data"))
    try:
        assert "plan-review" not in bundled.codes["referral-flags"].concepts
        assert bundled.specs["mif"].source.parent == BUNDLED_MAPPINGS_DIR
    finally:
        await bundled.store.close()


async def test_the_engine_console_and_imports_get_the_loaded_reference_data(tmp_path: Path) -> None:
    services = await build_services(Settings(data_dir=tmp_path / "data", profiles_dir=plan_profiles(tmp_path)))
    try:
        engine = services.engine
        assert engine.codes is services.codes and engine.rules is services.rules
        assert clr_rules_of(engine).context.codes is services.codes
        assert clr_rules_of(engine).context.workflow.codes is services.codes
        assert clr_rules_of(engine).profiles is engine.reference.profiles
        assert services.codes["clr-services"].concepts["ecm"].display == PLAN_SERVICE
    finally:
        await services.store.close()


def _poll(client: httpx.Client, url: str) -> httpx.Response:
    for _ in range(400):
        response = client.get(url)
        if response.status_code != 202:
            return response
        time.sleep(0.05)
    raise AssertionError("the import did not finish")


def test_a_plans_profiles_dir_reaches_write_rules_console_and_imports(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", {"FHIR_CLR_PROFILES_DIR": str(plan_profiles(tmp_path))})
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            # the engine's CLR write rules normalize codes to the plan's Codings
            patient = created(client, {"resourceType": "Patient", "name": [{"family": "Reference"}]})
            referral = created(client, referral_body(f"Patient/{patient['id']}", organization(client, "plan")))
            assert referral["code"]["coding"][0]["display"] == PLAN_SERVICE
            assert referral["extension"][0]["valueCoding"]["display"] == PLAN_TYPE
            # the console lists the plan's services and file kinds
            worklist = client.get("/console/")
            assert worklist.status_code == 200 and PLAN_SERVICE in worklist.text
            imports_page = client.get("/console/imports")
            assert imports_page.status_code == 200 and PLAN_FILE_KIND in imports_page.text
            # an import records the received file with the plan's file kind
            out = io.BytesIO()
            write_table(find_spec("rtf", "ecm"), [row("72345678G", valid_npi("623456789"), "1", date(2026, 11, 2))],
                        "csv", out)
            started = client.post("/$import", params={"kind": "rtf", "program": "ecm", "filename": "plan.csv"},
                                  content=out.getvalue(), headers={"Content-Type": "text/csv"})
            assert started.status_code == 202, started.text
            assert _poll(client, started.headers["Content-Location"]).status_code == 200
            found = client.get("/DocumentReference", params={"type": "rtf"}).json()
            codings = [e["resource"]["type"]["coding"][0] for e in found.get("entry", ())]
            assert codings and all(c["display"] == PLAN_FILE_KIND for c in codings), codings
    finally:
        server.stop()
