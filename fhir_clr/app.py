"""The composition root: :func:`build_services` loads the conformance data, code lists, rules configuration,
mapping specs and search-parameter registry once from :class:`Settings`; :func:`create_app` adds the routers,
error handlers and the lifespan that starts and stops every background worker."""

from __future__ import annotations

import asyncio
import errno
import logging
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from fhir_clr.api import audit, bulk, imports, index, letters, metrics, operations, rest, subscriptions, worklist
from fhir_clr.api.access_log import AccessLogMiddleware
from fhir_clr.api.openapi import openapi_document
from fhir_clr.api.plain_routes import install as install_plain_routes
from fhir_clr.api.responses import error_response
from fhir_clr.auth import endpoints as auth_endpoints
from fhir_clr.auth.middleware import SecurityMiddleware
from fhir_clr.auth.service import build_auth
from fhir_clr.bulk.service import ExportService
from fhir_clr.clr.reference import load_reference
from fhir_clr.clr.rules.write_rules import ClrWriteRules
from fhir_clr.config import Settings, package_version
from fhir_clr.conformance import load_conformance
from fhir_clr.console import routes as console
from fhir_clr.console import session as console_session
from fhir_clr.engine.bundles import BundleProcessor
from fhir_clr.engine.capability import capability_statement
from fhir_clr.engine.engine import Engine
from fhir_clr.engine.validation_pool import shared_pool
from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel.validate import warm_models
from fhir_clr.imports.http_jobs import ImportJobs
from fhir_clr.letters.batch import build_print_batches
from fhir_clr.mapping.spec_loader import load_specs
from fhir_clr.notices.service import notice_worker
from fhir_clr.observability.gauges import ScrapeGauges
from fhir_clr.observability.metrics import STORE_OPERATIONS
from fhir_clr.outbound.policy import EndpointPolicy
from fhir_clr.request_context import Services
from fhir_clr.runtime_tuning import tune_runtime
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.factory import build_store
from fhir_clr.store.port import InvalidPageToken, StoreUnavailable, UnsupportedSearch
from fhir_clr.store.signalling import SignallingStore
from fhir_clr.store.timed import TimedStore
from fhir_clr.subscriptions.channel import ChannelReader
from fhir_clr.subscriptions.delivery import RetryPolicy
from fhir_clr.subscriptions.rules import SubscriptionWriteRule
from fhir_clr.subscriptions.service import SubscriptionService, webhook_transport
from fhir_clr.subscriptions.topic_basic import load_topic_resources
from fhir_clr.subscriptions.topics import TopicCatalog

log = logging.getLogger("fhir_clr")
RETRY_LATER = {"Retry-After": "30"}
"""Sent with every 503: a store or disk problem is worth retrying after a while."""
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def known_profiles(profiles_dir: Path) -> set[str]:
    """Canonical URLs of the StructureDefinitions shipped in ``profiles_dir``."""
    urls: set[str] = set()
    for path in sorted(profiles_dir.glob("*.json")) if profiles_dir.is_dir() else []:
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        resources = [e.get("resource", {}) for e in data.get("entry", [])] if data.get(
            "resourceType") == "Bundle" else [data]
        urls.update(r["url"] for r in resources if r.get("resourceType") == "StructureDefinition"
                    and isinstance(r.get("url"), str))
    return urls


def fixed_clock(settings: Settings) -> Callable[[], datetime] | None:
    """The fixed clock of ``FHIR_CLR_FIXED_NOW`` (development mode only), or None for the real time."""
    fixed = settings.fixed_now
    if fixed is None:
        return None
    if not settings.dev:
        raise ValueError("FHIR_CLR_FIXED_NOW is only allowed in development mode")
    return lambda: fixed


