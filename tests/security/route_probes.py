"""How B exercises each route of the app. The route table is read from the application itself, so a route added
later and unknown here makes the suite fail until someone says how to attack it (or why it is exempt).

Each probe returns failure lines: leaks of A's secrets, and answers about A's (or deleted) ids that differ from
answers about ids that never existed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpx

from tests.api.helpers import FHIR_JSON
from tests.security import letter_probes
from tests.security.oracle import Exchange, difference, leak_report
from tests.security.world import CIN_SYSTEM, World, b_body, never_existed_id, new_cin, rtf_file, wait_for_status

Route = tuple[str, str]
"""(method, path template) as the app declares it."""
Probe = Callable[[World], list[str]]
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
FAILING_TEST = [{"op": "test", "path": "", "value": 0}]
STALE = 'W/"1"'


def route_table() -> list[Route]:
    """Every (method, path) the application serves, HEAD for each GET included, static mounts as one entry."""
    from fhir_clr.app import create_app
    from fhir_clr.config import Settings

    found: list[Route] = []

    def walk(routes: Iterable[Any], prefix: str) -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI ≥ 0.160 keeps included routers nested
                walk(route.original_router.routes, prefix + getattr(route.include_context, "prefix", ""))
            elif getattr(route, "methods", None):
                path = route.path if route.path.startswith(prefix) else prefix + route.path
                found.extend((method, path) for method in sorted(route.methods))
                if "GET" in route.methods and "HEAD" not in route.methods:
                    found.append(("HEAD", path))
            elif hasattr(route, "path"):
                found.append(("MOUNT", prefix + route.path))

    walk(create_app(Settings(dev=True)).routes, "")
    return sorted(set(found), key=lambda r: (r[0] == "DELETE", r[1], r[0]))


# ---- comparing A's ids with ids that never existed ----------------------------------------------------------

Sender = Callable[[World, str, str], httpx.Response]
"""Send B's request about ``resource_type``/``id``."""


def compare_ids(world: World, label: str, send: Sender, types: Iterable[str] | None = None,
                hidden: dict[str, list[str]] | None = None) -> list[str]:
    """For each of A's ids and each deleted id of ``types`` (all seeded types when omitted), or for the ids in
    ``hidden`` instead: B's answer must leak nothing and be alike the answer for a fresh id that never
    existed."""
    failures: list[str] = []
    for resource_type in types or sorted(hidden or world.a_ids):
        hidden_ids = [("hidden", i) for i in (hidden or {}).get(resource_type, [])] if hidden else [
            ("A's", i) for i in world.a_ids.get(resource_type, [])] + [
            ("deleted", i) for i in world.deleted.get(resource_type, [])]
        for kind, hidden_id in hidden_ids:
            fresh = never_existed_id()
            seen = Exchange(f"{label} [{resource_type}, {kind} id]", send(world, resource_type, hidden_id))
            absent = Exchange(f"{label} [{resource_type}, never-existed id]", send(world, resource_type, fresh))
            failures += leak_report(seen, world.secrets) + leak_report(absent, world.secrets)
            failures += difference(seen, absent, (hidden_id,), (fresh,))
    return failures


def leak_only(world: World, label: str, response: httpx.Response) -> list[str]:
    """Failure lines for a route without ids: only leaks count."""
    return leak_report(Exchange(label, response), world.secrets)


def _with_version(headers: dict[str, str], if_match: bool) -> dict[str, str]:
    return {**headers, "If-Match": STALE} if if_match else headers


# ---- instance level ----------------------------------------------------------------------------------------

def _instance_probe(method: str, suffix: str = "") -> Probe:
    """B's ``method`` on ``/{type}/{id}<suffix>``, for A's, deleted and never-existed ids alike."""
    label = f"{method} /{{type}}/{{id}}{suffix}"
    return lambda world: compare_ids(world, label, lambda w, t, i: w.b.request(method, f"/{t}/{i}{suffix}"))


probe_read = _instance_probe("GET")
probe_head = _instance_probe("HEAD")
probe_instance_history = _instance_probe("GET", "/_history")
probe_instance_history_head = _instance_probe("HEAD", "/_history")
probe_vread = _instance_probe("GET", "/_history/1")
probe_vread_head = _instance_probe("HEAD", "/_history/1")


