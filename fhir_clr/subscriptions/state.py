"""The durable bookkeeping of subscriptions, kept as store records (not FHIR resources):

* ``subscription-counter`` / ``<id>``: where the subscription started and how many events it has (written by
  the event generator only, see :class:`Counter`);
* ``subscription-delivery`` / ``<id>``: how far delivery got (written by the deliverer only, see
  :class:`DeliveryState`), so the two never contend for one record;
* ``subscription-event`` / ``<id>/<number>``: every generated event, numbered from 1 per subscription;
* ``subscription-attempt`` / ``<id>/<time>``: the delivery attempts (status code, latency, error);
* ``subscription-cursor`` / ``events``: the last outbox sequence turned into events;
* ``obligation-overdue`` / ``<Task id>``: an overdue obligation already announced (once per obligation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

COUNTER, DELIVERY = "subscription-counter", "subscription-delivery"
EVENT, ATTEMPT, CURSOR = "subscription-event", "subscription-attempt", "subscription-cursor"
OVERDUE = "obligation-overdue"
EVENTS_CURSOR = "events"


def event_key(subscription_id: str, number: int) -> str:
    """The record key of event ``number`` of a subscription (sorts in number order)."""
    return f"{subscription_id}/{number:012d}"


def attempt_key(subscription_id: str, at_us: int) -> str:
    """The record key of a delivery attempt made at ``at_us`` (sorts in time order)."""
    return f"{subscription_id}/{at_us:017d}"


@dataclass(slots=True)
class Counter:
    """A subscription's events so far."""

    start_seq: int = 0
    """The outbox sequence of the Subscription's creation: only later changes are its events."""
    events: int = 0
    """Events generated since the subscription started (``events-since-subscription-start``)."""
    def as_doc(self) -> dict[str, Any]:
        """The counter as a record document."""
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Counter:
        """The counter of a record document (unknown keys ignored)."""
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


@dataclass(slots=True)
class DeliveryState:
    """How far a subscription's delivery got."""

    delivered: int = 0
    """The highest event number the endpoint acknowledged (events are delivered in order)."""
    failures: int = 0
    """Consecutive failed attempts."""
    next_try_us: int = 0
    """No attempt before this time (backoff)."""
    last_sent_us: int = 0
    """When something (event, heartbeat, handshake) last reached the endpoint."""
    handshake_version: int = 0
    """The Subscription version whose handshake succeeded (a new version needing one starts over)."""
    error: str | None = None
    attempts: int = 0
    """Attempts recorded so far (old attempt records are pruned)."""

    def as_doc(self) -> dict[str, Any]:
        """The state as a record document."""
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> DeliveryState:
        """The state of a record document (unknown keys ignored)."""
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})
