"""The audit trail: one AuditEvent per FHIR interaction of an authenticated client — who (client and
Organization), what (resource type and id, or the search's parameter *names*), when, and the HTTP outcome.
Never a resource body and never a query value.

The trail is an append-only log, not a set of FHIR resources. A request only queues a compact entry (a
tuple of the facts above); a background task appends the queue in batches, one store transaction per batch,
as bookkeeping records of the store port (``insert_records``): the batch itself (kind ``audit``, keyed by the
time of its last entry, so keys sort by time) and one key-only index record per distinct agent Organization,
client id and entity of the batch (``audit-agent``, ``audit-altid``, ``audit-entity``: ``<value>|<batch key>``).
No versions, history, search-index rows or outbox events (subscriptions never see the trail). An entry becomes
an ``AuditEvent`` only when it is read (``fhir_clr.auth.audit_log``, plan only); its id is
``<batch key>-<position in the batch>``.

Durability: the queue is appended at least every ``interval`` seconds (0.2 s) or ``batch_size`` entries (500)
and drained on shutdown, so a graceful stop (SIGTERM) loses nothing; a hard crash (SIGKILL, OOM kill, power
loss) loses the entries of at most that last window and of a batch being written. A batch the store refuses
is kept and retried (up to ``MAX_PENDING`` queued entries; beyond that the oldest are dropped and the loss is
logged with its count).

The one write that bypasses the engine. Every other write goes through :class:`fhir_clr.engine.engine.Engine` so
that validation, business rules, access checks, history, indexes and subscription events apply alike; none of
that fits here. The server writes these entries about requests, not on a caller's behalf (the access policy
refuses every caller's AuditEvent write); no business rule and no subscription topic is about them (an outbox
event would announce who called what); every AuditEvent is rendered here in one fixed shape (checked against
the R4 gate in ``tests/unit/test_auth_audit.py``), so validating it per request would only add cost; and a
request must not wait for its audit record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

from fhir_clr.auth.tokens import Caller
from fhir_clr.store.port import RecordConflict, RecordWrite, Store

log = logging.getLogger(__name__)

CLIENT_ID_SYSTEM = "urn:fhir-clr:client-id"
EVENTS = "audit"
"""Record kind of the batches: key ``<last recorded µs, 14 hex digits>-<8 random hex digits>``, document
``{"first": <first recorded µs>, "entries": [Entry, ...]}``."""
BY_AGENT = "audit-agent"
BY_CLIENT = "audit-altid"
BY_ENTITY = "audit-entity"
"""Record kinds of the index records: key ``<value>|<batch key>``, empty document."""
INDEX_SEPARATOR = "|"
MAX_PENDING = 100_000
"""Queued entries kept while the store refuses writes; older ones are dropped (and counted in the log)."""
EVENT_ID = re.compile(r"([0-9a-f]{14}-[0-9a-f]{8})-([0-9a-f]{1,4})")

Entry = tuple[int, str, str, str, str, str | None, str | None, str, int, str | None]
"""One interaction: recorded (epoch µs), client id, Organization, role, interaction code, resource type,
resource id, the query's parameter names (comma-separated, sorted), HTTP status, operation name."""
RECORDED: Final = 0
CLIENT: Final = 1
ORGANIZATION: Final = 2
ROLE: Final = 3
CODE: Final = 4
TYPE: Final = 5
ID: Final = 6
NAMES: Final = 7
STATUS: Final = 8
OPERATION: Final = 9
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


def parameter_names(query_string: str) -> str:
    """The sorted, comma-separated parameter names of a query string (never its values)."""
    if not query_string:
        return ""
    return ",".join(sorted({name for name, _ in parse_qsl(query_string, keep_blank_values=True)}))


def batch_key(entries: Sequence[Entry]) -> str:
    """A new batch key: when its last entry was recorded, then 32 random bits."""
    return f"{max(e[RECORDED] for e in entries):014x}-{secrets.token_hex(4)}"


def split_event_id(identifier: str) -> tuple[str, int] | None:
    """The batch key and position an event id names, or None when it is not an event id."""
    match = EVENT_ID.fullmatch(identifier)
    return (match.group(1), int(match.group(2), 16)) if match else None


