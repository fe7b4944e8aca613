"""The sample data loads through the engine and loading it twice adds nothing."""

from __future__ import annotations

from pathlib import Path

from fhir_clr.app import build_services
from fhir_clr.config import Settings
from fhir_clr.seed import load_sample_data
from fhir_clr.store.query import Query


async def _counts(data_dir: Path) -> dict[str, int]:
    services = await build_services(Settings(data_dir=data_dir, dev=True))
    try:
        return {t: await services.store.count(Query(t)) for t in ("Organization", "Patient", "ServiceRequest", "Task")}
    finally:
        await services.store.close()


async def test_seed_is_idempotent(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, dev=True)
    assert await load_sample_data(settings, members=4) == 3 + 4 * 3
    first = await _counts(tmp_path)
    assert first == {"Organization": 3, "Patient": 4, "ServiceRequest": 4, "Task": 4}
    await load_sample_data(settings, members=4)
    assert await _counts(tmp_path) == first
