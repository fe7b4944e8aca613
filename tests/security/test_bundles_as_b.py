"""Batch and transaction Bundles as provider B: every entry form (GET, vread, search, PUT, PUT with ifMatch,
conditional PUT, PATCH as a Binary JSON Patch with a failing ``test`` op, DELETE with and without ifMatch, POST
with ifNoneExist) about A's ids and A's deleted ids leaks nothing and answers like the same entry about an id
that never existed. A batch answers entry by entry; a transaction is sent with one entry so that its whole
answer is compared."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.api.helpers import FHIR_JSON
from tests.security.oracle import Exchange, assert_clean, difference, leak_report
from tests.security.route_probes import FAILING_TEST, STALE
from tests.security.world import CIN_SYSTEM, World, b_body, never_existed_id, new_cin

Entry = Callable[[World, str, str], dict[str, Any]]
"""Build B's Bundle entry about ``resource_type``/``id``."""


def _patch_binary(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Binary", "contentType": "application/json-patch+json",
            "data": base64.b64encode(orjson.dumps(operations)).decode()}


ENTRIES: dict[str, Entry] = {
    "GET": lambda w, t, i: {"request": {"method": "GET", "url": f"{t}/{i}"}},
    "GET _history/1": lambda w, t, i: {"request": {"method": "GET", "url": f"{t}/{i}/_history/1"}},
    "GET _history": lambda w, t, i: {"request": {"method": "GET", "url": f"{t}/{i}/_history"}},
    "GET search _id": lambda w, t, i: {"request": {"method": "GET", "url": f"{t}?_id={i}"}},
    "PUT ifMatch": lambda w, t, i: {"resource": b_body(w, t, i),
                                    "request": {"method": "PUT", "url": f"{t}/{i}", "ifMatch": STALE}},
    "PUT conditional _id": lambda w, t, i: {"resource": b_body(w, t),
                                            "request": {"method": "PUT", "url": f"{t}?_id={i}"}},
    "PATCH failing test op": lambda w, t, i: {"resource": _patch_binary(FAILING_TEST),
                                              "request": {"method": "PATCH", "url": f"{t}/{i}"}},
    "PATCH ifMatch": lambda w, t, i: {
        "resource": _patch_binary([{"op": "add", "path": "/language", "value": "en"}]),
        "request": {"method": "PATCH", "url": f"{t}/{i}", "ifMatch": STALE}},
    "DELETE ifMatch": lambda w, t, i: {"request": {"method": "DELETE", "url": f"{t}/{i}", "ifMatch": STALE}},
    "POST ifNoneExist _id": lambda w, t, i: {"resource": b_body(w, t),
                                             "request": {"method": "POST", "url": t, "ifNoneExist": f"_id={i}"}},
    "DELETE": lambda w, t, i: {"request": {"method": "DELETE", "url": f"{t}/{i}"}},
}
"""Entry forms; DELETE last (if it worked, it would change what the others see)."""

CIN_ENTRIES: dict[str, Callable[[World, str], dict[str, Any]]] = {
    "GET Patient?identifier": lambda w, c: {"request": {"method": "GET", "url": f"Patient?identifier={c}"}},
    "PUT Patient?identifier": lambda w, c: {"resource": b_body(w, "Patient"),
                                            "request": {"method": "PUT", "url": f"Patient?identifier={c}"}},
    "POST Patient ifNoneExist identifier": lambda w, c: {
        "resource": b_body(w, "Patient"), "request": {"method": "POST", "url": "Patient",
                                                      "ifNoneExist": f"identifier={c}"}},
    "PATCH Patient?identifier failing test op": lambda w, c: {
        "resource": _patch_binary(FAILING_TEST), "request": {"method": "PATCH", "url": f"Patient?identifier={c}"}},
    "DELETE Patient?identifier": lambda w, c: {"request": {"method": "DELETE", "url": f"Patient?identifier={c}"}},
}


