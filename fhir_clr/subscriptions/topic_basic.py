"""The subscription topics in their R4 form, as the Subscriptions Backport IG describes it for R4 servers: a
``Basic`` resource coded ``http://hl7.org/fhir/fhir-types#SubscriptionTopic`` that carries the R5
``SubscriptionTopic`` elements as cross-version extensions
(``http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.*``), so R4 clients can read a
topic's triggers and ``canFilterBy``. They are written into the store at start-up (an update by id: unchanged
topics write nothing) and read and searched like any Basic
(``GET [base]/Basic?code=http://hl7.org/fhir/fhir-types|SubscriptionTopic``) by every authenticated client; no
client may write or delete them (``fhir_clr.auth.policy``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fhir_clr.engine.access import TOPIC_BASIC_CODE
from fhir_clr.engine.engine import Engine
from fhir_clr.subscriptions.topics import Topic

XVER = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic"
_PARTS: dict[str, dict[str, str]] = {
    "resourceTrigger": {"description": "valueMarkdown", "resource": "valueUri", "supportedInteraction": "valueCode",
                        "fhirPathCriteria": "valueString"},
    "eventTrigger": {"description": "valueMarkdown", "event": "valueCodeableConcept", "resource": "valueUri"},
    "canFilterBy": {"description": "valueMarkdown", "resource": "valueUri", "filterParameter": "valueString",
                    "filterDefinition": "valueUri", "comparator": "valueCode", "modifier": "valueCode"},
    "notificationShape": {"resource": "valueUri", "include": "valueString", "revInclude": "valueString"},
}
_QUERY_PARTS = {"previous": "valueString", "resultForCreate": "valueCode", "current": "valueString",
                "resultForDelete": "valueCode", "requireBoth": "valueBoolean"}
_SIMPLE = {"url": "valueUri", "version": "valueString", "name": "valueString", "title": "valueString",
           "status": "valueCode", "date": "valueDateTime", "publisher": "valueString", "description": "valueMarkdown"}


def basic_id(topic: Topic) -> str:
    """The Basic id of a topic: ``subscriptiontopic-`` and the topic's file id (or the end of its URL)."""
    name = str(topic.resource.get("id") or topic.url.rstrip("/").rsplit("/", 1)[-1])
    return ("subscriptiontopic-" + re.sub(r"[^A-Za-z0-9.-]", "-", name))[:64]


def _parts(element: dict[str, Any], value_keys: dict[str, str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for name, value_key in value_keys.items():
        values = element.get(name)
        for value in values if isinstance(values, list) else [values] if values is not None else []:
            parts.append({"url": name, value_key: value})
    return parts


def topic_as_basic(topic: Topic) -> dict[str, Any]:
    """The R4 ``Basic`` form of a topic."""
    data = topic.resource
    extensions = [{"url": f"{XVER}.{name}", key: data[name]} for name, key in _SIMPLE.items()
                  if data.get(name) is not None]
    for element_name, value_keys in _PARTS.items():
        for element in data.get(element_name) or []:
            parts = _parts(element, value_keys)
            if element_name == "resourceTrigger" and element.get("queryCriteria"):
                parts.append({"url": "queryCriteria", "extension": _parts(element["queryCriteria"], _QUERY_PARTS)})
            extensions.append({"url": f"{XVER}.{element_name}", "extension": parts})
    return {"resourceType": "Basic", "id": basic_id(topic),
            "code": {"coding": [{"system": TOPIC_BASIC_CODE[0], "code": TOPIC_BASIC_CODE[1]}]}, "extension": extensions}


async def load_topic_resources(engine: Engine, topics: Sequence[Topic]) -> int:
    """Write the Basic form of every topic; the number that changed."""
    changed = 0
    for topic in topics:
        resource = topic_as_basic(topic)
        changed += (await engine.update("Basic", resource["id"], resource)).changed
    return changed