def probe_update(world: World) -> list[str]:
    """PUT with If-Match must answer alike; PUT without it may create a never-existed id (update as create), but
    must never take over an id A has or had, and A's live and deleted ids must answer alike."""
    failures = compare_ids(world, "PUT /{type}/{id} If-Match", lambda w, t, i: w.b.put(
        f"/{t}/{i}", json=b_body(w, t, i), headers=_with_version(FHIR_JSON, True)))
    for resource_type in sorted(world.a_ids):
        answers: list[Exchange] = []
        takeover = [world.takeover[resource_type]] if resource_type in world.takeover else []
        for kind, ids in (("A's", world.a_ids[resource_type]), ("deleted", takeover)):
            for hidden_id in ids:
                answer = Exchange(f"PUT /{resource_type}/{{id}} (no If-Match) [{kind} id]", world.b.put(
                    f"/{resource_type}/{hidden_id}", json=b_body(world, resource_type, hidden_id), headers=FHIR_JSON))
                failures += leak_report(answer, world.secrets)
                if answer.response.is_success:
                    failures.append(f"{answer.label}: HTTP {answer.response.status_code}: B took over the id")
                answers.append(answer)
        if len(answers) > 1:
            failures += difference(answers[-1], answers[0], tuple(takeover), tuple(world.a_ids[resource_type]))
    return failures


def probe_patch(world: World) -> list[str]:
    failures = compare_ids(world, "PATCH /{type}/{id} failing test op", lambda w, t, i: w.b.patch(
        f"/{t}/{i}", json=FAILING_TEST, headers=JSON_PATCH))
    return failures + compare_ids(world, "PATCH /{type}/{id} If-Match", lambda w, t, i: w.b.patch(
        f"/{t}/{i}", json=[{"op": "add", "path": "/language", "value": "en"}],
        headers=_with_version(JSON_PATCH, True)))


def probe_delete(world: World) -> list[str]:
    failures = compare_ids(world, "DELETE /{type}/{id} If-Match", lambda w, t, i: w.b.delete(
        f"/{t}/{i}", headers={"If-Match": STALE}))
    return failures + compare_ids(world, "DELETE /{type}/{id}", lambda w, t, i: w.b.delete(f"/{t}/{i}"))


def probe_instance_validate(world: World) -> list[str]:
    return compare_ids(world, "POST /{type}/{id}/$validate", lambda w, t, i: w.b.post(
        f"/{t}/{i}/$validate", json=b_body(w, t, i), headers=FHIR_JSON))


# ---- type level --------------------------------------------------------------------------------------------

def _cin_pairs(world: World) -> list[tuple[str, str]]:
    """(label, CIN) of A's Member and of the plan-only Member, each to be compared with an unknown CIN."""
    return [("A's Member's CIN", world.cin), ("plan-only Member's CIN", world.plan_only_cin)]


def compare_cins(world: World, label: str, send: Callable[[World, str], httpx.Response]) -> list[str]:
    """B's request naming a known Member's CIN must answer like one naming an unknown CIN."""
    failures: list[str] = []
    for kind, cin in _cin_pairs(world):
        unknown = new_cin()
        hidden = Exchange(f"{label} [{kind}]", send(world, f"{CIN_SYSTEM}|{cin}"))
        absent = Exchange(f"{label} [unknown CIN]", send(world, f"{CIN_SYSTEM}|{unknown}"))
        failures += leak_report(hidden, world.secrets) + leak_report(absent, world.secrets)
        failures += difference(hidden, absent, (cin,), (unknown,))
    return failures


def probe_search(world: World) -> list[str]:
    failures = compare_ids(world, "GET /{type}?_id", lambda w, t, i: w.b.get(f"/{t}", params={"_id": i}))
    failures += compare_ids(world, "GET /{type}?_id&_summary=count", lambda w, t, i: w.b.get(
        f"/{t}", params={"_id": i, "_summary": "count"}))
    return failures + compare_cins(world, "GET /Patient?identifier", lambda w, c: w.b.get(
        "/Patient", params={"identifier": c}))


def probe_search_head(world: World) -> list[str]:
    return compare_ids(world, "HEAD /{type}?_id", lambda w, t, i: w.b.head(f"/{t}", params={"_id": i}))


def probe_search_post(world: World) -> list[str]:
    failures = compare_ids(world, "POST /{type}/_search _id", lambda w, t, i: w.b.post(
        f"/{t}/_search", data={"_id": i}))
    return failures + compare_cins(world, "POST /Patient/_search identifier", lambda w, c: w.b.post(
        "/Patient/_search", data={"identifier": c}))