def log_records(entries: Sequence[Entry]) -> list[RecordWrite]:
    """The records of one batch: the batch, and an index record per distinct agent, client and entity."""
    key = batch_key(entries)
    records = [RecordWrite(EVENTS, key, {"first": min(e[RECORDED] for e in entries),
                                         "entries": [list(e) for e in entries]})]
    for kind, values in ((BY_AGENT, {e[ORGANIZATION] for e in entries}), (BY_CLIENT, {e[CLIENT] for e in entries}),
                         (BY_ENTITY, {f"{e[TYPE]}/{e[ID]}" for e in entries if e[TYPE] and e[ID]})):
        records += [RecordWrite(kind, f"{value}{INDEX_SEPARATOR}{key}", {}) for value in sorted(values)]
    return records


def outcome_code(status: int) -> str:
    """The AuditEvent outcome of an HTTP status: 0 success, 4 minor failure (4xx), 8 serious failure (5xx)."""
    return "0" if status < 400 else "4" if status < 500 else "8"


def audit_event(entry: Sequence[Any], identifier: str) -> dict[str, Any]:
    """The AuditEvent ``identifier`` of one logged entry (no bodies, no query values)."""
    recorded_us, client_id, organization, role, code, resource_type, resource_id, names, status, operation = entry
    entity: dict[str, Any] = {}
    if resource_type and resource_id:
        entity["what"] = {"reference": f"{resource_type}/{resource_id}"}
    elif resource_type:
        entity["type"] = {"system": "http://hl7.org/fhir/resource-types", "code": resource_type}
    details = [{"type": "operation", "valueString": operation}] if operation else []
    if names:
        details.append({"type": "parameter-names", "valueString": names})
    if details:
        entity["detail"] = details
    recorded = datetime.fromtimestamp(recorded_us / 1_000_000, UTC).isoformat(timespec="milliseconds")
    event: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": identifier, "meta": {"versionId": "1", "lastUpdated": recorded},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                 "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": code}],
        "action": ACTIONS[code],
        "recorded": recorded,
        "outcome": outcome_code(status),
        "outcomeDesc": f"HTTP {status}",
        "agent": [{"who": {"reference": organization}, "altId": client_id, "requestor": True,
                   "name": f"client {client_id} ({role})"}],
        "source": {"observer": {"display": "fhir-clr"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]},
    }
    if entity:
        event["entity"] = [entity]
    return event


class AuditTrail:
    """Queues audit events and appends them to the log in batches (see module docstring)."""

    def __init__(self, store: Store, *, batch_size: int = 500, interval: float = 0.2,
                 owns_store: bool = False) -> None:
        self.store = store
        """Where the log lives (``fhir_clr.auth.audit_log`` reads it there)."""
        self.owns_store = owns_store
        """True when ``stop`` closes ``store`` (a log store of its own)."""
        self.batch_size = batch_size
        self.interval = interval
        self._pending: list[Entry] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background writer."""
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        """Stop the writer, write what is still queued, and close the log store if it is the trail's own."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._pending and await self.flush():
            pass
        if self._pending:
            log.error("audit log unwritable at shutdown: %d entries not written", len(self._pending))
        if self.owns_store:
            await self.store.close()

    def record(self, caller: Caller, interaction: Interaction, query_string: str, status: int) -> None:
        """Queue the audit entry of one request (a tuple: cheap; never raises into the request)."""
        self._pending.append((time.time_ns() // 1000, caller.client_id, caller.organization, caller.role.value,
                              interaction.code, interaction.resource_type, interaction.resource_id,
                              parameter_names(query_string), status, interaction.operation))
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    async def flush(self) -> bool:
        """Append up to ``batch_size`` queued entries in one transaction; False when the store refused them
        (they stay queued, at the front, for the next attempt)."""
        if not self._pending:
            return True
        batch, self._pending = self._pending[:self.batch_size], self._pending[self.batch_size:]
        try:
            await self.store.insert_records(log_records(batch))
        except RecordConflict:  # a batch key taken (32 random bits in the same µs): retried under a new key
            self._pending[:0] = batch
            return False
        except Exception as error:  # the trail must not take the server down: keep the batch and retry
            self._pending[:0] = batch
            if len(self._pending) > MAX_PENDING:
                dropped = len(self._pending) - MAX_PENDING
                del self._pending[:dropped]
                log.error("audit log unwritable (%s): %d oldest entries dropped", type(error).__name__, dropped)
            else:
                log.warning("audit batch of %d entries not written yet: %s", len(batch), type(error).__name__)
            return False
        return True

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            while await self.flush() and len(self._pending) >= self.batch_size:
                pass
