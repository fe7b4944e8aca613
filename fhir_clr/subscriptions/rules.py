"""What a client may write in a Subscription, checked on every create and update (the engine runs this rule
after planning, so REST, transactions and imports behave alike):

* the channel must be one the server can honour (see :mod:`fhir_clr.subscriptions.channel`), else 422 with
  the element path;
* the server owns ``status`` and ``error``: a new or re-negotiated Subscription (criteria or channel changed,
  or re-activation after ``error``/``off``) becomes ``requested`` and gets a handshake; a client may set
  ``off`` to pause; otherwise the current status is kept;
* a Subscription made by a provider or Referring Entity records its Organization as ``subscriber``; its events
  are limited to what that Organization may see.

Status changes the delivery worker (and ``$resend``) make are the server's own writes
(``Engine.for_server_writes``, seen as ``PlanningContext.server_write``) and skip these checks.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from fhir_clr.engine.rules import Caller, PlanningContext
from fhir_clr.engine.writes import Plan, WritePlanner
from fhir_clr.store.port import ChangeOp
from fhir_clr.subscriptions.channel import SUBSCRIBER_URL, ChannelReader

NEGOTIATED = ("criteria", "_criteria", "channel", "end")
"""Elements whose change needs a new handshake."""


class SubscriptionWriteRule:
    """The engine write rule (:class:`~fhir_clr.engine.rules.WriteRule`) for Subscription resources."""

    def __init__(self, reader: ChannelReader, planner: WritePlanner) -> None:
        self.reader = reader
        self.planner = planner

    async def apply(self, plan: Plan, context: PlanningContext) -> Plan:
        """``plan`` with the Subscription's status and subscriber set by the rules; 422 when it cannot be
        served. The server's own writes pass unchecked."""
        change = plan.change
        if change is None or change.resource is None or change.resource_type != "Subscription" \
                or context.server_write:
            return plan
        resource = dict(change.resource)
        await asyncio.to_thread(self.reader.read, resource)  # the endpoint check resolves its host: not on the loop
        previous = await self._previous(plan)
        resource["status"] = self._status(previous, resource)
        if previous is not None and previous.get("error") and resource["status"] != "error":
            resource.pop("error", None)
        resource = self._with_subscriber(resource, previous, context.caller)
        if resource == change.resource:
            return plan
        prepared = self.planner.prepare("Subscription", change.resource_id, resource)
        updated = self.planner.change(change.op, "Subscription", change.resource_id, change.expected_version,
                                      prepared, change.match_keys, change.steal_match_keys, method=change.method)
        return Plan(updated, plan.status, plan.existing, extra=plan.extra, replaced=plan.replaced)

    async def _previous(self, plan: Plan) -> dict[str, Any] | None:
        change = plan.change
        assert change is not None
        if change.op is not ChangeOp.UPDATE:
            return None
        stored = plan.replaced or await self.planner.store.read("Subscription", change.resource_id)
        if stored is None or stored.body is None:
            return None
        return orjson.loads(stored.body)  # type: ignore[no-any-return]

    @staticmethod
    def _status(previous: dict[str, Any] | None, proposed: dict[str, Any]) -> str:
        wanted = proposed.get("status")
        if wanted == "off":
            return "off"
        if previous is None:
            return "requested"
        current = previous.get("status")
        renegotiated = any(previous.get(k) != proposed.get(k) for k in NEGOTIATED)
        if renegotiated or (current in ("error", "off") and wanted in ("requested", "active")):
            return "requested"
        return str(current)

    @staticmethod
    def _with_subscriber(resource: dict[str, Any], previous: dict[str, Any] | None, caller: Caller
                         ) -> dict[str, Any]:
        """Keep the recorded subscriber; a non-plan creator is recorded as the subscriber."""
        kept = [e for e in (previous or resource).get("extension") or [] if e.get("url") == SUBSCRIBER_URL]
        if previous is None and caller.role != "plan" and caller.organization:
            kept = [{"url": SUBSCRIBER_URL, "valueReference": {"reference": caller.organization}}]
        others = [e for e in resource.get("extension") or [] if e.get("url") != SUBSCRIBER_URL]
        extensions = others + kept
        if extensions:
            return {**resource, "extension": extensions}
        return {k: v for k, v in resource.items() if k != "extension"}