def _plan_audit_ids(world: World) -> dict[str, list[str]]:
    """Ids of AuditEvents the plan's own interactions produced (B must not see them)."""
    bundle = world.plan.get("/AuditEvent", params={"altid": "sec-plan", "_count": 5}).json()
    ids = [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
    assert ids, "the plan's interactions left no audit trail"
    return {"AuditEvent": ids}


def _audit_probe(method: str, path: str) -> Probe:
    """B reading an AuditEvent by id answers as for an id that never existed."""
    def probe(world: World) -> list[str]:
        return compare_ids(world, f"{method} {path}", lambda w, t, i: w.b.request(method, f"/AuditEvent/{i}"),
                           hidden=_plan_audit_ids(world))
    return probe


def _audit_search_probe(method: str) -> Probe:
    """B searching the audit trail for any of A's resources, or by the plan's client, finds nothing."""
    def send(world: World, params: dict[str, str]) -> httpx.Response:
        if method == "POST":
            return world.b.post("/AuditEvent/_search", data=params)
        return world.b.request(method, "/AuditEvent", params=params)

    def probe(world: World) -> list[str]:
        label = f"{method} /AuditEvent"
        failures = compare_ids(world, f"{label}?entity", lambda w, t, i: send(w, {"entity": f"{t}/{i}"}))
        for params in ({}, {"altid": "sec-plan"}, {"agent": "Organization/plan"}, {"date": "ge2000"}):
            response = send(world, params)
            failures += leak_only(world, f"{label} {params}", response)
            if method != "HEAD" and any(e["search"]["mode"] == "match" for e in response.json().get("entry", [])):
                failures.append(f"{label} {params}: B sees audit events")
        return failures
    return probe


def probe_create(world: World) -> list[str]:
    """Conditional create (If-None-Exist) naming A's resource must behave as if it did not exist."""
    failures = compare_ids(world, "POST /{type} If-None-Exist _id", lambda w, t, i: w.b.post(
        f"/{t}", json=b_body(w, t), headers={**FHIR_JSON, "If-None-Exist": f"_id={i}"}))
    return failures + compare_cins(world, "POST /Patient If-None-Exist identifier", lambda w, c: w.b.post(
        "/Patient", json=b_body(w, "Patient"), headers={**FHIR_JSON, "If-None-Exist": f"identifier={c}"}))


def probe_conditional_update(world: World) -> list[str]:
    failures = compare_ids(world, "PUT /{type}?_id", lambda w, t, i: w.b.put(
        f"/{t}", params={"_id": i}, json=b_body(w, t), headers=FHIR_JSON))
    return failures + compare_cins(world, "PUT /Patient?identifier", lambda w, c: w.b.put(
        "/Patient", params={"identifier": c}, json=b_body(w, "Patient"), headers=FHIR_JSON))


def probe_conditional_patch(world: World) -> list[str]:
    failures = compare_ids(world, "PATCH /{type}?_id failing test op", lambda w, t, i: w.b.patch(
        f"/{t}", params={"_id": i}, json=FAILING_TEST, headers=JSON_PATCH))
    return failures + compare_cins(world, "PATCH /Patient?identifier failing test op", lambda w, c: w.b.patch(
        "/Patient", params={"identifier": c}, json=FAILING_TEST, headers=JSON_PATCH))


def probe_conditional_delete(world: World) -> list[str]:
    failures = compare_ids(world, "DELETE /{type}?_id", lambda w, t, i: w.b.delete(f"/{t}", params={"_id": i}))
    return failures + compare_cins(world, "DELETE /Patient?identifier", lambda w, c: w.b.delete(
        "/Patient", params={"identifier": c}))


def probe_type_validate(world: World) -> list[str]:
    """$validate of B's body that names A's resource (as its id) must answer as for an unknown id."""
    return compare_ids(world, "POST /{type}/$validate", lambda w, t, i: w.b.post(
        f"/{t}/$validate", json=b_body(w, t, i), headers=FHIR_JSON))


def probe_type_history(world: World) -> list[str]:
    failures: list[str] = []
    for resource_type in sorted({*world.a_ids, *world.deleted}):
        for method in ("GET", "HEAD"):
            response = world.b.request(method, f"/{resource_type}/_history", params={"_count": 1000})
            failures += leak_only(world, f"{method} /{resource_type}/_history", response)
            failures += names_a_ids(world, f"{method} /{resource_type}/_history", response)
    return failures


def probe_system_history(world: World) -> list[str]:
    failures: list[str] = []
    for method in ("GET", "HEAD"):
        response = world.b.request(method, "/_history", params={"_count": 1000})
        failures += leak_only(world, f"{method} /_history", response) + names_a_ids(world, f"{method} /_history",
                                                                                     response)
    return failures


def names_a_ids(world: World, label: str, response: httpx.Response) -> list[str]:
    """A listing B receives must not even name A's ids (live or deleted), unless B itself sent them."""
    text, sent = response.text, Exchange(label, response).sent
    named = sorted({f"{t} ({kind})" for kind, ids in (("A's", world.a_ids), ("deleted", world.deleted))
                    for t, values in ids.items() for i in values if i in text and i not in sent})
    return [f"{label}: HTTP {response.status_code} names ids of {', '.join(named)}"] if named else []


def probe_bundle(world: World) -> list[str]:
    """The Bundle endpoint, at its simplest (a batch GET): every other entry form is in test_bundles_as_b."""
    def send(w: World, t: str, i: str) -> httpx.Response:
        return w.b.post("/", json={"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": f"{t}/{i}"}}]}, headers=FHIR_JSON)
    return compare_ids(world, "POST / batch GET", send)


