"""How B attacks the Member letters print-batch operations. They are the plan's alone: whatever B sends (with the
day of a batch that exists and holds a letter to a marked Member, or not), it must get byte for byte the answer
of an operation this server does not have, learn nothing of the letters, and change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.api.clr_helpers import decided, obligation, referral_body
from tests.api.helpers import FHIR_JSON
from tests.api.letters_helpers import MAILWRIT
from tests.security.oracle import Exchange, difference, leak_report
from tests.security.world import World, created, marker

ABSENT = "$clr-no-such-operation"
"""An operation path nothing serves: what B's answers must look like."""
_seeded: dict[int, tuple[str, str]] = {}


def plan_batch(world: World) -> tuple[str, str]:
    """The day of a print batch the plan cut, holding one letter to a marked Member; the letter's id (once per
    world)."""
    if id(world) in _seeded:
        return _seeded[id(world)]
    plan = world.plan
    patient = created(plan, {"resourceType": "Patient", "name": [{"family": marker("letter-family")}],
                             "address": [{"line": [marker("letter-street")], "city": "Fresno", "state": "CA",
                                          "postalCode": "93701"}]})
    referral = plan.post("/ServiceRequest", json=referral_body(f"Patient/{patient}", "Organization/cbo-a"),
                         headers=FHIR_JSON).json()
    moment = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    referral = plan.put(f"/ServiceRequest/{referral['id']}", json=decided(referral, "approved", moment),
                        headers=FHIR_JSON).json()
    owed = obligation(plan, "authorization-decision-member", focus=f"ServiceRequest/{referral['id']}")
    letter = created(plan, {
        "resourceType": "Communication", "status": "preparation", "basedOn": [{"reference": f"Task/{owed['id']}"}],
        "about": [{"reference": f"ServiceRequest/{referral['id']}"}], "subject": {"reference": f"Patient/{patient}"},
        "recipient": [{"reference": f"Patient/{patient}"}], "medium": [MAILWRIT],
        "payload": [{"contentString": marker("letter-text")}]})
    cut = plan.post("/$clr-print-batch")
    assert cut.status_code == 201, cut.text
    day = cut.json()["identifier"][0]["value"]
    _seeded[id(world)] = (day, letter)
    return day, letter


def _alike(world: World, label: str, operation: str, send: Any) -> list[str]:
    """B's request to ``operation`` against the same request to :data:`ABSENT`, and without a token."""
    hidden = Exchange(f"{label} as B", send(world.b, operation))
    absent = Exchange(f"{label} as B [absent operation]", send(world.b, ABSENT))
    narrow = Exchange(f"{label} as B (read-only scopes)", send(world.b_narrow, operation))
    narrow_absent = Exchange(f"{label} as B (read-only scopes) [absent operation]", send(world.b_narrow, ABSENT))
    anonymous = httpx.Client(base_url=world.server.base_url, timeout=30.0)
    with anonymous:
        tokenless = Exchange(f"{label} without a token", send(anonymous, operation))
        tokenless_absent = Exchange(f"{label} without a token [absent operation]", send(anonymous, ABSENT))
    failures: list[str] = []
    for seen, expected in ((hidden, absent), (narrow, narrow_absent), (tokenless, tokenless_absent)):
        failures += leak_report(seen, world.secrets) + difference(seen, expected, (operation,), (ABSENT,))
    return failures


def _unchanged(world: World, letter: str) -> list[str]:
    status = world.plan.get(f"/Communication/{letter}").json().get("status")
    return [] if status == "preparation" else [f"B's request changed the plan's letter: status {status}"]


def probe_cut(world: World) -> list[str]:
    day, letter = plan_batch(world)
    failures = _alike(world, "POST /$clr-print-batch date", "$clr-print-batch", lambda http, op: http.post(
        f"/{op}", params={"date": day}))
    failures += _alike(world, "POST /$clr-print-batch Parameters", "$clr-print-batch", lambda http, op: http.post(
        f"/{op}", json={"resourceType": "Parameters", "parameter": [{"name": "date", "valueDate": day}]},
        headers=FHIR_JSON))
    return failures + _unchanged(world, letter)


def _download(method: str) -> Any:
    def probe(world: World) -> list[str]:
        day, _ = plan_batch(world)
        failures: list[str] = []
        for accept in ("application/pdf", "application/fhir+json", "*/*"):
            failures += _alike(world, f"{method} /$clr-print-batch batch Accept {accept}", "$clr-print-batch",
                               lambda http, op, a=accept: http.request(method, f"/{op}", params={"batch": day},
                                                                       headers={"Accept": a}))
        return failures
    return probe


probe_download = _download("GET")
probe_download_head = _download("HEAD")


def probe_mailed(world: World) -> list[str]:
    day, letter = plan_batch(world)
    failures = _alike(world, "POST /$clr-print-batch-mailed", "$clr-print-batch-mailed", lambda http, op: http.post(
        f"/{op}", params={"batch": day, "date": day}))
    return failures + _unchanged(world, letter)

