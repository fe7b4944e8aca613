"""A search parameter with thousands of OR-ed values (batched lookups by importers and reports) works on every
store adapter: SQLite's expression-depth and compound-SELECT limits are not reached."""

from __future__ import annotations

from fhir_clr.store.port import Store
from tests.bundled import clr_engine


async def test_three_thousand_values_in_one_parameter(store: Store) -> None:
    engine = clr_engine(store)
    for value in ("v7", "v2999"):
        await engine.create("Patient", {"resourceType": "Patient", "identifier": [{"system": "sys", "value": value}]})
    result = await engine.search("Patient", [("identifier", ",".join(f"sys|v{i}" for i in range(3000))),
                                             ("_count", "10")])
    assert len(result.matches) == 2
