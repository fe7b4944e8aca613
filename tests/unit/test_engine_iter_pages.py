"""``Engine.iter_pages``: every page of a search, in order, each match once, with the caller's access; the one loop
the report, the RTF/ASF/MIF exports, bulk export and the overdue-obligation sweep follow searches with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fhir_clr.clr.config import DEFAULT_PROFILES_DIR
from fhir_clr.engine.access import FullAccess
from fhir_clr.engine.engine import Engine
from fhir_clr.errors import FhirError
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.query import Condition, Criterion, ParamType, TokenValue
from fhir_clr.store.sqlite import SqliteStore


class OddPatients(FullAccess):
    """A caller who sees only the Patients with an odd number (and every resource of other types)."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def restriction(self, resource_type: str) -> Criterion | None:
        """Patients: the odd-numbered ones; other types: all."""
        if resource_type != "Patient":
            return None
        return Condition("_id", ParamType.TOKEN, tuple(TokenValue(None, i) for i in self.ids if int(i[1:]) % 2))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    store = SqliteStore(tmp_path / "pages.sqlite3", read_threads=2)
    await store.open()
    try:
        engine = Engine(store, SearchParamRegistry.from_directory(DEFAULT_PROFILES_DIR))
        for n in range(23):
            await engine.update("Patient", f"p{n}", {"resourceType": "Patient", "id": f"p{n}",
                                                      "gender": "female" if n < 20 else "male"})
        yield engine
    finally:
        await store.close()


async def test_every_page_is_followed_to_the_end(engine: Engine) -> None:
    pages = [page async for page in engine.iter_pages("Patient", [("gender", "female"), ("_count", "6")])]
    sizes = [len(page.matches) for page in pages]
    assert sizes == [6, 6, 6, 2]
    assert [page.next_token is None for page in pages] == [False, False, False, True]
    ids = [m.resource_id for page in pages for m in page.matches]
    assert sorted(ids) == sorted(f"p{n}" for n in range(20))
    assert len(set(ids)) == 20


async def test_one_page_when_everything_fits(engine: Engine) -> None:
    pages = [page async for page in engine.iter_pages("Patient", [("gender", "male")])]
    assert [sorted(m.resource_id for m in p.matches) for p in pages] == [["p20", "p21", "p22"]]


async def test_no_match_is_one_empty_page(engine: Engine) -> None:
    pages = [page async for page in engine.iter_pages("Patient", [("gender", "other")])]
    assert [len(p.matches) for p in pages] == [0]


async def test_pages_hold_only_what_the_caller_sees(engine: Engine) -> None:
    scoped = engine.with_access(OddPatients([f"p{n}" for n in range(23)]))
    ids = [m.resource_id async for page in scoped.iter_pages("Patient", [("_count", "4")]) for m in page.matches]
    assert sorted(ids) == sorted(f"p{n}" for n in range(23) if n % 2)


async def test_strict_refuses_an_unknown_parameter(engine: Engine) -> None:
    with pytest.raises(FhirError) as refused:
        [page async for page in engine.iter_pages("Patient", [("no-such-param", "x")], strict=True)]
    assert refused.value.status == 400
    lenient = [page async for page in engine.iter_pages("Patient", [("no-such-param", "x"), ("_count", "50")])]
    assert sum(len(p.matches) for p in lenient) == 23