# ---- operations ----------------------------------------------------------------------------------------------

def exported(world: World, label: str, kickoff: httpx.Response) -> list[str]:
    """Follow B's export to its files; nothing in the kickoff, the manifest or any file may leak or name A's
    ids (the ``deleted`` list included)."""
    failures = leak_only(world, f"{label} kickoff", kickoff)
    if kickoff.status_code != 202:
        return failures
    manifest = wait_for_status(world.b, kickoff.headers["Content-Location"])
    failures += leak_only(world, f"{label} manifest", manifest) + names_a_ids(world, f"{label} manifest", manifest)
    if manifest.status_code != 200:
        return failures
    body = manifest.json()
    for item in [*body.get("output", []), *body.get("deleted", []), *body.get("error", [])]:
        file = world.b.get(item["url"])
        where = f"{label} file {item.get('type')} ({'deleted' if item in body.get('deleted', []) else 'output'})"
        failures += leak_only(world, where, file) + names_a_ids(world, where, file)
    return failures


EXPORT_TYPES = "Patient,Task,ServiceRequest,Condition,Procedure,Communication,DocumentReference,Observation,Group"


def probe_system_export(world: World) -> list[str]:
    failures: list[str] = []
    for method in ("GET", "POST"):
        kick = world.b.request(method, "/$export", params={"_type": EXPORT_TYPES, "_since": "2000-01-01T00:00:00Z"},
                               headers={"Prefer": "respond-async"})
        failures += exported(world, f"{method} /$export _type _since", kick)
    return failures


def probe_patient_export(world: World) -> list[str]:
    failures: list[str] = []
    for method in ("GET", "POST"):
        kick = world.b.request(method, "/Patient/$export", params={"_since": "2000-01-01T00:00:00Z"},
                               headers={"Prefer": "respond-async"})
        failures += exported(world, f"{method} /Patient/$export", kick)
    return failures


def probe_group_export(world: World) -> list[str]:
    failures: list[str] = []
    for method in ("GET", "POST"):
        kickoffs: list[httpx.Response] = []

        def send(w: World, t: str, i: str, m: str = method, seen: list[httpx.Response] = kickoffs) -> httpx.Response:
            seen.append(w.b.request(m, f"/Group/{i}/$export", headers={"Prefer": "respond-async"}))
            return seen[-1]
        failures += compare_ids(world, f"{method} /Group/{{id}}/$export", send, types=["Group"])
        for kickoff in kickoffs:
            failures += exported(world, f"{method} /Group/{{id}}/$export", kickoff)
    return failures


def probe_group_export_head(world: World) -> list[str]:
    return compare_ids(world, "HEAD /Group/{id}/$export", lambda w, t, i: w.b.head(f"/Group/{i}/$export"),
                       types=["Group"])


def _compare_job(world: World, label: str, a_job: str, send: Callable[[str], httpx.Response]) -> list[str]:
    fresh = never_existed_id().replace("-", "")
    hidden, absent = Exchange(f"{label} [A's job]", send(a_job)), Exchange(f"{label} [never-existed job]", send(fresh))
    return (leak_report(hidden, world.secrets) + leak_report(absent, world.secrets)
            + difference(hidden, absent, (a_job,), (fresh,)))


def probe_export_status(world: World) -> list[str]:
    return _compare_job(world, "GET /$export-status/{job}", world.a_export_job,
                        lambda job: world.b.get(f"/$export-status/{job}"))


def probe_export_status_head(world: World) -> list[str]:
    return _compare_job(world, "HEAD /$export-status/{job}", world.a_export_job,
                        lambda job: world.b.head(f"/$export-status/{job}"))


def probe_export_cancel(world: World) -> list[str]:
    return _compare_job(world, "DELETE /$export-status/{job}", world.a_export_job,
                        lambda job: world.b.delete(f"/$export-status/{job}"))