async def build_services(settings: Settings) -> Services:
    """Load the configured reference data, open the store and build the engine with its write rules, the CLR
    workflow's and the Subscriptions' (the app and CLI commands)."""
    base_urls = (settings.base_url.rstrip("/"),) if settings.base_url else ()
    profiles_dir = settings.profiles_dir
    reference = load_reference(profiles_dir)
    rules, codes = reference.rules, reference.codes
    specs = load_specs(settings.mappings_dir, rules=rules, codes=codes, profiles_dir=profiles_dir)
    store = SignallingStore(TimedStore(build_store(settings), STORE_OPERATIONS))
    await store.open()
    registry = SearchParamRegistry.from_directory(profiles_dir, base_urls=base_urls)
    warm_models()
    engine = Engine(store, registry, reference=reference,
                    default_count=settings.default_page_size, max_count=settings.max_page_size,
                    base_urls=base_urls, clock=fixed_clock(settings))
    topics = TopicCatalog.from_directory(profiles_dir / "topics", registry)
    channels = ChannelReader(topics, registry, EndpointPolicy.from_entries(settings.webhook_allowed_hosts.split(",")),
                             base_urls)
    engine.write_rules = [ClrWriteRules(engine.planner, reference), SubscriptionWriteRule(channels, engine.planner)]
    bundles = BundleProcessor(engine, max_entries=settings.max_bundle_entries, base_urls=base_urls,
                              max_response_bytes=settings.max_bundle_response_bytes)
    return Services(settings=settings, store=store, registry=registry, engine=engine,
                    bundles=bundles, known_profiles=known_profiles(profiles_dir), topics=topics, channels=channels,
                    rules=rules, codes=codes, specs=specs)


