"""Figures B sees do not move when only A's data changes: the worklist counts (``$clr-worklist`` and the
console's worklist), the console's compliance and metrics pages are computed through B's own access policy,
so the plan adding referrals for A must leave every figure B is shown exactly as it was."""

from __future__ import annotations

import difflib
import re

import httpx

from tests.security.oracle import MARKER_FOUND, assert_clean, normalised
from tests.security.world import CIN_SYSTEM, World, created, marker, new_cin

PAGES = [("/$clr-worklist", {}), ("/console/", {"fresh": "1"}), ("/console/", {"group": "all", "fresh": "1"}),
         ("/console/compliance", {"fresh": "1"}), ("/console/metrics", {"fresh": "1"})]
CLOCK_TEXT = re.compile(r"(computed|counted|as of|updated)[^<]*", re.IGNORECASE)


def _snapshot(http: httpx.Client) -> dict[str, str]:
    seen: dict[str, str] = {}
    for path, params in PAGES:
        response = http.get(path, params=params)
        text = CLOCK_TEXT.sub("<clock>", normalised(response)[2])
        seen[f"{path} {params}"] = f"{text} [HTTP {response.status_code}]"
    return seen


def _more_referrals_for_a(world: World, count: int) -> None:
    for n in range(count):
        member = created(world.plan, {"resourceType": "Patient", "name": [{"family": marker(f"extra-{n}")}],
                                      "identifier": [{"system": CIN_SYSTEM, "value": new_cin()}]})
        subject = {"reference": f"Patient/{member}"}
        request = created(world.plan, {
            "resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": subject,
            "code": {"text": "ECM"}, "requester": {"reference": "Organization/plan"},
            "performer": [{"reference": "Organization/cbo-a"}], "authoredOn": "2026-11-02"})
        created(world.plan, {"resourceType": "Task", "status": "requested", "intent": "order", "for": subject,
                             "focus": {"reference": f"ServiceRequest/{request}"}, "authoredOn": "2026-11-02",
                             "requester": {"reference": "Organization/plan"},
                             "owner": {"reference": "Organization/cbo-a"}})


def test_b_figures_do_not_move_with_a_data(world: World) -> None:
    before = _snapshot(world.b)
    _more_referrals_for_a(world, 3)
    after = _snapshot(world.b)
    failures: list[str] = []
    for page, text in before.items():
        if after[page] != text:
            changed = [line for line in difflib.unified_diff(text.splitlines(), after[page].splitlines(), n=0,
                                                             lineterm="") if line[:1] in "+-" and line[:3] not in
                       ("+++", "---")]
            failures.append(f"GET {page}: B's figures changed when only A's data did: "
                            f"{MARKER_FOUND.sub('<MARKER>', ' | '.join(changed[:4]))[:300]}")
    assert_clean(failures)