def _a_export_files(world: World) -> list[str]:
    manifest = world.a.get(f"/$export-status/{world.a_export_job}")
    body = manifest.json() if manifest.status_code == 200 else {}
    names = [item["url"].rsplit("/", 1)[-1] for item in [*body.get("output", []), *body.get("deleted", [])]]
    return names or ["Patient.ndjson"]


def probe_export_file(world: World, method: str = "GET") -> list[str]:
    failures: list[str] = []
    for name in _a_export_files(world):
        failures += _compare_job(world, f"{method} /$export-file/{{job}}/{name}", world.a_export_job,
                                 lambda job, n=name: world.b.request(method, f"/$export-file/{job}/{n}"))
    return failures


def _import_answers(world: World, data: bytes, dry_run: bool) -> list[httpx.Response]:
    params = {"kind": "rtf", "program": "ecm", "filename": "b.csv", **({"dryRun": "true"} if dry_run else {})}
    started = world.b.post("/$import", params=params, content=data, headers={"Content-Type": "text/csv"})
    if started.status_code != 202:
        return [started]
    status_url = started.headers["Content-Location"]
    return [started, wait_for_status(world.b, status_url), world.b.get(f"{status_url}/outcome"),
            world.b.get(f"{status_url}/rejects.csv")]


def probe_import(world: World) -> list[str]:
    """B's RTF rows about A's Member (with A's NPI, or with an unknown NPI) must be rejected exactly like rows
    about an unknown CIN, in a dry run and for real; a provider's import must complete."""
    failures: list[str] = []
    unknown_npi = _other_npi(world.npi_a)
    for dry_run in (True, False):
        mode = "dry run" if dry_run else "import"
        for kind, cin, npi in (("A's CIN and A's NPI", world.cin, world.npi_a),
                               ("A's CIN, unknown NPI", world.cin, unknown_npi),
                               ("plan-only CIN", world.plan_only_cin, world.npi_a)):
            fresh = new_cin()
            hidden = _import_answers(world, rtf_file(cin, npi), dry_run)
            absent = _import_answers(world, rtf_file(fresh, npi), dry_run)
            for step, (h, a) in enumerate(zip(hidden, absent, strict=False)):
                names = ("kickoff", "report", "outcome", "rejects.csv")[step]
                he = Exchange(f"POST /$import {mode} {names} [{kind}]", h)
                ae = Exchange(f"POST /$import {mode} {names} [unknown CIN]", a)
                failures += leak_report(he, world.secrets) + difference(he, ae, (cin,), (fresh,))
                if step == 1 and h.status_code >= 500:
                    failures.append(f"{he.label}: HTTP {h.status_code}: a provider's import does not complete")
    return failures


def _other_npi(npi: str) -> str:
    from fhir_clr.mapping.values import npi_check_digit_ok
    prefix = f"{(int(npi[:9]) + 1) % 1_000_000_000:09d}"
    return next(f"{prefix}{d}" for d in "0123456789" if npi_check_digit_ok(f"{prefix}{d}"))


def _import_job_probe(suffix: str, method: str = "GET") -> Probe:
    def probe(world: World) -> list[str]:
        return _compare_job(world, f"{method} /$import-status/{{job}}{suffix}", world.a_import_job,
                            lambda job: world.b.request(method, f"/$import-status/{job}{suffix}"))
    return probe


def probe_clr_export(world: World) -> list[str]:
    failures: list[str] = []
    for kind in ("rtf", "mif", "asf"):
        unknown = _other_npi(world.npi_a)
        program = {"asf": "cs"}.get(kind, "ecm")
        hidden = Exchange(f"GET /$clr-export kind={kind} [A's NPI]", world.b.get("/$clr-export", params={
            "kind": kind, "program": program, "provider": world.npi_a, "period": "2026-11"}))
        absent = Exchange(f"GET /$clr-export kind={kind} [unknown NPI]", world.b.get("/$clr-export", params={
            "kind": kind, "program": program, "provider": unknown, "period": "2026-11"}))
        failures += leak_report(hidden, world.secrets) + difference(hidden, absent, (world.npi_a,), (unknown,))
    return failures


def probe_worklist(world: World) -> list[str]:
    failures: list[str] = []
    for params in ({}, {"days": "60"}):
        failures += leak_only(world, f"GET /$clr-worklist {params}", world.b.get("/$clr-worklist", params=params))
    return failures


def _subscription_probe(method: str, operation: str) -> Probe:
    def probe(world: World) -> list[str]:
        return compare_ids(world, f"{method} /Subscription/{{id}}/{operation}", lambda w, t, i: w.b.request(
            method, f"/Subscription/{i}/{operation}"), types=["Subscription"])
    return probe


