"""What happens to a synthetic population after its files are loaded, so every console figure has data: the plan
reassigns declined referrals to another provider, Referring Entities send status inquiries, referrals arrive
twice (for a Member already authorized, and for one whose first referral is still open), and the plan records
notices — some on time, some late. Everything goes through the engine, as a plan's systems would write it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import orjson

from fhir_clr.app import Services
from fhir_clr.clr.config import CANONICAL_BASE, profile_url
from fhir_clr.clr.deadlines import parse_moment
from fhir_clr.clr.obligations import is_obligation, kind_of

BASE = CANONICAL_BASE
REFERRAL_PROFILE = profile_url("clr-referral")
TASK_PROFILE = profile_url("clr-referral-task")
DATE_URL = profile_url("date-of-referral-status-update")
INQUIRIES = 3
"""Status inquiries sent per population (each answered: alternately on time and late)."""


def _bodies(found: Any) -> list[dict[str, Any]]:
    return [orjson.loads(m.body) for m in found if m.body is not None]


async def _search(services: Services, resource_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    result = await services.engine.search(resource_type, [*params, ("_count", "500")])
    return _bodies(result.matches)


def _at_noon(day: date) -> str:
    return datetime.combine(day, time(12, 0)).astimezone().isoformat()


async def reassign_declined(services: Services, providers: dict[str, list[str]]) -> int:
    """Each declined referral goes to another provider of its program: a new Pending referral Task (the loop
    stays open); how many were reassigned."""
    declined = await _search(services, "Task", [("_profile", TASK_PROFILE), ("referral-status", "2")])
    count = 0
    for task in declined:
        owner = str((task.get("owner") or {}).get("reference", ""))
        choices = next((p for p in providers.values() if owner in p), [])
        others = [p for p in choices if p != owner]
        if not others:
            continue
        day = (parse_moment(next((e["valueDateTime"] for e in task.get("extension", ()) if e["url"] == DATE_URL),
                                 None)) or date.today())
        since = (day if isinstance(day, date) and not isinstance(day, datetime) else day.date()) + timedelta(days=2)
        await services.engine.create("Task", {
            "resourceType": "Task", "meta": {"profile": [TASK_PROFILE]}, "status": "requested", "intent": "order",
            "businessStatus": {"text": "3"}, "focus": task["focus"], "for": task["for"],
            "requester": task["requester"], "owner": {"reference": others[0]}, "authoredOn": since.isoformat(),
            "extension": [{"url": DATE_URL, "valueDateTime": since.isoformat()}]})
        count += 1
    return count


async def send_inquiries(services: Services, as_of: date) -> int:
    """A few Referring Entities ask for a referral's status; how many inquiries were sent."""
    referrals = await _search(services, "ServiceRequest", [("_profile", REFERRAL_PROFILE), ("status", "active")])
    sent = 0
    for referral in referrals[:INQUIRIES]:
        received = as_of - timedelta(days=6 + 2 * sent)
        await services.engine.create("Communication", {
            "resourceType": "Communication", "status": "completed", "sender": referral["requester"],
            "category": [{"coding": [{"system": f"{BASE}/CodeSystem/message-category", "code": "status-inquiry"}]}],
            "about": [{"reference": f"ServiceRequest/{referral['id']}"}], "received": _at_noon(received),
            "payload": [{"contentString": "What is the status of this referral?"}]})
        sent += 1
    return sent


async def record_notices(services: Services, as_of: date) -> dict[str, int]:
    """The plan records the notices it sent for open notice obligations due before ``as_of``: alternately on
    time (the day before the deadline) and late (two days after it); counts of each."""
    owed = await _search(services, "Task", [("status", "requested"), ("code", ",".join((
        "authorization-decision-member", "authorization-decision-referring-entity", "inquiry-response",
        "loop-closure-referring-entity")))])
    counts = {"on time": 0, "late": 0}
    for index, obligation in enumerate(o for o in owed if is_obligation(o)):
        due = parse_moment(obligation["restriction"]["period"]["end"])
        if due is None:
            continue
        due_day = due.date() if isinstance(due, datetime) else due
        late = index % 2 == 1
        day = due_day + timedelta(days=2) if late else due_day - timedelta(days=1)
        start = parse_moment(obligation["restriction"]["period"].get("start"))
        start_day = start.date() if isinstance(start, datetime) else start
        if day >= as_of or (start_day is not None and day < start_day):
            continue
        await services.engine.create("Communication", _notice(obligation, _at_noon(day)))
        counts["late" if late else "on time"] += 1
    return counts


def _notice(obligation: dict[str, Any], sent: str) -> dict[str, Any]:
    """A CLR Notice recording that the notice ``obligation`` asks for was sent at ``sent``."""
    notice: dict[str, Any] = {
        "resourceType": "Communication", "meta": {"profile": [f"{BASE}/StructureDefinition/clr-notice"]},
        "status": "completed", "basedOn": [{"reference": f"Task/{obligation['id']}"}],
        "about": [obligation["focus"]], "sent": sent,
        "category": [{"coding": [{"system": f"{BASE}/CodeSystem/message-category", "code": "notice"}]}],
        "extension": [{"url": f"{BASE}/StructureDefinition/notice-channel",
                       "valueCoding": {"system": f"{BASE}/CodeSystem/notice-channels",
                                       "code": "secure-electronic"}}]}
    if obligation["restriction"].get("recipient"):
        notice["recipient"] = obligation["restriction"]["recipient"]
    if kind_of(obligation) == "inquiry-response":
        notice["payload"] = [{"contentString": "The referral is being worked on; we will write again."}]
    return notice