def subscription_service(services: Services, transport: httpx.AsyncBaseTransport | None = None
                         ) -> SubscriptionService:
    """The background subscription worker of a server process on ``services``. Notifications go out through
    ``transport``: by default the pinned transport of the channels' endpoint policy (:func:`webhook_transport`),
    which the worker owns and closes when it stops."""
    settings = services.settings
    policy = services.channels.policy
    retry = RetryPolicy(settings.webhook_max_attempts, settings.webhook_retry_base_seconds,
                        settings.webhook_retry_max_seconds)
    return SubscriptionService(services.store, services.engine, services.channels, policy, retry,
                               settings.notification_base_url(), transport or webhook_transport(policy),
                               poll_seconds=settings.subscription_poll_seconds,
                               lease_seconds=settings.subscription_lease_seconds,
                               sweep_seconds=settings.obligation_sweep_seconds)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI application for ``settings`` (environment when omitted). ConfigurationError when
    authentication is on and no public base URL is configured."""
    settings = settings or Settings()
    settings.check_secured()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every background worker is started here and stopped below, newest first, before the store closes.
        services = await build_services(settings)
        await load_conformance(services.engine, settings.profiles_dir)
        await load_topic_resources(services.engine, services.topics.all())
        tune_runtime()
        app.state.print_batches = build_print_batches(services.engine, settings.letters_dir)
        app.state.services = services
        app.state.auth = None if settings.dev else await build_auth(settings, services.store.adapter)
        app.state.subscriptions = subscription_service(services)
        await app.state.subscriptions.start()
        app.state.notices = notice_worker(settings, services.engine, services.store)
        if app.state.notices is not None:
            await app.state.notices.start()
        app.state.exports = ExportService(services.engine, settings.data_dir, max_lines=settings.export_file_lines)
        await app.state.exports.resume()
        app.state.import_jobs = ImportJobs()
        app.state.console_caches = console.figures_caches(settings)
        app.state.scrape_gauges = ScrapeGauges(services.engine, services.store, services.rules, services.codes)
        log.info("store ready", extra={"store": services.store.name, "auth": not settings.dev})
        try:
            yield
        finally:
            await app.state.scrape_gauges.cache.stop()
            for cache in app.state.console_caches.values():
                await cache.stop()
            await app.state.import_jobs.stop()
            await asyncio.to_thread(shared_pool().close)  # the imports' validation worker process, if started
            await app.state.exports.stop()
            if app.state.notices is not None:
                await app.state.notices.stop()
            await app.state.subscriptions.stop()
            if app.state.auth is not None:
                await app.state.auth.close()
            await services.store.close()

    app = FastAPI(title="fhir-clr", version=package_version(), lifespan=lifespan, docs_url="/docs",
                  redoc_url=None, openapi_url="/openapi.json")
    app.state.settings = settings
    app.add_middleware(SecurityMiddleware, sessions=console_session, error_response=error_response,
                       max_body_bytes=settings.max_body_bytes, dev=settings.dev,
                       large_body_bytes=settings.large_body_bytes,
                       large_body_concurrency=settings.large_body_concurrency,
                       metrics_on_loopback=settings.metrics_loopback_without_token)
    app.add_middleware(AccessLogMiddleware)
    app.include_router(index.router)
    app.include_router(auth_endpoints.router)
    app.include_router(operations.router)
    app.include_router(imports.router)
    app.include_router(worklist.router)
    app.include_router(letters.router)
    app.include_router(subscriptions.router)
    app.include_router(bulk.router)
    app.include_router(metrics.router)
    app.include_router(console.router)
    app.mount("/console/static", console.static_files, name="console_static")
    install_plain_routes(app, audit.router)  # before the generic type routes it specialises
    install_plain_routes(app, rest.router)
    _install_error_handlers(app)
    app.openapi = lambda: _fhir_openapi(app)  # type: ignore[method-assign]
    return app


def _fhir_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of the FHIR API, generated once from the CapabilityStatement (FastAPI's own document
    would describe none of the FHIR interactions, which are plain routes)."""
    if app.openapi_schema is None:
        built: Services = app.state.services
        token_url = "/auth/token" if app.state.auth is not None else None
        statement = capability_statement(built.registry, "", token_url, [t.url for t in built.topics.all()])
        app.openapi_schema = openapi_document(statement)
    return app.openapi_schema


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FhirError)
    async def on_fhir_error(_: Request, error: FhirError) -> Response:
        return error_response(error)

    @app.exception_handler(InvalidPageToken)
    async def on_bad_page_token(_: Request, error: InvalidPageToken) -> Response:
        return error_response(FhirError(400, "value", "The paging token is not valid for this search; "
                                        "start again from the first page"))

    @app.exception_handler(UnsupportedSearch)
    async def on_unsupported_search(_: Request, error: UnsupportedSearch) -> Response:
        return error_response(FhirError(400, "not-supported", f"This search cannot be run: {error}"))

    @app.exception_handler(StoreUnavailable)
    async def on_store_unavailable(_: Request, error: StoreUnavailable) -> Response:
        log.error("store unavailable: %s", type(error).__name__)
        return error_response(FhirError(503, "transient", "The data store is unavailable; retry later",
                                        headers=RETRY_LATER))

    @app.exception_handler(OSError)
    async def on_os_error(_: Request, error: OSError) -> Response:
        if error.errno not in NO_SPACE:
            return await on_unexpected(_, error)
        log.error("no space left for the data directory")
        return error_response(FhirError(503, "transient", "The server has no disk space left; retry later",
                                        headers=RETRY_LATER))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_: Request, error: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(error.status_code, "processing")
        message = {404: "No such endpoint", 405: "Method not allowed on this endpoint"}.get(
            error.status_code, str(error.detail))
        return error_response(FhirError(error.status_code, code, message))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, error: RequestValidationError) -> Response:
        return error_response(FhirError(400, "invalid", "The request is malformed"))

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, error: Exception) -> Response:
        # The exception message may quote request content (PHI): log the type and the stack only.
        stack = "".join(traceback.format_tb(error.__traceback__))
        log.error("unexpected error: %s\n%s", type(error).__name__, stack)
        return error_response(FhirError(500, "exception", "Internal server error"))
