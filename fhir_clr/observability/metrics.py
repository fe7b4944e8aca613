"""The server's Prometheus metrics, in one registry per process. Labels never carry ids or PHI: HTTP routes are
reduced to templates (``/Task/{id}``), store operations to the port's method names."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fhir_clr.fhirmodel.allowlist import is_served_type

REGISTRY = CollectorRegistry(auto_describe=True)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

HTTP_REQUESTS = Histogram("fhir_clr_http_request_duration_seconds", "HTTP requests by route template, method and "
                          "status class", ("method", "route", "status"), buckets=LATENCY_BUCKETS, registry=REGISTRY)
STORE_OPERATIONS = Histogram("fhir_clr_store_operation_duration_seconds", "Storage port calls by operation",
                             ("operation",), buckets=STORE_BUCKETS, registry=REGISTRY)
IMPORT_ROWS = Counter("fhir_clr_import_rows_total", "File rows imported, by file kind and outcome",
                      ("kind", "outcome"), registry=REGISTRY)
WEBHOOK_ATTEMPTS = Histogram("fhir_clr_webhook_attempt_duration_seconds", "Rest-hook POSTs by kind and result",
                             ("kind", "result"), buckets=LATENCY_BUCKETS, registry=REGISTRY)
WEBHOOK_QUEUE = Gauge("fhir_clr_webhook_queue_depth", "Subscription events raised but not delivered yet (all "
                      "subscriptions, as of the last scrape)", registry=REGISTRY)
OBLIGATIONS = Gauge("fhir_clr_notice_obligations", "Open CLR notice obligations by worklist group (as of the last "
                    "scrape)", ("group",), registry=REGISTRY)

PAGE_WORDS = frozenset({"console", "referrals", "imports", "subscriptions", "compliance", "metrics", "login",
                        "logout", "resend", "static", "auth", "token", ".well-known", "smart-configuration",
                        "metadata", "healthz", "readyz", "docs", "openapi.json"})


def route_template(path: str) -> str:
    """``path`` with every segment that is not a served resource type, an ``_``/``$`` keyword or a known page
    word replaced by ``{id}``: ``/Task/abc/_history/2`` becomes ``/Task/{id}/_history/{id}``."""
    kept = [part if part.startswith(("$", "_")) or part in PAGE_WORDS or is_served_type(part) else "{id}"
            for part in path.split("/") if part]
    return "/" + "/".join(kept)
