"""Control for the print-batch probes of ``letter_probes``: the batch B is refused is real, and the plan gets it."""

from __future__ import annotations

import time

from tests.security.letter_probes import plan_batch
from tests.security.world import World


def test_the_plan_cuts_and_downloads_the_batch_the_probes_use(world: World) -> None:
    day, letter = plan_batch(world)
    again = world.plan.post("/$clr-print-batch", params={"date": day})
    assert again.status_code == 200 and {"reference": f"Communication/{letter}"} in [
        e["item"] for e in again.json()["entry"]]
    pdf = world.plan.get("/$clr-print-batch", params={"batch": day}, headers={"Accept": "application/pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_print_batch_operations_are_in_the_audit_trail(world: World) -> None:
    """Who cut, downloaded or marked a batch (PHI) is recorded, with the operation's name and parameter names."""
    day, _ = plan_batch(world)
    world.plan.get("/$clr-print-batch", params={"batch": day}, headers={"Accept": "application/pdf"})
    deadline = time.monotonic() + 10
    while True:
        found = world.plan.get("/AuditEvent", params={"altid": "sec-plan", "_count": 1000}).json()
        details = [d for e in found.get("entry", []) for entity in e["resource"].get("entity", [])
                   for d in [entity.get("detail", [])]]
        if [{"type": "operation", "valueString": "$clr-print-batch"},
                {"type": "parameter-names", "valueString": "batch"}] in details or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert [{"type": "operation", "valueString": "$clr-print-batch"},
            {"type": "parameter-names", "valueString": "batch"}] in details
    assert day not in str(details)  # parameter names only, never values