def probe_subscription_status_search(world: World) -> list[str]:
    return compare_ids(world, "GET /Subscription/$status?id", lambda w, t, i: w.b.get(
        "/Subscription/$status", params={"id": i}), types=["Subscription"])


# ---- routes without ids ----------------------------------------------------------------------------------

def _plain(method: str, path: str, **kwargs: Any) -> Probe:
    def probe(world: World) -> list[str]:
        failures = leak_only(world, f"{method} {path} as B", world.b.request(method, path, **kwargs))
        return failures + leak_only(world, f"{method} {path} without a token",
                                    httpx.request(method, world.server.base_url + path, **kwargs))
    return probe


# ---- console -------------------------------------------------------------------------------------------------

def _console_compare(path: str, method: str, ids: Callable[[World], list[str]]) -> Probe:
    def probe(world: World) -> list[str]:
        failures: list[str] = []
        for hidden_id in ids(world):
            fresh = never_existed_id()
            url = lambda i: "/console" + path.replace("{id}", i)  # noqa: E731
            hidden = Exchange(f"{method} /console{path} [A's id]", world.b.request(method, url(hidden_id)))
            absent = Exchange(f"{method} /console{path} [never-existed id]", world.b.request(method, url(fresh)))
            failures += leak_report(hidden, world.secrets) + difference(hidden, absent, (hidden_id,), (fresh,))
        return failures
    return probe


def _console_documents(world: World) -> list[str]:
    return [*world.a_ids["DocumentReference"], *world.deleted.get("DocumentReference", [])]


def _console_page(path: str) -> Probe:
    def probe(world: World) -> list[str]:
        failures: list[str] = []
        for params in ({}, {"fresh": "1"}, {"group": "all"}, {"provider": "Organization/cbo-a"}):
            response = world.b.get(f"/console{path}", params=params)
            failures += leak_only(world, f"GET /console{path} {params}", response)
            failures += names_a_ids(world, f"GET /console{path} {params}", response)
        return failures
    return probe


