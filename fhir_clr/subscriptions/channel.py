"""Reading a Subscription resource in the R4 Backport form into what the server needs to serve it, with a
specific error (and element path) for everything the server cannot honour."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir_clr.errors import FhirError
from fhir_clr.outbound.policy import EndpointPolicy, EndpointRefused
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.search.values import parse_date_range
from fhir_clr.store.query import IndexEntries
from fhir_clr.subscriptions.matching import FilterError, ResourceFilter, parse_filter
from fhir_clr.subscriptions.topics import Topic, TopicCatalog

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
BACKPORT_PROFILE = BACKPORT + "backport-subscription"
FILTER_URL = BACKPORT + "backport-filter-criteria"
CONTENT_URL = BACKPORT + "backport-payload-content"
HEARTBEAT_URL = BACKPORT + "backport-heartbeat-period"
TIMEOUT_URL = BACKPORT + "backport-timeout"
MAX_COUNT_URL = BACKPORT + "backport-max-count"
CHANNEL_TYPE_URL = BACKPORT + "backport-channel-type"
SIGNING_SECRET_URL = "http://fhir-clr.org/fhir/StructureDefinition/subscription-signing-secret"
SUBSCRIBER_URL = "http://fhir-clr.org/fhir/StructureDefinition/subscriber"

CONTENTS = ("empty", "id-only", "full-resource")
PAYLOAD_TYPES = ("application/fhir+json", "application/json")
DEFAULT_TIMEOUT, MAX_TIMEOUT = 10, 60
DEFAULT_MAX_COUNT, MAX_MAX_COUNT = 20, 100
MIN_SECRET_LENGTH = 16
RESERVED_HEADERS = frozenset({"host", "content-type", "content-length", "transfer-encoding", "connection"})
_HEADER = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(\S.*)?")


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """Everything needed to generate and deliver a Subscription's notifications."""

    topic: Topic
    filters: tuple[ResourceFilter, ...]
    endpoint: str
    payload: str
    content: str
    headers: tuple[tuple[str, str], ...]
    heartbeat_seconds: int | None
    timeout_seconds: int
    max_count: int
    end: datetime | None
    signing_secret: str | None

    def matches(self, resource_type: str, resource: dict[str, Any] | None, index: IndexEntries | None = None
                ) -> bool:
        """True when the subscriber's filters (for this resource type) accept ``resource`` (``index``: its
        index entries when the caller has them)."""
        relevant = [f for f in self.filters if f.resource_type == resource_type]
        return not relevant or (resource is not None and all(f.matches(resource, index) for f in relevant))


def _extensions(element: Any, url: str) -> list[dict[str, Any]]:
    if not isinstance(element, dict):
        return []
    return [e for e in element.get("extension") or [] if isinstance(e, dict) and e.get("url") == url]


def _one(element: Any, url: str, value_key: str, path: str) -> Any:
    found = _extensions(element, url)
    if len(found) > 1:
        raise FhirError(422, "invalid", f"Give {url.rsplit('/', 1)[-1]} at most once", expression=path)
    return found[0].get(value_key) if found else None


