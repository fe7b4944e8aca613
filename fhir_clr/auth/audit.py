"""The audit trail: one AuditEvent per FHIR interaction of an authenticated client — who (client and
Organization), what (resource type and id, or the search's parameter *names*), when, and the HTTP outcome.
Never a resource body and never a query value.

The trail is an append-only log, not a set of FHIR resources: a request only queues a small dict; a background
task appends the queue in batches (one store transaction per batch) as bookkeeping records of the store port
(``insert_records``): the event itself under its id, which sorts by time, and one key-only entry per index its
searches use (agent Organization, client id, entity). No versions, no history, no search-index rows, no outbox
event (subscriptions never see it). ``fhir_clr.auth.audit_log`` serves the log as ``AuditEvent`` to the plan.

Durability: the queue is written at least every ``interval`` seconds (0.2) or ``batch_size`` events (500) and
drained on shutdown, so a graceful stop loses nothing; a hard crash (SIGKILL, OOM kill, power loss) loses the
events of at most that last window. A batch the store refuses is kept and retried (up to
``MAX_PENDING`` queued events; beyond that the oldest are dropped and the loss is logged with its count).
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
from fhir_clr.store.port import RecordConflict, RecordWrite, Store

log = logging.getLogger(__name__)

CLIENT_ID_SYSTEM = "urn:fhir-clr:client-id"
EVENTS = "audit"
"""Record kind of the events, keyed by event id (see ``event_id``: ids sort by recording time)."""
BY_AGENT = "audit-agent"
BY_CLIENT = "audit-altid"
BY_ENTITY = "audit-entity"
"""Record kinds of the index entries: key ``<value>|<event id>``, empty document."""
INDEX_SEPARATOR = "|"
MAX_PENDING = 100_000
"""Queued events kept while the store refuses writes; older ones are dropped (and counted in the log)."""
ACTIONS = {"read": "R", "vread": "R", "history-instance": "R", "history-type": "R", "history-system": "R",
           "search-type": "E", "create": "C", "update": "U", "patch": "U", "delete": "D", "batch": "E",
           "operation": "E"}


@dataclass(frozen=True, slots=True)
class Interaction:
    """What a request did, from its method and path only."""

    code: str
    resource_type: str | None = None
    resource_id: str | None = None


def classify(method: str, path: str) -> Interaction | None:
    """The FHIR interaction of a request (None for non-FHIR endpoints such as discovery and probes)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return Interaction("batch") if method == "POST" else None
    first = parts[0]
    if first in ("metadata", "healthz", "readyz", "auth", ".well-known", "docs", "openapi.json"):
        return None
    if first == "_history":
        return Interaction("history-system")
    if not first[:1].isupper():
        return None
    if parts[-1].startswith("$"):
        return Interaction("operation", first, parts[1] if len(parts) == 3 else None)
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


def event_id(recorded_us: int) -> str:
    """A new event id: the recording time (14 hex digits of epoch microseconds, so ids sort by time) and 64
    random bits."""
    return f"{recorded_us:014x}-{uuid.uuid4().hex[:16]}"


def recorded_us_of(identifier: str) -> int:
    """The recording time encoded in an event id (ValueError for anything else)."""
    if len(identifier) != 31 or identifier[14] != "-":
        raise ValueError("not an audit event id")
    return int(identifier[:14], 16)


def log_records(event: dict[str, Any]) -> list[RecordWrite]:
    """The records of one event: the event under its id, and an index entry per agent, client and entity."""
    identifier = event["id"]
    records = [RecordWrite(EVENTS, identifier, event)]
    for agent in event.get("agent", ()):
        if who := agent.get("who", {}).get("reference"):
            records.append(RecordWrite(BY_AGENT, f"{who}{INDEX_SEPARATOR}{identifier}", {}))
        if client := agent.get("altId"):
            records.append(RecordWrite(BY_CLIENT, f"{client}{INDEX_SEPARATOR}{identifier}", {}))
    for entity in event.get("entity", ()):
        if what := entity.get("what", {}).get("reference"):
            records.append(RecordWrite(BY_ENTITY, f"{what}{INDEX_SEPARATOR}{identifier}", {}))
    return records


def audit_event(caller: Caller, interaction: Interaction, query_string: str, status: int, recorded_us: int
                ) -> dict[str, Any]:
    """The AuditEvent of one request (no bodies, no query values), with its id and ``meta``."""
    names = sorted({name for name, _ in parse_qsl(query_string, keep_blank_values=True)})
    entity: dict[str, Any] = {}
    if interaction.resource_type and interaction.resource_id:
        entity["what"] = {"reference": f"{interaction.resource_type}/{interaction.resource_id}"}
    elif interaction.resource_type:
        entity["type"] = {"system": "http://hl7.org/fhir/resource-types", "code": interaction.resource_type}
    if names:
        entity["detail"] = [{"type": "parameter-names", "valueString": ",".join(names)}]
    recorded = datetime.fromtimestamp(recorded_us / 1_000_000, UTC).isoformat(timespec="milliseconds")
    event: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": event_id(recorded_us),
        "meta": {"versionId": "1", "lastUpdated": recorded},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                 "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": interaction.code}],
        "action": ACTIONS[interaction.code],
        "recorded": recorded,
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
    """Queues audit events and appends them to the log in batches (see module docstring)."""

    def __init__(self, store: Store, *, batch_size: int = 500, interval: float = 0.2) -> None:
        self.store = store
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
        while self._pending and await self.flush():
            pass

    def record(self, caller: Caller, interaction: Interaction, query_string: str, status: int) -> None:
        """Queue the AuditEvent of one request (cheap; never raises into the request)."""
        self._pending.append(audit_event(caller, interaction, query_string, status, time.time_ns() // 1000))
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    async def flush(self) -> bool:
        """Append up to ``batch_size`` queued events in one transaction; False when the store refused them
        (they stay queued, at the front, for the next attempt)."""
        if not self._pending:
            return True
        batch, self._pending = self._pending[:self.batch_size], self._pending[self.batch_size:]
        try:
            await self.store.insert_records([r for event in batch for r in log_records(event)])
        except RecordConflict:  # cannot happen with random ids; never retry a batch that can never be written
            log.error("audit batch of %d events not written: an event id was taken", len(batch))
        except Exception as error:  # the trail must not take the server down: keep the batch and retry
            self._pending[:0] = batch
            if len(self._pending) > MAX_PENDING:
                dropped = len(self._pending) - MAX_PENDING
                del self._pending[:dropped]
                log.error("audit log unwritable (%s): %d oldest events dropped", type(error).__name__, dropped)
            else:
                log.warning("audit batch of %d events not written yet: %s", len(batch), type(error).__name__)
            return False
        return True

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            while await self.flush() and len(self._pending) >= self.batch_size:
                pass
