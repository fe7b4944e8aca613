"""The attacker's world: a secured live server with a plan, provider A (cbo-a) and provider B (cbo-b), each a
registered client with its own key. The plan seeds A's referral and everything around it, every resource
carrying a unique marker string; some of A's resources are then deleted by the plan. B is the attacker: the
suite asks, through every road a request can take, whether B learns anything about A's data (synthetic data
only)."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.api.helpers import FHIR_JSON
from tests.api.security_client import RegisteredClient, access_token, http_for, new_client, register
from tests.api.subscription_helpers import subscription
from tests.api.webhook_receiver import Receiver
from tests.conftest import LiveServer

CIN_SYSTEM = "http://fhir-clr.org/fhir/sid/medi-cal-cin"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
RUN = uuid.uuid4().hex[:10]
MARKER = f"MARKER-A-{RUN}"
"""Every marker of A's data starts with this; none of it may ever reach B."""

PLAN = new_client("sec-plan", "Organization/plan", "plan", ["system/*.cruds"])
CBO_A = new_client("sec-cbo-a", "Organization/cbo-a", "servicing-provider", ["system/*.cruds"])
CBO_B = new_client("sec-cbo-b", "Organization/cbo-b", "servicing-provider", ["system/*.cruds"], ec=True)
CBO_B_NARROW = new_client("sec-cbo-b-read", "Organization/cbo-b", "servicing-provider",
                          ["system/Task.rs", "system/Patient.rs", "system/ServiceRequest.rs"])
CLIENTS: tuple[RegisteredClient, ...] = (PLAN, CBO_A, CBO_B, CBO_B_NARROW)


def marker(label: str) -> str:
    """A marker string unique to this run and ``label`` (always starting with :data:`MARKER`)."""
    return f"{MARKER}-{label}"


def new_cin() -> str:
    """A random Medi-Cal CIN shape (8 digits and a letter) nobody else uses."""
    return f"{random.randint(10_000_000, 99_999_999)}{random.choice('ABCDEFGH')}"


def never_existed_id() -> str:
    """An id of the server's own shape (uuid4) that no resource ever had."""
    return str(uuid.uuid4())


@dataclass
class World:
    """The server, one HTTP client per party and the seeded facts.

    ``a_ids`` maps a resource type to A's live resource ids of that type (what B must not see); ``deleted``
    maps a type to ids of A's resources the plan deleted; ``linkable`` holds A resources reserved for the
    reference-write tests (B tries to link to them), kept out of the other probes so those tests cannot
    change what the other probes see; ``takeover`` holds more deleted ids of A, reserved for the tests that try to
    write to them."""

    server: LiveServer
    plan: httpx.Client
    a: httpx.Client
    b: httpx.Client
    b_narrow: httpx.Client
    b_token: str
    a_ids: dict[str, list[str]] = field(default_factory=dict)
    deleted: dict[str, list[str]] = field(default_factory=dict)
    linkable: dict[str, str] = field(default_factory=dict)
    takeover: dict[str, str] = field(default_factory=dict)
    cin: str = ""
    plan_only_cin: str = ""
    link_cin: str = ""
    npi_a: str = ""
    names: list[str] = field(default_factory=list)
    b_ids: dict[str, str] = field(default_factory=dict)
    a_subscription: str = ""
    a_import_job: str = ""
    a_import_document: str = ""
    a_export_job: str = ""
    receiver: Receiver | None = None
    b_subscription: str = ""

    @property
    def secrets(self) -> list[str]:
        """Strings whose presence in anything B receives is a leak: the marker prefix, A's Members' CINs and
        names."""
        return [MARKER, self.cin, self.plan_only_cin, self.link_cin, *self.names]

    def first(self, resource_type: str) -> str:
        """A's first live id of ``resource_type``."""
        return self.a_ids[resource_type][0]


def _valid_npi(prefix: str) -> str:
    from fhir_clr.mapping.values import npi_check_digit_ok
    return next(f"{prefix}{d}" for d in "0123456789" if npi_check_digit_ok(f"{prefix}{d}"))