def _bundle(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _hidden_ids(world: World) -> list[tuple[str, str, str]]:
    """(type, kind, id) of every A id and A deleted id."""
    return [(t, "A's", i) for t, ids in sorted(world.a_ids.items()) for i in ids] + [
        (t, "deleted", i) for t, ids in sorted(world.deleted.items()) for i in ids]


def _entry_response(answer: httpx.Response, index: int) -> httpx.Response:
    """Entry ``index`` of a batch-response as a response of its own (the whole answer if it is no Bundle)."""
    try:
        entries = answer.json().get("entry", [])
    except ValueError:
        return answer
    if answer.status_code != 200 or index >= len(entries):
        return answer
    entry = entries[index]
    status = int(str(entry.get("response", {}).get("status", "0")).split()[0] or 0)
    return httpx.Response(status, content=orjson.dumps(entry))


@pytest.mark.parametrize("form", list(ENTRIES))
def test_batch_entries(world: World, form: str) -> None:
    build = ENTRIES[form]
    hidden_ids = _hidden_ids(world)
    fresh = [never_existed_id() for _ in hidden_ids]
    hidden_answer = world.b.post("/", json=_bundle("batch", [build(world, t, i) for t, _, i in hidden_ids]),
                                 headers=FHIR_JSON)
    absent_answer = world.b.post("/", json=_bundle("batch", [build(world, t, f) for (t, _, _), f in
                                                            zip(hidden_ids, fresh, strict=True)]), headers=FHIR_JSON)
    failures = leak_report(Exchange(f"batch {form} (all of A's ids)", hidden_answer), world.secrets)
    for index, ((resource_type, kind, hidden_id), fresh_id) in enumerate(zip(hidden_ids, fresh, strict=True)):
        hidden = Exchange(f"batch entry {form} [{resource_type}, {kind} id]", _entry_response(hidden_answer, index),
                          hidden_answer.request)
        absent = Exchange(f"batch entry {form} [{resource_type}, never-existed id]",
                          _entry_response(absent_answer, index), absent_answer.request)
        failures += difference(hidden, absent, (hidden_id,), (fresh_id,))
    assert_clean(failures)


@pytest.mark.parametrize("form", list(ENTRIES))
def test_transaction_entries(world: World, form: str) -> None:
    build = ENTRIES[form]
    failures: list[str] = []
    for resource_type, kind, hidden_id in _hidden_ids(world):
        fresh = never_existed_id()
        hidden = Exchange(f"transaction {form} [{resource_type}, {kind} id]", world.b.post(
            "/", json=_bundle("transaction", [build(world, resource_type, hidden_id)]), headers=FHIR_JSON))
        absent = Exchange(f"transaction {form} [{resource_type}, never-existed id]", world.b.post(
            "/", json=_bundle("transaction", [build(world, resource_type, fresh)]), headers=FHIR_JSON))
        failures += leak_report(hidden, world.secrets) + leak_report(absent, world.secrets)
        failures += difference(hidden, absent, (hidden_id,), (fresh,))
    assert_clean(failures)


@pytest.mark.parametrize("kind", ["batch", "transaction"])
@pytest.mark.parametrize("form", list(CIN_ENTRIES))
def test_conditional_entries_by_cin(world: World, kind: str, form: str) -> None:
    failures: list[str] = []
    for who, cin in (("A's Member's CIN", world.cin), ("plan-only Member's CIN", world.plan_only_cin)):
        unknown = new_cin()
        answers = [world.b.post("/", json=_bundle(kind, [CIN_ENTRIES[form](world, f"{CIN_SYSTEM}|{c}")]),
                                headers=FHIR_JSON) for c in (cin, unknown)]
        hidden = Exchange(f"{kind} {form} [{who}]", _entry_response(answers[0], 0) if kind == "batch" else answers[0],
                          answers[0].request)
        absent = Exchange(f"{kind} {form} [unknown CIN]",
                          _entry_response(answers[1], 0) if kind == "batch" else answers[1], answers[1].request)
        failures += leak_report(hidden, world.secrets) + leak_report(Exchange("whole answer", answers[0]),
                                                                     world.secrets)
        failures += difference(hidden, absent, (cin,), (unknown,))
    assert_clean(failures)


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_put_entries_never_take_over(world: World, kind: str) -> None:
    """A PUT entry without ifMatch may create a new id (update as create), so its answer about A's ids is
    compared with the plain ``PUT /{type}/{id}`` about the same id: whichever road, B is refused alike, nothing
    of A's is echoed, and an id A had is not taken over."""
    failures: list[str] = []
    for resource_type, ids in sorted(world.a_ids.items()):
        for hidden_id in ids[:1]:
            body = b_body(world, resource_type, hidden_id)
            answer = world.b.post("/", json=_bundle(kind, [{"resource": body, "request": {
                "method": "PUT", "url": f"{resource_type}/{hidden_id}"}}]), headers=FHIR_JSON)
            entry = Exchange(f"{kind} PUT [{resource_type}, A's id]",
                             _entry_response(answer, 0) if kind == "batch" else answer, answer.request)
            direct = Exchange(f"PUT /{resource_type}/{{id}} [A's id]", world.b.put(
                f"/{resource_type}/{hidden_id}", json=body, headers=FHIR_JSON))
            failures += leak_report(entry, world.secrets) + leak_report(Exchange("whole answer", answer),
                                                                        world.secrets)
            if entry.response.is_success:
                failures.append(f"{entry.label}: HTTP {entry.response.status_code}: B overwrote A's resource")
            if entry.response.status_code != direct.response.status_code:
                failures.append(f"{entry.label}: HTTP {entry.response.status_code}, but {direct.label} answers "
                                f"HTTP {direct.response.status_code}")
    assert_clean(failures)
