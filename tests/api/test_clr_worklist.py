"""``$clr-worklist`` over HTTP on a fixed-clock dev server: counts move as referrals are written, and every
group's search returns exactly its count."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.clr_helpers import (
    created,
    fixed_clock_client,
    member,
    organization,
    referral_body,
    referral_task_body,
)

NOW = "2026-11-25T18:00:00+00:00"  # Wednesday before Thanksgiving, 10:00 in California


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client of a dev-mode live server with the fixed clock (overrides the shared server's ``client``)."""
    yield from fixed_clock_client(Path(tmp_path_factory.mktemp("clr-worklist")), NOW)


def worklist(client: httpx.Client, **params: str) -> dict[str, dict[str, Any]]:
    response = client.get("/$clr-worklist", params=params)
    assert response.status_code == 200, response.text
    out: dict[str, dict[str, Any]] = {}
    for parameter in response.json()["parameter"]:
        if "part" in parameter:
            parts = {p["name"]: p for p in parameter["part"]}
            details = {d["part"][0]["valueCode"]: d["part"][1]["valueInteger"]
                       for d in parameter["part"] if d["name"] == "detail"}
            out[parameter["name"]] = {"count": parts["count"]["valueInteger"],
                                      "search": parts["search"]["valueString"], "detail": details}
        else:
            out[parameter["name"]] = parameter
    return out


def test_worklist_counts_follow_the_data_and_match_their_searches(client: httpx.Client) -> None:
    before = worklist(client)
    assert before["today"]["valueDate"] == "2026-11-25"
    subject, clinic, provider = member(client), organization(client, "clinic"), organization(client, "provider")
    # referred 2 October, Pending since: decision overdue, stale and long-pending
    old = created(client, referral_body(subject, clinic, authored="2026-10-02"))
    created(client, referral_task_body(old, provider, since="2026-10-02"))
    # a second open referral for the same Member and service: both flagged for coordination
    created(client, referral_body(subject, clinic, authored="2026-11-24"))
    after = worklist(client)
    assert after["overdue"]["count"] - before["overdue"]["count"] == 3  # decision, status update, follow-up
    assert after["overdue"]["detail"]["authorization-decision"] >= 1
    assert after["stale-status"]["count"] - before["stale-status"]["count"] == 1
    assert after["long-pending"]["count"] - before["long-pending"]["count"] == 1
    assert after["coordination-needed"]["count"] - before["coordination-needed"]["count"] == 2
    # the new referral's decision (Tue 24th + 5 business days = Wed 2 Dec) is not due within 2 business days
    assert after["due-soon"]["count"] == before["due-soon"]["count"]
    assert worklist(client, days="5")["due-soon"]["count"] > worklist(client)["due-soon"]["count"]
    for name in ("overdue", "due-soon", "stale-status", "long-pending", "coordination-needed", "declined",
                 "status-review"):
        listed = client.get(f"/{after[name]['search']}&_count=500").json()
        assert len(listed.get("entry", [])) == after[name]["count"], name


def test_bad_days_is_a_clear_error(client: httpx.Client) -> None:
    response = client.get("/$clr-worklist", params={"days": "soon"})
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["days"]


def test_declined_referrals_and_unusual_movements_are_listed_for_the_plan(client: httpx.Client) -> None:
    from tests.api.clr_helpers import updated, with_status

    before = worklist(client)
    clinic, provider = organization(client, "clinic"), organization(client, "provider")
    referral = created(client, referral_body(member(client), clinic, authored="2026-11-02"))
    task = created(client, referral_task_body(referral, provider))
    updated(client, with_status(task, "2", "2026-11-10", "rejected"))
    other = created(client, referral_body(member(client), clinic, authored="2026-11-02"))
    moved = updated(client, with_status(created(client, referral_task_body(other, provider)), "4", "2026-11-10",
                                        "in-progress"))
    updated(client, with_status(moved, "1", "2026-11-12", "accepted"))  # back to an earlier status
    after = worklist(client)
    assert after["declined"]["count"] - before["declined"]["count"] == 1
    assert after["status-review"]["count"] - before["status-review"]["count"] == 1
    for name in ("declined", "status-review"):
        listed = client.get(f"/{after[name]['search']}&_count=500").json()
        assert len(listed.get("entry", [])) == after[name]["count"], name
