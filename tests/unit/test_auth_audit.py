"""The audit trail writes its AuditEvents to the store directly (the documented exception to "every write goes
through the engine"): every shape ``audit_event`` builds passes the R4 gate the engine would apply, names no query
value, and a flushed batch is stored, indexed and searchable like any engine write."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from fhir_clr.auth.audit import AuditTrail, Interaction, audit_event, classify
from fhir_clr.auth.clients import Role
from fhir_clr.auth.scopes import ScopeSet
from fhir_clr.auth.tokens import Caller
from fhir_clr.clr.config import DEFAULT_PROFILES_DIR
from fhir_clr.engine.engine import Engine
from fhir_clr.fhirmodel.validate import validate_resource
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.sqlite import SqliteStore

CALLER = Caller("client-1", "Organization/cbo-1", Role.SERVICING_PROVIDER, ScopeSet.from_strings(["system/*.rs"]))
REQUESTS = [("GET", "/Task/t1"), ("GET", "/Task/t1/_history/2"), ("GET", "/Task/t1/_history"), ("GET", "/Task"),
            ("POST", "/Task/_search"), ("POST", "/Task"), ("PUT", "/Task/t1"), ("PATCH", "/Task/t1"),
            ("DELETE", "/Task/t1"), ("POST", "/"), ("GET", "/_history"), ("GET", "/Task/_history"),
            ("POST", "/Subscription/s1/$resend"), ("GET", "/$clr-print-batch"), ("POST", "/$clr-print-batch-mailed"),
            ("GET", "/$export-status/job1")]


@pytest.mark.parametrize(("method", "path"), REQUESTS)
@pytest.mark.parametrize("status", [200, 404, 503])
def test_every_event_shape_passes_the_r4_gate(method: str, path: str, status: int) -> None:
    interaction = classify(method, path)
    assert interaction is not None
    event = audit_event(CALLER, interaction, "patient=Patient/secret&_count=5", status, 1_790_000_000_000_000)
    assert validate_resource(event, "AuditEvent") is event
    assert b"secret" not in orjson.dumps(event)


async def test_a_flushed_batch_is_stored_and_searchable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "audit.sqlite3", read_threads=1)
    await store.open()
    try:
        registry = SearchParamRegistry.from_directory(DEFAULT_PROFILES_DIR)
        trail = AuditTrail(store, registry)
        for n in range(3):
            trail.record(CALLER, Interaction("read", "Task", f"t{n}"), "", 200)
        await trail.flush()
        found = await Engine(store, registry).search("AuditEvent", [("entity", "Task/t1")])
        [event] = [orjson.loads(s.body or b"{}") for s in found.matches]
        assert event["agent"][0]["who"] == {"reference": "Organization/cbo-1"}
        assert found.matches[0].version == 1
    finally:
        await store.close()


def test_an_operation_is_named_in_its_event() -> None:
    system = audit_event(CALLER, classify("GET", "/$clr-print-batch"), "batch=2026-12-02", 200, 1_790_000_000_000_000)
    assert system["entity"] == [{"detail": [{"type": "operation", "valueString": "$clr-print-batch"},
                                            {"type": "parameter-names", "valueString": "batch"}]}]
    instance = audit_event(CALLER, classify("POST", "/Subscription/s1/$resend"), "", 200, 1_790_000_000_000_000)
    assert instance["entity"] == [{"what": {"reference": "Subscription/s1"},
                                   "detail": [{"type": "operation", "valueString": "$resend"}]}]
