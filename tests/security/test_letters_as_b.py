"""Control for the print-batch probes of ``letter_probes``: the batch B is refused is real, and the plan gets it."""

from __future__ import annotations

from tests.security.letter_probes import plan_batch
from tests.security.world import World


def test_the_plan_cuts_and_downloads_the_batch_the_probes_use(world: World) -> None:
    day, letter = plan_batch(world)
    again = world.plan.post("/$clr-print-batch", params={"date": day})
    assert again.status_code == 200 and {"reference": f"Communication/{letter}"} in [
        e["item"] for e in again.json()["entry"]]
    pdf = world.plan.get("/$clr-print-batch", params={"batch": day}, headers={"Accept": "application/pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
