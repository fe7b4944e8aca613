"""The audit trail writes its log to the store directly (the documented exception to "every write goes through
the engine"): every AuditEvent shape ``audit_event`` renders passes the R4 gate the engine would apply and names
no query value, and a flushed batch is log records, never a FHIR resource the engine would serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_clr.auth.audit import EVENTS, AuditTrail, Interaction, audit_event, classify, parameter_names
from fhir_clr.auth.audit_log import AuditLog
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


def _event(interaction: Interaction | None, query_string: str, status: int) -> dict[str, Any]:
    """The AuditEvent rendered from the log entry of one request."""
    assert interaction is not None
    entry = (1_790_000_000_000_000, CALLER.client_id, CALLER.organization, CALLER.role.value, interaction.code,
             interaction.resource_type, interaction.resource_id, parameter_names(query_string), status,
             interaction.operation)
    return audit_event(entry, "0065bf6bd0e000-0a1b2c3d-1f")


@pytest.mark.parametrize(("method", "path"), REQUESTS)
@pytest.mark.parametrize("status", [200, 404, 503])
def test_every_event_shape_passes_the_r4_gate(method: str, path: str, status: int) -> None:
    event = _event(classify(method, path), "patient=Patient/secret&_count=5", status)
    assert validate_resource(event, "AuditEvent") is event
    assert b"secret" not in orjson.dumps(event)


async def test_a_flushed_batch_is_log_records_not_resources(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "audit.sqlite3", read_threads=1)
    await store.open()
    try:
        trail = AuditTrail(store)
        for n in range(3):
            trail.record(CALLER, Interaction("read", "Task", f"t{n}"), "", 200)
        assert await trail.flush()
        [batch] = await store.list_records(EVENTS)
        assert len(batch.doc["entries"]) == 3
        found = await AuditLog(store, default_count=20, max_count=100).search([("entity", "Task/t1")])
        [event] = [orjson.loads(s.body or b"{}") for s in found.matches]
        assert event["agent"][0]["who"] == {"reference": "Organization/cbo-1"} and found.matches[0].version == 1
        engine = Engine(store, SearchParamRegistry.from_directory(DEFAULT_PROFILES_DIR))
        assert (await engine.search("AuditEvent", [])).matches == []
    finally:
        await store.close()


def test_an_operation_is_named_in_its_event() -> None:
    system = _event(classify("GET", "/$clr-print-batch"), "batch=2026-12-02", 200)
    assert system["entity"] == [{"detail": [{"type": "operation", "valueString": "$clr-print-batch"},
                                            {"type": "parameter-names", "valueString": "batch"}]}]
    instance = _event(classify("POST", "/Subscription/s1/$resend"), "", 200)
    assert instance["entity"] == [{"what": {"reference": "Subscription/s1"},
                                   "detail": [{"type": "operation", "valueString": "$resend"}]}]
