"""What the HTTP routes (the FHIR API and the console) need per request: the running services, the caller's
access and engine, and this server's base URL. Shared by both, so that neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from fhir_clr.clr.codes import CodeLists
from fhir_clr.config import Settings
from fhir_clr.engine.access import FULL_ACCESS, AccessPolicy
from fhir_clr.engine.bundles import BundleProcessor
from fhir_clr.engine.engine import Engine
from fhir_clr.mapping.spec import MappingSpec
from fhir_clr.observability.gauges import ScrapeGauges
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.signalling import SignallingStore
from fhir_clr.store.timed import TimedStore
from fhir_clr.subscriptions.channel import ChannelReader
from fhir_clr.subscriptions.operations import SubscriptionOperations
from fhir_clr.subscriptions.topics import TopicCatalog


@dataclass(slots=True)
class Services:
    """Long-lived objects created at start-up and shared by all requests."""

    settings: Settings
    store: SignallingStore[TimedStore]
    """The configured store adapter, timed (``store.inner.writes_failing`` feeds the readiness probe) and
    announcing its commits (``store.committed`` wakes the subscription worker)."""
    registry: SearchParamRegistry
    engine: Engine
    bundles: BundleProcessor
    rules: dict[str, Any]
    """The CLR rules configuration (loaded once by :func:`fhir_clr.app.build_services`)."""
    codes: CodeLists
    """The CLR code lists of the configured profiles directory."""
    specs: dict[str, MappingSpec]
    """The flat-file mapping specs of the configured mappings directory, by id."""
    channels: ChannelReader
    """Reads and checks Subscription channels."""
    known_profiles: set[str] = field(default_factory=set)
    topics: TopicCatalog = field(default_factory=lambda: TopicCatalog(()))


def services(request: Request) -> Services:
    """The services of the app serving ``request``."""
    return request.app.state.services


def access(request: Request) -> AccessPolicy:
    """The caller's access policy (set by the security middleware; unrestricted in dev mode)."""
    return request.scope.get("state", {}).get("access", FULL_ACCESS)


def engine(request: Request) -> Engine:
    """The engine acting for the caller of ``request``."""
    return services(request).engine.with_access(access(request))


def bundles(request: Request) -> BundleProcessor:
    """The Bundle processor acting for the caller of ``request``."""
    return services(request).bundles.with_engine(engine(request))


def subscription_operations(request: Request) -> SubscriptionOperations:
    """The subscription operations of the app serving ``request``; a re-send wakes its delivery worker."""
    built = services(request)
    return SubscriptionOperations(built.store, built.channels, wake=built.store.committed.set)


def scrape_gauges(request: Request) -> ScrapeGauges:
    """The app's scrape-time gauges (created and stopped by the app's lifespan)."""
    return request.app.state.scrape_gauges  # type: ignore[no-any-return]


def base_url(request: Request) -> str:
    """The FHIR base URL (configured, or derived from the request), without a trailing slash."""
    configured = request.app.state.services.settings.base_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")
