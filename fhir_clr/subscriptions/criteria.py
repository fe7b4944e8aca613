"""R4 core criteria subscriptions (``Subscription.criteria = "Task?status=completed"``), served beside the
Backport topics on the same event generation and delivery.

A criteria subscription is read as a topic of its own: one trigger on the criteria's resource type, firing on
create and update when the new version matches the criteria (a deleted resource matches nothing, so deletes are
not notified). Matching uses the same search parser and in-memory matcher as topic filters, so it agrees with
``GET [base]/Task?status=completed``; the subscriber's access (its Organization) limits events exactly as for
topics. Delivery follows R4 §2.46.7.1 (rest-hook, no handshake): the server activates the subscription, then per
event either sends the resource as ``PUT [endpoint]/[type]/[id]`` (``payload`` given) or an empty ``POST
[endpoint]`` (no ``payload``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fhir_clr.fhirmodel.allowlist import is_served_type
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.subscriptions.matching import FilterError, parse_filter
from fhir_clr.subscriptions.topics import CREATE, UPDATE, QueryTest, ResourceTrigger, Topic

_QUERY_FORM = re.compile(r"^([A-Z][A-Za-z]+)(\?.*)?$")


def is_criteria_query(criteria: str) -> bool:
    """True when ``criteria`` is an R4 search (``Type?params`` or a bare ``Type``), not a topic's canonical URL."""
    return _QUERY_FORM.fullmatch(criteria.strip()) is not None


def criteria_topic(criteria: str, registry: SearchParamRegistry, base_urls: Sequence[str] = ()) -> Topic:
    """The topic a criteria subscription stands for; FilterError when the criteria cannot be matched."""
    match = _QUERY_FORM.fullmatch(criteria.strip())
    if match is None:
        raise FilterError(None, "criteria must be a search such as Task?status=completed")
    resource_type = match.group(1)
    if not is_served_type(resource_type):
        raise FilterError(None, f"resource type {resource_type} is not served here")
    query = (match.group(2) or "").lstrip("?")
    matcher = parse_filter(resource_type, [f"{resource_type}?{query}"] if query else [], registry, base_urls)
    trigger = ResourceTrigger(resource_type=resource_type, interactions=frozenset({CREATE, UPDATE}), previous=None,
                              current=QueryTest(matcher, False), require_both=False, fhirpath=None)
    return Topic(url=criteria.strip(), title=f"R4 criteria on {resource_type}", triggers=(trigger,),
                 event_codes=frozenset(), filters={}, resource={})