def created(http: httpx.Client, body: dict[str, Any]) -> str:
    """POST ``body`` (201 required); the new id."""
    response = http.post(f"/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 201, f"seeding {body['resourceType']}: {response.status_code} {response.text}"
    return str(response.json()["id"])


def _member(label: str, cin: str) -> dict[str, Any]:
    family = marker(f"family-{label}")
    return {"resourceType": "Patient", "identifier": [{"system": CIN_SYSTEM, "value": cin}],
            "name": [{"family": family, "given": [marker(f"given-{label}")]}],
            "address": [{"line": [marker(f"street-{label}")], "city": "Fresno"}],
            "telecom": [{"system": "phone", "value": f"555-{label}-{RUN}"}]}


def _referral(plan: httpx.Client, label: str, cin: str) -> dict[str, str]:
    """A's Member ``label`` with a referral (ServiceRequest performer A, Task owner A) and its clinical
    resources; their ids by type."""
    ids: dict[str, str] = {}
    ids["Patient"] = created(plan, _member(label, cin))
    subject = {"reference": f"Patient/{ids['Patient']}"}
    note = lambda what: [{"text": marker(f"{what}-{label}")}]  # noqa: E731
    ids["Observation"] = created(plan, {
        "resourceType": "Observation", "status": "final", "code": {"text": marker(f"obs-code-{label}")},
        "subject": subject, "valueString": marker(f"obs-value-{label}"), "note": note("obs")})
    ids["ServiceRequest"] = created(plan, {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": subject,
        "code": {"text": "ECM"}, "requester": {"reference": "Organization/plan"},
        "performer": [{"reference": "Organization/cbo-a"}], "note": note("sr"),
        "identifier": [{"system": "urn:sec-suite", "value": marker(f"sr-id-{label}")}],
        "supportingInfo": [{"reference": f"Observation/{ids['Observation']}"}]})
    based_on = [{"reference": f"ServiceRequest/{ids['ServiceRequest']}"}]
    ids["Condition"] = created(plan, {
        "resourceType": "Condition", "subject": subject, "code": {"text": marker(f"condition-{label}")},
        "note": note("condition")})
    ids["DocumentReference"] = created(plan, {
        "resourceType": "DocumentReference", "status": "current", "subject": subject,
        "description": marker(f"docref-{label}"),
        "content": [{"attachment": {"contentType": "text/plain", "title": marker(f"attachment-{label}")}}]})
    ids["Procedure"] = created(plan, {
        "resourceType": "Procedure", "status": "completed", "subject": subject, "basedOn": based_on,
        "code": {"text": marker(f"procedure-{label}")}, "note": note("procedure")})
    ids["Communication"] = created(plan, {
        "resourceType": "Communication", "status": "completed", "subject": subject, "basedOn": based_on,
        "payload": [{"contentString": marker(f"communication-{label}")}]})
    ids["Task"] = created(plan, {
        "resourceType": "Task", "status": "requested", "intent": "order", "for": subject,
        "focus": {"reference": f"ServiceRequest/{ids['ServiceRequest']}"},
        "requester": {"reference": "Organization/plan"}, "owner": {"reference": "Organization/cbo-a"},
        "description": marker(f"task-{label}"), "note": note("task"),
        "identifier": [{"system": "urn:sec-suite", "value": marker(f"task-id-{label}")}],
        "output": [{"type": {"text": "condition"}, "valueReference": {"reference": f"Condition/{ids['Condition']}"}},
                   {"type": {"text": "document"},
                    "valueReference": {"reference": f"DocumentReference/{ids['DocumentReference']}"}}]})
    return ids


def wait_for_status(http: httpx.Client, url: str, seconds: float = 20.0) -> httpx.Response:
    """Poll an async status URL until it stops answering 202."""
    deadline = time.monotonic() + seconds
    while True:
        response = http.get(url)
        if response.status_code != 202 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def rtf_file(cin: str, npi: str) -> bytes:
    """An ECM RTF (CSV) with one row: the Member ``cin`` Accepted by the provider ``npi``."""
    import io
    from datetime import date

    from fhir_clr.mapping.writers import write_table
    from tests.bundled import find_spec

    out = io.BytesIO()
    write_table(find_spec("rtf", "ecm"), [{
        "mcp_name": "Sample Plan", "member_cin": cin, "ecm_provider_name": "provider", "ecm_provider_npi": npi,
        "referral_status": "Accepted", "referral_status_date": date(2026, 11, 10), "loop_closure_reason": None}],
        "csv", out)
    return out.getvalue()


def _a_rtf_import(world: World) -> None:
    """A imports an RTF about its own referral (the job id and the kept file's DocumentReference are A's)."""
    started = world.a.post("/$import", params={"kind": "rtf", "program": "ecm", "filename": f"{MARKER}-rtf.csv"},
                           content=rtf_file(world.cin, world.npi_a), headers={"Content-Type": "text/csv"})
    assert started.status_code == 202, started.text
    url = started.headers["Content-Location"]
    world.a_import_job = url.rsplit("/", 1)[-1]
    report = wait_for_status(world.a, url, seconds=120)
    # the probes of A's import job and kept file need them: a world without them would probe nothing
    assert report.status_code == 200, f"A's RTF import did not finish: {report.status_code} {report.text[:200]}"
    world.a_import_document = str(report.json().get("documentReference", "") or "").rsplit("/", 1)[-1]
    assert world.a_import_document, "A's RTF import kept no DocumentReference of its file"


def _a_export(world: World) -> None:
    started = world.a.get("/$export", params={"_type": "Task,Patient"}, headers={"Prefer": "respond-async"})
    assert started.status_code == 202, started.text
    url = started.headers["Content-Location"]
    world.a_export_job = url.rsplit("/", 1)[-1]
    finished = wait_for_status(world.a, url, seconds=120)
    assert finished.status_code == 200, f"A's export did not finish: {finished.status_code}"


def build_world(data_dir: Path) -> World:
    """Start the secured server and seed it (see module docstring)."""
    for client in CLIENTS:
        register(data_dir, client)
    receiver = Receiver()
    receiver.start()
    server = LiveServer(data_dir, {"FHIR_CLR_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "FHIR_CLR_RATE_LIMIT_PER_SECOND": "0",
                                   "FHIR_CLR_SUBSCRIPTION_POLL_SECONDS": "0.1",
                                   "FHIR_CLR_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
                                   "FHIR_CLR_WEBHOOK_RETRY_MAX_SECONDS": "0.25"}, dev=False)
    server.start()
    try:
        base = server.base_url
        b_token = access_token(base, CBO_B)
        world = World(server, http_for(base, access_token(base, PLAN)), http_for(base, access_token(base, CBO_A)),
                      http_for(base, b_token), http_for(base, access_token(base, CBO_B_NARROW)), b_token,
                      receiver=receiver)
        _seed(world)
    except BaseException:  # a seeding failure must not leave the server and the receiver running
        server.stop()
        receiver.stop()
        raise
    return world


def _seed(world: World) -> None:
    """The plan's, A's and B's data of the world (see module docstring)."""
    plan, receiver = world.plan, world.receiver
    assert receiver is not None
    world.npi_a = _valid_npi(f"{random.randint(100_000_000, 999_999_999)}")
    for org, extra in (("plan", {}), ("cbo-a", {"identifier": [{"system": NPI_SYSTEM, "value": world.npi_a}]}),
                       ("cbo-b", {})):
        response = plan.put(f"/Organization/{org}", json={"resourceType": "Organization", "id": org, "name": org,
                                                          **extra}, headers=FHIR_JSON)
        assert response.status_code in (200, 201), response.text
    # B's subscription first, so that it would hear of A's changes if notifications leaked
    world.b_subscription = created(world.b, subscription(receiver.url, content="full-resource"))
    world.cin, world.plan_only_cin = new_cin(), new_cin()
    world.names = [marker("family-main"), marker("family-plan-only")]
    main = _referral(plan, "main", world.cin)
    for resource_type, resource_id in main.items():
        world.a_ids.setdefault(resource_type, []).append(resource_id)
    world.link_cin = new_cin()
    world.linkable = {**{f"{t}": i for t, i in _referral(plan, "link", world.link_cin).items()},
                      "PlanOnlyPatient": created(plan, _member("plan-only", world.plan_only_cin))}
    world.a_ids["Group"] = [created(plan, {"resourceType": "Group", "type": "person", "actual": True,
                                           "name": marker("group"), "member": [{"entity": {
                                               "reference": f"Patient/{world.first('Patient')}"}}]})]
    doomed = _referral(plan, "deleted", new_cin())
    for resource_type in ("Task", "Procedure", "Communication", "Condition", "DocumentReference", "ServiceRequest",
                          "Observation", "Patient"):
        response = plan.delete(f"/{resource_type}/{doomed[resource_type]}")
        assert response.status_code in (200, 204), response.text
        world.deleted.setdefault(resource_type, []).append(doomed[resource_type])
    spare = _referral(plan, "takeover", new_cin())
    for resource_type in world.deleted:
        assert plan.delete(f"/{resource_type}/{spare[resource_type]}").status_code in (200, 204)
        world.takeover[resource_type] = spare[resource_type]
    world.a_subscription = created(world.a, subscription(f"{receiver.url}-a", reason=marker("subscription")))
    world.a_ids["Subscription"] = [world.a_subscription]
    # A works its referral: the plan's and A's updates are events B's subscription must not hear about
    task = plan.get(f"/Task/{world.first('Task')}").json()
    task["note"].append({"text": marker("task-note-2")})
    assert plan.put(f"/Task/{task['id']}", json=task, headers=FHIR_JSON).status_code == 200
    _a_rtf_import(world)
    if world.a_import_document:
        world.a_ids.setdefault("DocumentReference", []).append(world.a_import_document)
    _a_export(world)
    world.b_ids["Patient"] = created(plan, {"resourceType": "Patient", "name": [{"family": "OwnB"}]})
    own_subject = {"reference": f"Patient/{world.b_ids['Patient']}"}
    world.b_ids["ServiceRequest"] = created(plan, {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": own_subject,
        "requester": {"reference": "Organization/plan"}, "performer": [{"reference": "Organization/cbo-b"}]})
    world.b_ids["Task"] = created(plan, {
        "resourceType": "Task", "status": "requested", "intent": "order", "for": own_subject,
        "focus": {"reference": f"ServiceRequest/{world.b_ids['ServiceRequest']}"},
        "requester": {"reference": "Organization/plan"}, "owner": {"reference": "Organization/cbo-b"}})


def b_body(world: World, resource_type: str, resource_id: str | None = None) -> dict[str, Any]:
    """A small valid ``resource_type`` that B may write (B a party, its own Member as subject)."""
    subject = {"reference": f"Patient/{world.b_ids['Patient']}"}
    bodies: dict[str, dict[str, Any]] = {
        "Task": {"status": "requested", "intent": "order", "owner": {"reference": "Organization/cbo-b"},
                 "for": subject},
        "ServiceRequest": {"status": "active", "intent": "order", "subject": subject,
                           "requester": {"reference": "Organization/cbo-b"},
                           "performer": [{"reference": "Organization/cbo-b"}]},
        "Patient": {"name": [{"family": "OwnB"}]},
        "Observation": {"status": "final", "code": {"text": "b"}, "subject": subject},
        "Condition": {"subject": subject, "code": {"text": "b"}},
        "Procedure": {"status": "completed", "subject": subject},
        "Communication": {"status": "completed", "subject": subject},
        "DocumentReference": {"status": "current", "subject": subject,
                              "content": [{"attachment": {"contentType": "text/plain"}}]},
        "Group": {"type": "person", "actual": True},
        "Organization": {"name": "b"},
    }
    body = {"resourceType": resource_type, **bodies.get(resource_type, {})}
    if resource_type == "Subscription":
        body = subscription(f"{world.receiver.url}-b" if world.receiver else "https://8.8.8.8/b-hook")
    return {**body, "id": resource_id} if resource_id else body


def close_world(world: World) -> None:
    """Close the clients, stop the server and the webhook receiver."""
    for http in (world.plan, world.a, world.b, world.b_narrow):
        http.close()
    world.server.stop()
    if world.receiver is not None:
        world.receiver.stop()
