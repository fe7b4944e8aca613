"""A plan's own reference data: ``FHIR_CLR_PROFILES_DIR`` and ``FHIR_CLR_MAPPINGS_DIR`` (through Settings)
replace the bundled code lists and layouts in what :func:`build_services` loads and hands down."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson

from fhir_clr.app import build_services
from fhir_clr.config import BUNDLED_MAPPINGS_DIR, BUNDLED_PROFILES_DIR, Settings


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