KNOWN: dict[Route, Probe] = {
    ("GET", "/AuditEvent"): _audit_search_probe("GET"),
    ("HEAD", "/AuditEvent"): _audit_search_probe("HEAD"),
    ("POST", "/AuditEvent/_search"): _audit_search_probe("POST"),
    ("GET", "/AuditEvent/{resource_id}"): _audit_probe("GET", "/AuditEvent/{id}"),
    ("HEAD", "/AuditEvent/{resource_id}"): _audit_probe("HEAD", "/AuditEvent/{id}"),
    ("GET", "/{resource_type}/{resource_id}"): probe_read,
    ("HEAD", "/{resource_type}/{resource_id}"): probe_head,
    ("GET", "/{resource_type}/{resource_id}/_history"): probe_instance_history,
    ("HEAD", "/{resource_type}/{resource_id}/_history"): probe_instance_history_head,
    ("GET", "/{resource_type}/{resource_id}/_history/{version}"): probe_vread,
    ("HEAD", "/{resource_type}/{resource_id}/_history/{version}"): probe_vread_head,
    ("PUT", "/{resource_type}/{resource_id}"): probe_update,
    ("PATCH", "/{resource_type}/{resource_id}"): probe_patch,
    ("DELETE", "/{resource_type}/{resource_id}"): probe_delete,
    ("POST", "/{resource_type}/{resource_id}/$validate"): probe_instance_validate,
    ("GET", "/{resource_type}"): probe_search,
    ("HEAD", "/{resource_type}"): probe_search_head,
    ("POST", "/{resource_type}/_search"): probe_search_post,
    ("POST", "/{resource_type}"): probe_create,
    ("PUT", "/{resource_type}"): probe_conditional_update,
    ("PATCH", "/{resource_type}"): probe_conditional_patch,
    ("DELETE", "/{resource_type}"): probe_conditional_delete,
    ("POST", "/{resource_type}/$validate"): probe_type_validate,
    ("GET", "/{resource_type}/_history"): probe_type_history,
    ("HEAD", "/{resource_type}/_history"): probe_type_history,
    ("GET", "/_history"): probe_system_history,
    ("HEAD", "/_history"): probe_system_history,
    ("POST", "/"): probe_bundle,
    ("GET", "/$export"): probe_system_export,
    ("POST", "/$export"): probe_system_export,
    ("HEAD", "/$export"): _plain("HEAD", "/$export", params={"_type": EXPORT_TYPES}),
    ("GET", "/Patient/$export"): probe_patient_export,
    ("POST", "/Patient/$export"): probe_patient_export,
    ("HEAD", "/Patient/$export"): _plain("HEAD", "/Patient/$export"),
    ("GET", "/Group/{group_id}/$export"): probe_group_export,
    ("POST", "/Group/{group_id}/$export"): probe_group_export,
    ("HEAD", "/Group/{group_id}/$export"): probe_group_export_head,
    ("GET", "/$export-status/{job_id}"): probe_export_status,
    ("HEAD", "/$export-status/{job_id}"): probe_export_status_head,
    ("DELETE", "/$export-status/{job_id}"): probe_export_cancel,
    ("GET", "/$export-file/{job_id}/{name}"): probe_export_file,
    ("HEAD", "/$export-file/{job_id}/{name}"): lambda w: probe_export_file(w, "HEAD"),
    ("POST", "/$import"): probe_import,
    ("GET", "/$import-status/{job_id}"): _import_job_probe(""),
    ("HEAD", "/$import-status/{job_id}"): _import_job_probe("", "HEAD"),
    ("DELETE", "/$import-status/{job_id}"): _import_job_probe("", "DELETE"),
    ("GET", "/$import-status/{job_id}/rejects.csv"): _import_job_probe("/rejects.csv"),
    ("HEAD", "/$import-status/{job_id}/rejects.csv"): _import_job_probe("/rejects.csv", "HEAD"),
    ("GET", "/$import-status/{job_id}/outcome"): _import_job_probe("/outcome"),
    ("HEAD", "/$import-status/{job_id}/outcome"): _import_job_probe("/outcome", "HEAD"),
    ("GET", "/$clr-export"): probe_clr_export,
    ("HEAD", "/$clr-export"): _plain("HEAD", "/$clr-export"),
    ("POST", "/$clr-print-batch"): letter_probes.probe_cut,
    ("GET", "/$clr-print-batch"): letter_probes.probe_download,
    ("HEAD", "/$clr-print-batch"): letter_probes.probe_download_head,
    ("POST", "/$clr-print-batch-mailed"): letter_probes.probe_mailed,
    ("GET", "/$clr-worklist"): probe_worklist,
    ("HEAD", "/$clr-worklist"): _plain("HEAD", "/$clr-worklist"),
    ("GET", "/Subscription/$status"): probe_subscription_status_search,
    ("HEAD", "/Subscription/$status"): _plain("HEAD", "/Subscription/$status"),
    ("GET", "/Subscription/{subscription_id}/$status"): _subscription_probe("GET", "$status"),
    ("HEAD", "/Subscription/{subscription_id}/$status"): _subscription_probe("HEAD", "$status"),
    ("GET", "/Subscription/{subscription_id}/$events"): _subscription_probe("GET", "$events"),
    ("HEAD", "/Subscription/{subscription_id}/$events"): _subscription_probe("HEAD", "$events"),
    ("POST", "/Subscription/{subscription_id}/$resend"): _subscription_probe("POST", "$resend"),
    ("GET", "/Subscription/{subscription_id}/$delivery-attempts"): _subscription_probe("GET", "$delivery-attempts"),
    ("HEAD", "/Subscription/{subscription_id}/$delivery-attempts"): _subscription_probe("HEAD", "$delivery-attempts"),
    ("GET", "/"): _plain("GET", "/"),
    ("HEAD", "/"): _plain("HEAD", "/"),
    ("GET", "/console"): _plain("GET", "/console"),
    ("HEAD", "/console"): _plain("HEAD", "/console"),
    ("GET", "/metadata"): _plain("GET", "/metadata"),
    ("GET", "/Subscription/$topic-list"): _plain("GET", "/Subscription/$topic-list"),
    ("HEAD", "/Subscription/$topic-list"): _plain("HEAD", "/Subscription/$topic-list"),
    ("HEAD", "/metadata"): _plain("HEAD", "/metadata"),
    ("GET", "/metrics"): _plain("GET", "/metrics"),
    ("HEAD", "/metrics"): _plain("HEAD", "/metrics"),
    ("GET", "/openapi.json"): _plain("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"): _plain("HEAD", "/openapi.json"),
    ("GET", "/docs"): _plain("GET", "/docs"),
    ("HEAD", "/docs"): _plain("HEAD", "/docs"),
    ("GET", "/docs/oauth2-redirect"): _plain("GET", "/docs/oauth2-redirect"),
    ("HEAD", "/docs/oauth2-redirect"): _plain("HEAD", "/docs/oauth2-redirect"),
    ("GET", "/.well-known/smart-configuration"): _plain("GET", "/.well-known/smart-configuration"),
    ("HEAD", "/.well-known/smart-configuration"): _plain("HEAD", "/.well-known/smart-configuration"),
    ("GET", "/healthz"): _plain("GET", "/healthz"),
    ("HEAD", "/healthz"): _plain("HEAD", "/healthz"),
    ("GET", "/readyz"): _plain("GET", "/readyz"),
    ("HEAD", "/readyz"): _plain("HEAD", "/readyz"),
    ("GET", "/console/login"): _plain("GET", "/console/login"),
    ("HEAD", "/console/login"): _plain("HEAD", "/console/login"),
    ("POST", "/console/login"): _plain("POST", "/console/login", data={"token": "not-a-token"}),
    ("POST", "/console/logout"): _plain("POST", "/console/logout"),
    ("GET", "/console/"): _console_page("/"),
    ("HEAD", "/console/"): _plain("HEAD", "/console/"),
    ("GET", "/console/imports"): _console_page("/imports"),
    ("HEAD", "/console/imports"): _plain("HEAD", "/console/imports"),
    ("GET", "/console/compliance"): _console_page("/compliance"),
    ("HEAD", "/console/compliance"): _plain("HEAD", "/console/compliance"),
    ("GET", "/console/subscriptions"): _console_page("/subscriptions"),
    ("HEAD", "/console/subscriptions"): _plain("HEAD", "/console/subscriptions"),
    ("GET", "/console/metrics"): _console_page("/metrics"),
    ("HEAD", "/console/metrics"): _plain("HEAD", "/console/metrics"),
    ("GET", "/console/referrals/{referral_id}"): _console_compare(
        "/referrals/{id}", "GET", lambda w: [*w.a_ids["ServiceRequest"], *w.deleted["ServiceRequest"]]),
    ("HEAD", "/console/referrals/{referral_id}"): _console_compare(
        "/referrals/{id}", "HEAD", lambda w: w.a_ids["ServiceRequest"]),
    ("GET", "/console/imports/{document_id}"): _console_compare("/imports/{id}", "GET", _console_documents),
    ("HEAD", "/console/imports/{document_id}"): _console_compare("/imports/{id}", "HEAD", _console_documents),
    ("GET", "/console/imports/{document_id}/rejected-rows.csv"): _console_compare(
        "/imports/{id}/rejected-rows.csv", "GET", _console_documents),
    ("HEAD", "/console/imports/{document_id}/rejected-rows.csv"): _console_compare(
        "/imports/{id}/rejected-rows.csv", "HEAD", _console_documents),
    ("POST", "/console/subscriptions/{subscription_id}/resend"): _console_compare(
        "/subscriptions/{id}/resend", "POST", lambda w: w.a_ids["Subscription"]),
    ("GET", "/console/notices"): _console_page("/notices"),
    ("HEAD", "/console/notices"): _plain("HEAD", "/console/notices"),
    ("POST", "/console/notices/{communication_id}/send"): _console_compare(
        "/notices/{id}/send", "POST", lambda w: [*w.a_ids["Communication"], *w.deleted.get("Communication", [])]),
}
"""How the suite attacks each route. A route missing here (and from EXEMPT) fails the suite."""

