"""The audit trail: one AuditEvent per FHIR interaction of an authenticated client — who (client and
Organization), what (resource type and id, or the search's parameter *names*), when, and the HTTP outcome.
Never a resource body and never a query value.

Events are queued in memory and written in batches (one store commit per batch) by a background task, so a
request only pays for building a small dict. AuditEvents are stored like other resources (searchable with the
usual machinery); the access policy lets only the plan read them and nobody write them through the API.

The one write that bypasses the engine. Every other write goes through :class:`fhir_clr.engine.engine.Engine` so
that validation, business rules, access checks, history, indexes and subscription events apply alike; none of
that fits here. The server writes these events about requests, not on a caller's behalf (and the access policy
refuses every caller's AuditEvent write); no business rule and no subscription topic is about them (an outbox
event would announce who called what); each event is built here in one fixed shape (checked against the R4 gate
in ``tests/unit/test_auth_audit.py``), so validating it again per request would only add cost; and a request
must not wait for its audit record. So the batch goes to the store's one commit directly, each event with a new
id, version 1 and the same search index values the engine would extract.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fhir_clr.auth.tokens import Caller
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.port import Change, ChangeOp, Store

log = logging.getLogger(__name__)

CLIENT_ID_SYSTEM = "urn:fhir-clr:client-id"
ACTIONS = {"read": "R", "vread": "R", "history-instance": "R", "history-type": "R", "history-system": "R",
           "search-type": "E", "create": "C", "update": "U", "patch": "U", "delete": "D", "batch": "E",
           "operation": "E"}


@dataclass(frozen=True, slots=True)
class Interaction:
    """What a request did, from its method and path only."""

    code: str
    resource_type: str | None = None
    resource_id: str | None = None
    operation: str | None = None
    """The operation's name (``$clr-print-batch``) when the request invokes one."""


def classify(method: str, path: str) -> Interaction | None:
    """The FHIR interaction of a request (None for non-FHIR endpoints such as discovery and probes)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return Interaction("batch") if method == "POST" else None
    first = parts[0]
    if first in ("metadata", "healthz", "readyz", "auth", ".well-known", "docs", "openapi.json"):
        return None
    if first.startswith("$"):  # a system-level operation ($export, $import, $clr-print-batch…)
        return Interaction("operation", operation=first)
    if first == "_history":
        return Interaction("history-system")
    if not first[:1].isupper():
        return None
    if parts[-1].startswith("$"):
        return Interaction("operation", first, parts[1] if len(parts) == 3 else None, parts[-1])
    if len(parts) == 1:
        code = {"GET": "search-type", "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete"}.get(method)
        return Interaction(code, first) if code else None
    if parts[1] == "_history":
        return Interaction("history-type", first)
    if parts[1] == "_search":
        return Interaction("search-type", first)
    if len(parts) == 2:
        code = {"GET": "read", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
        return Interaction(code, first, parts[1]) if code else None
    return Interaction("vread" if len(parts) == 4 else "history-instance", first, parts[1])


def audit_event(caller: Caller, interaction: Interaction, query_string: str, status: int, recorded_us: int
                ) -> dict[str, Any]:
    """The AuditEvent of one request (no bodies, no query values)."""
    names = sorted({name for name, _ in parse_qsl(query_string, keep_blank_values=True)})
    entity: dict[str, Any] = {}
    if interaction.resource_type and interaction.resource_id:
        entity["what"] = {"reference": f"{interaction.resource_type}/{interaction.resource_id}"}
    elif interaction.resource_type:
        entity["type"] = {"system": "http://hl7.org/fhir/resource-types", "code": interaction.resource_type}
    details = [{"type": "operation", "valueString": interaction.operation}] if interaction.operation else []
    if names:
        details.append({"type": "parameter-names", "valueString": ",".join(names)})
    if details:
        entity["detail"] = details
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                 "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": interaction.code}],
        "action": ACTIONS[interaction.code],
        "recorded": datetime.fromtimestamp(recorded_us / 1_000_000, UTC).isoformat(timespec="milliseconds"),
        "outcome": "0" if status < 400 else "4" if status < 500 else "8",
        "outcomeDesc": f"HTTP {status}",
        "agent": [{"who": {"reference": caller.organization},
                   "altId": caller.client_id, "requestor": True,
                   "name": f"client {caller.client_id} ({caller.role.value})"}],
        "source": {"observer": {"display": "fhir-clr"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]},
    }
    if entity:
        event["entity"] = [entity]
    return event


class AuditTrail:
    """Queues audit events and writes them in batches."""

    def __init__(self, store: Store, registry: SearchParamRegistry, *, batch_size: int = 500,
                 interval: float = 0.2) -> None:
        self.store = store
        self.registry = registry
        self.batch_size = batch_size
        self.interval = interval
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        """Stop the writer and write what is still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    def record(self, caller: Caller, interaction: Interaction, query_string: str, status: int) -> None:
        """Queue the AuditEvent of one request (cheap; never raises into the request)."""
        self._pending.append(audit_event(caller, interaction, query_string, status, time.time_ns() // 1000))
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything queued so far in one commit."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        changes = []
        for event in batch:
            event["id"] = str(uuid.uuid4())
            changes.append(Change(op=ChangeOp.CREATE, resource_type="AuditEvent", resource_id=event["id"],
                                  expected_version=0, resource=event, index=self.registry.extract(event)))
        try:
            await self.store.commit(changes)
        except Exception as error:  # the trail must not take the server down; the loss is logged loudly
            log.error("audit batch of %d events not written: %s", len(batch), type(error).__name__)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self.flush()
