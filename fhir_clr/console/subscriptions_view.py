"""The subscriptions page: each Subscription the caller may see, with its status, topic, endpoint host, events
raised and delivered, queue depth, consecutive failures and its last delivery attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from fhir_clr.engine.engine import Engine
from fhir_clr.search.parse import PAGE_TOKEN
from fhir_clr.subscriptions.notifications import instant_of
from fhir_clr.subscriptions.operations import DeliveryOverview, SubscriptionOperations

PAGE_SIZE = 25


@dataclass(slots=True)
class SubscriptionLine:
    """One Subscription as listed."""

    id: str
    status: str
    topic: str
    endpoint_host: str
    overview: DeliveryOverview
    last_at: str
    last_result: str

    @property
    def resendable(self) -> bool:
        """True when events wait after failures (dead-lettered in ``error``, or failing now)."""
        return self.status == "error" or (self.overview.failures > 0 and self.overview.queue_depth > 0)


@dataclass(slots=True)
class SubscriptionsPage:
    """One page of Subscriptions."""

    lines: list[SubscriptionLine]
    next_token: str | None
    prev_token: str | None


def _last_result(attempt: dict[str, Any] | None) -> tuple[str, str]:
    if attempt is None:
        return "", "no attempt yet"
    outcome = f"HTTP {attempt['status_code']}" if attempt.get("status_code") is not None else "no response"
    if attempt.get("error"):
        outcome += f" ({attempt['error']})"
    return instant_of(attempt["at_us"]), f"{attempt.get('kind', 'delivery')}: {outcome}, {attempt.get('ms', 0)} ms"


async def subscriptions_page(engine: Engine, operations: SubscriptionOperations,
                             page_token: str | None) -> SubscriptionsPage:
    """One page of the caller's Subscriptions with their delivery overview."""
    params = [("_count", str(PAGE_SIZE)), ("_sort", "_id")]
    if page_token:
        params.append((PAGE_TOKEN, page_token))
    result = await engine.search("Subscription", params)
    lines = []
    for match in result.matches:
        if match.body is None:
            continue
        subscription = orjson.loads(match.body)
        overview = await operations.overview(subscription)
        at, outcome = _last_result(overview.last_attempt)
        lines.append(SubscriptionLine(
            subscription["id"], str(subscription.get("status", "")), str(subscription.get("criteria", "")),
            urlsplit(str((subscription.get("channel") or {}).get("endpoint", ""))).netloc, overview, at, outcome))
    return SubscriptionsPage(lines, result.next_token, result.prev_token)