EXEMPT: dict[Route, str] = {
    ("POST", "/auth/token"): "issues B its own tokens; its abuse (rate limits, audiences, client enumeration) is "
                             "tested in tests/api/test_security_auth.py",
    ("MOUNT", "/console/static"): "static CSS/JS files shipped with the package, no data",
}
"""Routes the attacker's suite deliberately does not probe, with the reason."""

INTERACTIONS_PROBED = {"read": probe_read, "vread": probe_vread, "update": probe_update, "patch": probe_patch,
                       "delete": probe_delete, "history-instance": probe_instance_history,
                       "history-type": probe_type_history, "create": probe_create, "search-type": probe_search,
                       "transaction": probe_bundle, "batch": probe_bundle, "history-system": probe_system_history}
"""CapabilityStatement interaction codes and the probe that attacks each."""

OPERATIONS_PROBED = {"validate": probe_instance_validate, "export": probe_system_export, "import": probe_import,
                     "clr-worklist": probe_worklist, "clr-export": probe_clr_export,
                     "clr-print-batch": letter_probes.probe_cut, "clr-print-batch-mailed": letter_probes.probe_mailed,
                     "status": _subscription_probe("GET", "$status"), "events": _subscription_probe("GET", "$events"),
                     "resend": _subscription_probe("POST", "$resend"),
                     "delivery-attempts": _subscription_probe("GET", "$delivery-attempts"),
                     "topic-list": _plain("GET", "/Subscription/$topic-list")}
"""CapabilityStatement operation names and the probe that attacks each."""
