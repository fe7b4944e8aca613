"""The R4 notification Bundles of the Backport IG: a ``history`` Bundle whose first entry is the subscription
status ``Parameters`` (profile backport-subscription-status-r4), then one entry per event focus (``id-only``:
request/response only; ``full-resource``: with the resource as of the event; ``empty``: none)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir_clr.subscriptions.channel import BACKPORT

STATUS_PROFILE = BACKPORT + "backport-subscription-status-r4"
ERROR_SYSTEM = "http://terminology.hl7.org/CodeSystem/subscription-error"
_METHODS = {"create": ("POST", "201"), "update": ("PUT", "200"), "delete": ("DELETE", "204"), "event": ("GET", "200")}


@dataclass(frozen=True, slots=True)
class Event:
    """One numbered event of one subscription."""

    number: int
    timestamp: str
    resource_type: str
    resource_id: str
    version: int
    interaction: str
    """create | update | delete, or ``event`` for server-raised events (e.g. an obligation gone overdue)."""

    def as_doc(self) -> dict[str, Any]:
        """The event as stored (a Record document)."""
        return {"n": self.number, "at": self.timestamp, "type": self.resource_type, "id": self.resource_id,
                "v": self.version, "op": self.interaction}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Event:
        """The event of a stored document."""
        return cls(doc["n"], doc["at"], doc["type"], doc["id"], doc["v"], doc["op"])

    @property
    def reference(self) -> str:
        """``Type/id`` of the event's focus."""
        return f"{self.resource_type}/{self.resource_id}"


@dataclass(frozen=True, slots=True)
class StatusFacts:
    """What the status entry reports about the subscription."""

    subscription_id: str
    topic: str
    status: str
    events_since_start: int
    error: str | None = None


def instant_of(us: int) -> str:
    """A FHIR instant for epoch microseconds."""
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_instant() -> str:
    """The current time as a FHIR instant."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_parameters(base: str, facts: StatusFacts, kind: str, content: str, events: Sequence[Event] = ()
                      ) -> dict[str, Any]:
    """The status ``Parameters`` of a notification (``kind``: handshake, heartbeat, event-notification,
    query-status or query-event) for a subscription sending ``content``."""
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{facts.subscription_id}"}}]
    if content != "empty":
        parameters.append({"name": "topic", "valueCanonical": facts.topic})
    parameters += [{"name": "status", "valueCode": facts.status}, {"name": "type", "valueCode": kind},
                   {"name": "events-since-subscription-start", "valueString": str(facts.events_since_start)}]
    for event in events:
        parts: list[dict[str, Any]] = [{"name": "event-number", "valueString": str(event.number)},
                                       {"name": "timestamp", "valueInstant": event.timestamp}]
        if content != "empty":
            parts.append({"name": "focus", "valueReference": {"reference": f"{base}/{event.reference}"}})
        parameters.append({"name": "notification-event", "part": parts})
    if facts.error:
        parameters.append({"name": "error", "valueCodeableConcept": {
            "coding": [{"system": ERROR_SYSTEM, "code": "no-response"}], "text": facts.error}})
    return {"resourceType": "Parameters", "meta": {"profile": [STATUS_PROFILE]}, "parameter": parameters}


def _status_entry(base: str, parameters: dict[str, Any], subscription_id: str) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": parameters,
            "request": {"method": "GET", "url": f"{base}/Subscription/{subscription_id}/$status"},
            "response": {"status": "200"}}


def _event_entry(base: str, event: Event, body: dict[str, Any] | None, content: str) -> dict[str, Any]:
    method, status = _METHODS.get(event.interaction, ("GET", "200"))
    entry: dict[str, Any] = {"fullUrl": f"{base}/{event.reference}",
                             "request": {"method": method, "url": event.reference},
                             "response": {"status": status}}
    if content == "full-resource" and body is not None:
        entry["resource"] = body
        entry["response"]["etag"] = f'W/"{event.version}"'
    return entry


def notification_bundle(base: str, facts: StatusFacts, kind: str, content: str, events: Sequence[Event] = (),
                        bodies: dict[int, dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """A ``history`` notification Bundle; ``bodies`` maps event numbers to the focus as of the event
    (full-resource only)."""
    entries = [_status_entry(base, status_parameters(base, facts, kind, content, events), facts.subscription_id)]
    if content != "empty":
        entries += [_event_entry(base, e, (bodies or {}).get(e.number), content) for e in events]
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "history", "timestamp": now_instant(),
            "entry": entries}


def status_searchset(base: str, parameters: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``$status`` answer: a searchset of status Parameters."""
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset", "total": len(parameters),
            "timestamp": now_instant(), "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": p,
                                                   "search": {"mode": "match"}} for p in parameters]}
