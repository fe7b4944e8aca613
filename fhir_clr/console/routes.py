"""The console's HTTP routes: sign-in, the six pages, downloads, the re-send and send-notice actions. Each page
handler asks a view module for its data through the caller's engine, then renders a template, so every figure a
page shows is counted through the caller's access policy. The one exception is the metrics quick view, which shows
the whole process's figures: it is the plan's alone (403 for anyone else, and not in their navigation)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from fhir_clr.auth.tokens import SESSION_TYPE, InvalidToken
from fhir_clr.background_cache import FiguresCache
from fhir_clr.config import Settings
from fhir_clr.console import session
from fhir_clr.console.compliance_view import compliance_page, month_range
from fhir_clr.console.imports_view import import_detail, imports_page, received_file, rejects_text
from fhir_clr.console.notices_view import notices_page
from fhir_clr.console.subscriptions_view import subscriptions_page
from fhir_clr.console.templating import render
from fhir_clr.console.timeline_view import TimelineBuilder
from fhir_clr.console.worklist_view import Filters, group_counts, worklist_page
from fhir_clr.errors import FhirError
from fhir_clr.notices.actions import release
from fhir_clr.observability.snapshot import snapshot
from fhir_clr.request_context import access, engine, scrape_gauges, services, subscription_operations
from fhir_clr.subscriptions.operations import resend_events

router = APIRouter(prefix=session.PREFIX, include_in_schema=False)
PLAN_ROLE = "plan"
COLD_WAIT_SECONDS = 3.0
"""How long a page waits for figures nobody computed yet before saying they are on their way."""
static_files = StaticFiles(directory=str(Path(__file__).parent / "static"))


def _query_builder(request: Request) -> Callable[..., str]:
    """``query(name=value, …)``: the current page's filters with some parameters replaced, URL-encoded."""
    keep = ("service", "provider", "referrer", "from", "to")

    def query(**changes: Any) -> str:
        params = {k: v for k, v in request.query_params.items() if k in keep and v}
        params.update({k: v for k, v in changes.items() if v})
        return urlencode(params)
    return query


def _sees_server_figures(request: Request) -> bool:
    """True for the plan (and dev mode): the callers shown figures about the whole server process."""
    return str(access(request).role) == PLAN_ROLE


def _context(request: Request, section: str, **values: Any) -> dict[str, Any]:
    clock = services(request).engine.clock
    return {"section": section, "signed_in": "caller" in request.scope.get("state", {}),
            "server_figures": _sees_server_figures(request),
            "now_text": clock().astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"), "query": _query_builder(request),
            **values}


async def _page(request: Request, section: str, build: Callable[[], Awaitable[tuple[str, dict[str, Any]]]]
                ) -> Response:
    """Render what ``build`` returns, or the error page (with the error's status) when the engine refuses."""
    try:
        template, values = await build()
    except FhirError as error:
        return _error_page(request, section, error)
    return render(request, template, _context(request, section, **values))


def _error_page(request: Request, section: str, error: FhirError) -> Response:
    message = error.issues[0].message if error.issues else "The request could not be served"
    return render(request, "error.html", _context(request, section, heading=f"Error {error.status}",
                                                   message=message), status_code=error.status)


def require_same_origin(request: Request) -> None:
    """Refuse a console form post sent from another site (403)."""
    if not session.same_origin(request.scope):
        raise FhirError(403, "forbidden", "Console actions must be posted from the console itself")


# ---- sign-in -------------------------------------------------------------------------------------------------