def _integer(value: Any, path: str, *, low: int, high: int | None = None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise FhirError(422, "value", f"The value must be an integer {bound}", expression=path)
    return value


class ChannelReader:
    """Checks Subscriptions against the topics, the filter parameters and the endpoint policy."""

    def __init__(self, topics: TopicCatalog, registry: SearchParamRegistry, policy: EndpointPolicy,
                 base_urls: Sequence[str] = ()) -> None:
        self.topics = topics
        self.registry = registry
        self.policy = policy
        self.base_urls = tuple(base_urls)

    def read(self, subscription: dict[str, Any], *, check_endpoint: bool = True) -> ChannelSpec:
        """The channel of ``subscription``; FhirError (422) naming the element that cannot be honoured."""
        topic = self._topic(subscription)
        channel = subscription.get("channel") or {}
        self._channel_type(channel)
        endpoint = channel.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise FhirError(422, "required", "A rest-hook Subscription needs channel.endpoint",
                            expression="Subscription.channel.endpoint")
        if check_endpoint:
            try:
                self.policy.check(endpoint)
            except EndpointRefused as refused:
                raise FhirError(422, "security", str(refused), expression="Subscription.channel.endpoint") from None
        content = self._content(channel)
        secret = _one(channel, SIGNING_SECRET_URL, "valueString", "Subscription.channel.extension")
        if secret is not None and (not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH):
            raise FhirError(422, "value", f"The signing secret must have at least {MIN_SECRET_LENGTH} characters",
                            expression="Subscription.channel.extension")
        return ChannelSpec(
            topic=topic, filters=self._filters(subscription, topic), endpoint=endpoint,
            payload=self._payload(channel), content=content, headers=self._headers(channel),
            heartbeat_seconds=_integer(_one(channel, HEARTBEAT_URL, "valueUnsignedInt", "Subscription.channel"),
                                       "Subscription.channel.extension", low=1),
            timeout_seconds=_integer(_one(channel, TIMEOUT_URL, "valueUnsignedInt", "Subscription.channel"),
                                     "Subscription.channel.extension", low=1, high=MAX_TIMEOUT) or DEFAULT_TIMEOUT,
            max_count=_integer(_one(channel, MAX_COUNT_URL, "valuePositiveInt", "Subscription.channel"),
                               "Subscription.channel.extension", low=1, high=MAX_MAX_COUNT) or DEFAULT_MAX_COUNT,
            end=self._end(subscription), signing_secret=secret)

    def _topic(self, subscription: dict[str, Any]) -> Topic:
        criteria = subscription.get("criteria")
        if not isinstance(criteria, str) or not criteria:
            raise FhirError(422, "required", "criteria must be the canonical URL of a subscription topic",
                            expression="Subscription.criteria")
        topic = self.topics.get(criteria)
        if topic is None:
            known = ", ".join(t.url for t in self.topics.all())
            raise FhirError(422, "not-supported", f"Unknown subscription topic {criteria}; topics offered: {known}",
                            expression="Subscription.criteria")
        return topic

    def _filters(self, subscription: dict[str, Any], topic: Topic) -> tuple[ResourceFilter, ...]:
        found = []
        default_type = next(iter(topic.filters), None) or next((t.resource_type for t in topic.triggers), "")
        for index, extension in enumerate(_extensions(subscription.get("_criteria"), FILTER_URL)):
            path = f"Subscription.criteria.extension[{index}]"
            text = extension.get("valueString")
            if not isinstance(text, str) or not text.strip():
                raise FhirError(422, "required", "A filter criteria extension needs a valueString", expression=path)
            resource_type = text.split("?", 1)[0].strip() if "?" in text else default_type
            allowed = topic.filters.get(resource_type)
            if allowed is None:
                raise FhirError(422, "not-supported", f"The topic does not filter {resource_type} resources",
                                expression=path)
            try:
                parsed = parse_filter(resource_type, [text], self.registry, self.base_urls)
            except FilterError as error:
                raise FhirError(422, "invalid", f"Filter {text!r}: {error}", expression=path) from None
            refused = sorted(parsed.params - allowed)
            if refused:
                raise FhirError(422, "not-supported", f"The topic does not allow filtering by {', '.join(refused)}; "
                                f"allowed: {', '.join(sorted(allowed))}", expression=path)
            found.append(parsed)
        return tuple(found)

    @staticmethod
    def _channel_type(channel: dict[str, Any]) -> None:
        kind = channel.get("type")
        custom = _extensions(channel.get("_type"), CHANNEL_TYPE_URL)
        if custom or kind != "rest-hook":
            name = (custom[0].get("valueCoding") or {}).get("code") if custom else kind
            raise FhirError(422, "not-supported", f"Channel type {name!r} is not supported; use rest-hook",
                            expression="Subscription.channel.type")

    @staticmethod
    def _payload(channel: dict[str, Any]) -> str:
        payload = channel.get("payload") or "application/fhir+json"
        mime, _, parameters = str(payload).partition(";")
        version = parameters.strip().removeprefix("fhirVersion=") if parameters.strip() else "4.0"
        if mime.strip() not in PAYLOAD_TYPES or version not in ("4.0", "4.0.1"):
            raise FhirError(422, "not-supported", f"Payload {payload!r} cannot be produced; use "
                            "application/fhir+json (FHIR R4)", expression="Subscription.channel.payload")
        return str(payload)

    @staticmethod
    def _content(channel: dict[str, Any]) -> str:
        content = _one(channel.get("_payload"), CONTENT_URL, "valueCode", "Subscription.channel.payload")
        if content is None:
            return "id-only"
        if content not in CONTENTS:
            raise FhirError(422, "not-supported", f"Payload content {content!r} is not supported; use "
                            + " | ".join(CONTENTS), expression="Subscription.channel.payload.extension")
        return str(content)

    @staticmethod
    def _headers(channel: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        headers = []
        for index, text in enumerate(channel.get("header") or []):
            match = _HEADER.fullmatch(text) if isinstance(text, str) else None
            if match is None or match.group(1).lower() in RESERVED_HEADERS:
                raise FhirError(422, "invalid", "A channel header must be 'Name: value' and may not set "
                                + ", ".join(sorted(RESERVED_HEADERS)),
                                expression=f"Subscription.channel.header[{index}]")
            headers.append((match.group(1), match.group(2) or ""))
        return tuple(headers)

    @staticmethod
    def _end(subscription: dict[str, Any]) -> datetime | None:
        end = subscription.get("end")
        if end is None:
            return None
        try:
            return datetime.fromtimestamp(parse_date_range(str(end))[1] / 1_000_000, tz=UTC)
        except (ValueError, TypeError):
            raise FhirError(422, "value", "end must be an instant", expression="Subscription.end") from None