@router.get("/login")
async def login_form(request: Request) -> Response:
    """The sign-in page (open in dev mode: nothing to do)."""
    return render(request, "login.html", _context(request, "login", dev=services(request).settings.dev,
                                                  next=session.safe_next(request.query_params.get("next")),
                                                  error=None))


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the pasted access token and open a console session for its client (a session token of the
    server's own, in the console cookie; it is not an access token)."""
    require_same_origin(request)
    form = await request.form()
    token = str(form.get("token") or "").strip()
    target = session.safe_next(str(form.get("next") or ""))
    auth = request.app.state.auth
    if auth is None:
        return RedirectResponse(target, status_code=303)
    try:
        caller = auth.tokens.verify(token)
        enabled = await auth.client_enabled(caller.client_id)
    except InvalidToken:
        enabled = False
    if not enabled:
        return render(request, "login.html", _context(request, "login", dev=False, next=target,
                                                      error="That access token is not valid (or has expired)."),
                      status_code=401)
    lifetime = int(services(request).settings.console_session_minutes * 60)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(session.COOKIE, auth.tokens.issue(caller, lifetime=lifetime, token_type=SESSION_TYPE),
                        max_age=lifetime, path=session.PREFIX, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Forget the console cookie."""
    require_same_origin(request)
    response = RedirectResponse(f"{session.PREFIX}/login", status_code=303)
    response.delete_cookie(session.COOKIE, path=session.PREFIX)
    return response


# ---- pages ---------------------------------------------------------------------------------------------------

@router.get("/")
async def worklist(request: Request) -> Response:
    """The worklist: group counts and one page of the chosen group."""
    query = request.query_params
    filters = Filters(query.get("service", ""), query.get("provider", ""), query.get("referrer", ""))
    caller = engine(request)

    async def build() -> tuple[str, dict[str, Any]]:
        counted = await _cache(request, "counts").get((_caller_key(request), caller.clock().date(), filters),
                                             lambda: group_counts(caller, filters), fresh=query.get("fresh") == "1",
                                             wait=COLD_WAIT_SECONDS)
        page = await worklist_page(caller, query.get("group", "overdue"), filters, query.get("page"),
                                   counted.value if counted else None)
        return "worklist.html", {"page": page, "counted_at": counted.at if counted else None}
    return await _page(request, "worklist", build)


@router.get("/referrals/{referral_id}")
async def referral_timeline(request: Request, referral_id: str) -> Response:
    """One referral's timeline: facts, authorization, status history, notices against deadlines, files."""
    async def build() -> tuple[str, dict[str, Any]]:
        return "referral.html", {"timeline": await TimelineBuilder(engine(request)).build(referral_id)}
    return await _page(request, "worklist", build)


@router.get("/imports")
async def imports_list(request: Request) -> Response:
    """The received files with their row counts."""
    async def build() -> tuple[str, dict[str, Any]]:
        page = await imports_page(engine(request), request.query_params.get("kind", ""),
                                  request.query_params.get("page"))
        return "imports.html", {"page": page}
    return await _page(request, "imports", build)


@router.get("/imports/{document_id}")
async def import_file(request: Request, document_id: str) -> Response:
    """One received file and its rejected rows."""
    async def build() -> tuple[str, dict[str, Any]]:
        return "import.html", {"detail": await import_detail(engine(request), document_id)}
    return await _page(request, "imports", build)


@router.get("/imports/{document_id}/rejected-rows.csv")
async def import_rejects(request: Request, document_id: str) -> Response:
    """The rejected rows of a received file, as the CSV the import produced."""
    caller = engine(request)
    line, _ = await received_file(caller, document_id)
    return Response(await rejects_text(caller, line), media_type="text/csv; charset=utf-8", headers={
        "content-disposition": f'attachment; filename="{document_id}-rejected-rows.csv"'})


@router.get("/compliance")
async def compliance(request: Request) -> Response:
    """Compliance charts and tables for a range of referral months (computed figures are kept a few minutes
    per caller; ``fresh=1`` recomputes them now)."""
    query = request.query_params
    key = (_caller_key(request), query.get("from", ""), query.get("to", ""))

    async def build() -> tuple[str, dict[str, Any]]:
        month_range(key[1], key[2], engine(request).clock().date())  # a bad month is a 400 at once
        computed = await _cache(request, "figures").get(
            key, lambda: compliance_page(engine(request), key[1], key[2]), fresh=query.get("fresh") == "1",
            wait=COLD_WAIT_SECONDS)
        if computed is None:
            return "computing.html", {"what": "The compliance figures for these months"}
        return "compliance.html", {"page": computed.value, "computed_at": computed.at}
    return await _page(request, "compliance", build)


def _caller_key(request: Request) -> tuple[str, str, str]:
    """Whose figures these are: everything the caller's access policy depends on (its Organization, role and
    granted scopes), so a cached figure is only ever served to a caller who would compute the same one; empty
    in dev mode."""
    caller = request.scope.get("state", {}).get("caller")
    if caller is None:
        return "", "", ""
    return caller.organization, str(caller.role), caller.scopes.text()


def figures_caches(settings: Settings) -> dict[str, FiguresCache]:
    """The console's figures caches, one per ``console_<name>_seconds`` setting (made by the app's lifespan)."""
    return {name: FiguresCache(getattr(settings, f"console_{name}_seconds")) for name in ("counts", "figures")}


def _cache(request: Request, setting: str) -> FiguresCache:
    """The app's figures cache kept for the ``console_<setting>_seconds`` setting."""
    return request.app.state.console_caches[setting]  # type: ignore[no-any-return]


@router.get("/subscriptions")
async def subscriptions(request: Request) -> Response:
    """The caller's Subscriptions with their delivery figures and a re-send button where events wait."""
    async def build() -> tuple[str, dict[str, Any]]:
        page = await subscriptions_page(engine(request), subscription_operations(request),
                                        request.query_params.get("page"))
        return "subscriptions.html", {"page": page, "resent": request.query_params.get("resent")}
    return await _page(request, "subscriptions", build)


@router.post("/subscriptions/{subscription_id}/resend")
async def resend(request: Request, subscription_id: str) -> Response:
    """The re-send button: ``$resend`` from the first undelivered event, then back to the list."""
    try:
        require_same_origin(request)
        await resend_events(engine(request), subscription_operations(request), subscription_id, None)
    except FhirError as error:
        return _error_page(request, "subscriptions", error)
    return RedirectResponse(f"{session.PREFIX}/subscriptions?{urlencode({'resent': subscription_id})}",
                            status_code=303)


@router.get("/notices")
async def notices(request: Request) -> Response:
    """The CLR notices by state, channel and kind; the held and failed ones with their content and a button."""
    async def build() -> tuple[str, dict[str, Any]]:
        page = await notices_page(engine(request), request.query_params.get("page"))
        return "notices.html", {"page": page, "released": request.query_params.get("sent")}
    return await _page(request, "notices", build)


@router.post("/notices/{communication_id}/send")
async def send_notice(request: Request, communication_id: str) -> Response:
    """Send a notice held for review, or try a failed one again: the plan's action only (403 for anyone else,
    whatever the id, so an id says nothing)."""
    try:
        require_same_origin(request)
        if not _sees_server_figures(request):
            raise FhirError(403, "forbidden", "Only the plan sends notices")
        await release(engine(request), communication_id)
    except FhirError as error:
        return _error_page(request, "notices", error)
    return RedirectResponse(f"{session.PREFIX}/notices?{urlencode({'sent': communication_id})}", status_code=303)


@router.get("/metrics")
async def metrics_view(request: Request) -> Response:
    """A quick view of the process's metrics (the figures ``/metrics`` exports): the plan's only, since they
    count every organization's requests, imports, obligations and webhook queues."""
    async def build() -> tuple[str, dict[str, Any]]:
        if not _sees_server_figures(request):
            raise FhirError(403, "forbidden", "The metrics quick view shows figures of the whole server; only the "
                            "plan's clients see it")
        await scrape_gauges(request).refresh()
        return "metrics.html", {"snap": snapshot()}
    return await _page(request, "metrics", build)
