"""Every noticing rule, deadline and duplicate rule of clr-spec §2, §3 and §5, driven over HTTP the way a plan
system, a Referring Entity and a provider would, on a dev-mode live server whose clock is fixed at
Tuesday 24 November 2026, 10:00 in California.

Calendar facts the expected dates rest on: Wed 11 Nov 2026 is Veterans Day; Thu 26 Nov is Thanksgiving and
Fri 27 Nov the day after (a California state holiday); weekends are never business days.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.clr_helpers import (
    AUTH_URL,
    FLAGS_SYSTEM,
    created,
    decided,
    fixed_clock_client,
    member,
    obligation,
    obligations,
    organization,
    referral_body,
    referral_task_body,
    status_code,
    updated,
    with_status,
)

NOW = "2026-11-24T18:00:00+00:00"
DECISION = "2026-11-24T10:00:00-08:00"
BASE = "http://fhir-clr.org/fhir"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client of a dev-mode live server with the fixed clock (overrides the shared server's ``client``)."""
    yield from fixed_clock_client(Path(tmp_path_factory.mktemp("clr-scenarios")), NOW)


def about(referral: dict[str, Any]) -> dict[str, str]:
    return {"focus": f"ServiceRequest/{referral['id']}"}


def notice(obligation_task: dict[str, Any], sent: str, channel: str = "secure-electronic") -> dict[str, Any]:
    """A CLR Notice recording that the notice ``obligation_task`` asks for was sent."""
    return {"resourceType": "Communication", "meta": {"profile": [f"{BASE}/StructureDefinition/clr-notice"]},
            "status": "completed", "basedOn": [{"reference": f"Task/{obligation_task['id']}"}],
            "about": [obligation_task["focus"]], "sent": sent,
            "category": [{"coding": [{"system": f"{BASE}/CodeSystem/message-category", "code": "notice"}]}],
            "extension": [{"url": f"{BASE}/StructureDefinition/notice-channel",
                           "valueCoding": {"system": f"{BASE}/CodeSystem/notice-channels", "code": channel}}],
            **({"recipient": obligation_task["restriction"]["recipient"]}
               if obligation_task["restriction"].get("recipient") else {})}


# ---- §3 authorization decision clocks and §2 who gets the decision notices ---------------------------------

def test_external_referral_decision_clock_and_both_decision_notices(client: httpx.Client) -> None:
    clinic = organization(client, "clinic")
    referral = created(client, referral_body(member(client), clinic, authored="2026-11-20"))
    # Friday 20th + 5 business days skips the weekend, Thanksgiving and the day after (14 calendar days is later)
    assert obligations(client, **about(referral)) == [("authorization-decision", "requested", "2026-12-01")]

    referral = updated(client, decided(referral, "approved", DECISION))
    parts = {p["url"]: p for p in next(e for e in referral["extension"] if e["url"] == AUTH_URL)["extension"]}
    assert parts["period"]["valuePeriod"] == {"start": "2026-11-24", "end": "2027-11-23"}  # ECM: 12 months
    assert obligations(client, **about(referral)) == [
        ("authorization-decision", "completed", "2026-12-01"),
        ("authorization-decision-member", "requested", "2026-11-30"),  # 2 business days: Wed 25th, Mon 30th
        ("authorization-decision-referring-entity", "requested", "2026-11-25T10:00:00-08:00")]  # 24 hours
    to_clinic = obligation(client, "authorization-decision-referring-entity", **about(referral))
    assert to_clinic["restriction"]["recipient"] == [{"reference": clinic}]
    to_member = obligation(client, "authorization-decision-member", **about(referral))
    assert to_member["restriction"]["recipient"] == [referral["subject"]]

    sent = created(client, notice(to_clinic, "2026-11-24T15:00:00-08:00"))
    done = client.get(f"/Task/{to_clinic['id']}").json()
    assert done["status"] == "completed"
    assert done["executionPeriod"]["end"] == "2026-11-24T15:00:00-08:00"
    assert done["output"][0]["valueReference"] == {"reference": f"Communication/{sent['id']}"}


def test_expedited_referral_is_decided_within_72_hours(client: httpx.Client) -> None:
    referral = created(client, referral_body(member(client), organization(client), priority="urgent",
                                             authored="2026-11-24T09:30:00-08:00"))
    # calendar hours, holidays included
    assert obligations(client, **about(referral)) == [
        ("authorization-decision", "requested", "2026-11-27T09:30:00-08:00")]


def test_routine_decision_capped_at_fourteen_calendar_days(client: httpx.Client) -> None:
    # from Fri 13 Nov, 5 business days end Fri 20 Nov: earlier than the 14-day ceiling (27 Nov)
    referral = created(client, referral_body(member(client), organization(client), authored="2026-11-13"))
    assert obligations(client, **about(referral)) == [("authorization-decision", "requested", "2026-11-20")]


def test_self_referral_notices_only_the_member(client: httpx.Client) -> None:
    subject = member(client)
    referral = created(client, referral_body(subject, subject, referral_type="3. Self or Caretaker Referral"))
    referral = updated(client, decided(referral, "approved", DECISION))
    assert [o[0] for o in obligations(client, **about(referral), status="requested")] == [
        "authorization-decision-member"]
    task = created(client, referral_task_body(referral, organization(client, "provider")))
    task = updated(client, with_status(task, "Accepted", "2026-11-20", "accepted"))
    updated(client, with_status(task, "5", "2026-11-24", "completed", statusReason={"text": "Services Received"}))
    kinds = [o[0] for o in obligations(client, **about(referral))]
    assert "loop-closure-referring-entity" not in kinds


def test_referral_identified_by_the_mcp_owes_no_notices(client: httpx.Client) -> None:
    referral = created(client, referral_body(member(client), "Organization/plan", referral_type="2"))
    referral = updated(client, decided(referral, "approved", DECISION))
    task = created(client, referral_task_body(referral, organization(client, "provider")))
    task = updated(client, with_status(task, "1", "2026-11-20", "accepted"))
    updated(client, with_status(task, "5", "2026-11-24", "completed", statusReason={"text": "Services Received"}))
    kinds = {o[0] for o in obligations(client, **about(referral))}
    assert kinds == {"authorization-decision", "status-update", "pending-follow-up"}  # the plan still decides


def test_a_teacher_acting_professionally_is_an_external_referring_entity(client: httpx.Client) -> None:
    school = organization(client, "school")
    referral = created(client, referral_body(member(client), school, referral_type="Referred by an External Entity"))
    updated(client, decided(referral, "approved", DECISION))
    assert obligation(client, "authorization-decision-referring-entity", **about(referral))["restriction"][
        "recipient"] == [{"reference": school}]


def test_denial_closes_the_loop_without_a_separate_closure_notice(client: httpx.Client) -> None:
    clinic = organization(client, "clinic")
    referral = created(client, referral_body(member(client), clinic))
    task = created(client, referral_task_body(referral, organization(client, "provider")))
    denied = updated(client, decided(referral, "denied", DECISION, **{
        "denial-reason": {"valueCodeableConcept": {"text": "Not eligible for ECM"}}}))
    assert denied["status"] == "revoked"
    closed = client.get(f"/Task/{task['id']}").json()
    assert status_code(closed) == "5" and closed["status"] == "cancelled"
    assert closed["statusReason"]["coding"][0]["code"] == "authorization-denied"
    assert obligations(client, **about(referral), status="requested") == [
        ("authorization-decision-member", "requested", "2026-11-30"),
        ("authorization-decision-referring-entity", "requested", "2026-11-25T10:00:00-08:00")]
    clocks = [o[:2] for o in obligations(client, **{"part-of": f"Task/{task['id']}"}) if o[0] in (
        "pending-follow-up", "status-update", "loop-closure-referring-entity")]
    assert clocks == [("pending-follow-up", "cancelled"), ("status-update", "completed")]


def test_cs_provider_referring_to_its_own_service_still_gets_the_closure_notice(client: httpx.Client) -> None:
    provider = organization(client, "cs-provider")
    referral = created(client, referral_body(member(client), provider, service="Housing Deposits"))
    task = created(client, referral_task_body(referral, provider))
    task = updated(client, with_status(task, "Accepted", "2026-11-20", "accepted"))
    updated(client, with_status(task, "5", "2026-11-24", "failed", statusReason={"text": "Unable to Reach Member"}))
    closure = obligation(client, "loop-closure-referring-entity", **about(referral))
    assert closure["restriction"]["period"]["end"] == "2026-11-30"
    assert closure["restriction"]["recipient"] == [{"reference": provider}]


def test_sobering_centers_get_no_clr_timers_or_notices(client: httpx.Client) -> None:
    referral = created(client, referral_body(member(client), organization(client), service="Sobering Centers"))
    updated(client, decided(referral, "approved", DECISION))
    task = created(client, referral_task_body(referral, organization(client, "provider")))
    task = updated(client, with_status(task, "1", "2026-11-20", "accepted"))
    updated(client, with_status(task, "5", "2026-11-24", "completed", statusReason={"text": "Services Received"}))
    assert obligations(client, **about(referral)) == []


# ---- §3 status freshness, extended-open, inquiries, RTF processing -----------------------------------------

def test_status_freshness_and_long_pending_clocks_follow_each_recorded_status(client: httpx.Client) -> None:
    referral = created(client, referral_body(member(client), organization(client)))
    task = created(client, referral_task_body(referral, organization(client, "provider"), since="2026-10-31"))
    part_of = {"part-of": f"Task/{task['id']}"}
    # a month after Sat 31 Oct is the last day of November; 30 days pending from then is Mon 30 Nov
    assert obligations(client, **part_of) == [("pending-follow-up", "requested", "2026-11-30"),
                                              ("status-update", "requested", "2026-11-30")]
    task = updated(client, with_status(task, "3. Pending", "2026-11-16", "requested"))  # same status, new date
    assert obligations(client, **part_of) == [("pending-follow-up", "requested", "2026-11-30"),
                                              ("status-update", "completed", "2026-11-30"),
                                              ("status-update", "requested", "2026-12-16")]
    updated(client, with_status(task, "Accepted", "2026-11-23", "accepted"))
    assert obligations(client, **part_of) == [("pending-follow-up", "cancelled", "2026-11-30"),
                                              ("status-update", "completed", "2026-11-30"),
                                              ("status-update", "completed", "2026-12-16"),
                                              ("status-update", "requested", "2026-12-23")]


def test_a_declined_referral_stops_both_clocks(client: httpx.Client) -> None:
    referral = created(client, referral_body(member(client), organization(client)))
    task = created(client, referral_task_body(referral, organization(client, "provider"), since="2026-10-31"))
    updated(client, with_status(task, "Declined", "2026-11-16", "rejected"))
    # the Task takes no further status, so no "status update due" may start: it could never be satisfied
    assert obligations(client, **{"part-of": f"Task/{task['id']}"}) == [
        ("pending-follow-up", "cancelled", "2026-11-30"), ("status-update", "completed", "2026-11-30")]


def test_inquiry_is_answered_within_one_business_day(client: httpx.Client) -> None:
    clinic = organization(client, "clinic")
    referral = created(client, referral_body(member(client), clinic))
    task = created(client, referral_task_body(referral, organization(client, "provider")))
    inquiry = created(client, {
        "resourceType": "Communication", "status": "completed", "sender": {"reference": clinic},
        "category": [{"coding": [{"system": f"{BASE}/CodeSystem/message-category", "code": "status-inquiry"}]}],
        "about": [{"reference": f"ServiceRequest/{referral['id']}"}], "received": "2026-11-10T16:30:00-08:00",
        "payload": [{"contentString": "What is the status of this referral?"}]})
    answer = obligation(client, "inquiry-response", **about(referral))
    assert answer["restriction"]["period"]["end"] == "2026-11-12"  # Wed 11 Nov is Veterans Day
    assert answer["restriction"]["recipient"] == [{"reference": clinic}]
    assert answer["partOf"] == [{"reference": f"Task/{task['id']}"}]
    reply = notice(answer, "2026-11-12T09:00:00-08:00")
    reply["inResponseTo"] = [{"reference": f"Communication/{inquiry['id']}"}]
    created(client, reply)
    assert client.get(f"/Task/{answer['id']}").json()["status"] == "completed"


def test_rtf_processing_clock_runs_from_receipt_to_processing(client: httpx.Client) -> None:
    rtf = created(client, {
        "resourceType": "DocumentReference", "status": "current", "docStatus": "preliminary",
        "type": {"coding": [{"system": f"{BASE}/CodeSystem/file-types", "code": "rtf"}]},
        "date": "2026-11-24T09:00:00-08:00",
        "content": [{"attachment": {"contentType": "text/csv", "title": "rtf-2026-11.csv"}}]})
    focus = {"focus": f"DocumentReference/{rtf['id']}"}
    # Tue 24th + 5 business days: Wed 25th, Mon 30th, Tue 1st, Wed 2nd, Thu 3rd
    assert obligations(client, **focus) == [("rtf-processing", "requested", "2026-12-03")]
    updated(client, {**rtf, "docStatus": "final"})
    done = obligation(client, "rtf-processing", **focus)
    assert done["status"] == "completed" and done["executionPeriod"]["end"].startswith("2026-11-24")


def test_loop_closure_notice_is_due_two_business_days_after_the_closing_status_is_processed(
        client: httpx.Client) -> None:
    referral = created(client, referral_body(member(client), organization(client, "clinic")))
    task = created(client, referral_task_body(referral, organization(client, "provider")))
    task = updated(client, with_status(task, "1", "2026-11-10", "accepted"))
    task = updated(client, with_status(task, "4", "2026-11-17", "in-progress"))
    # the provider's RTF dated the closure 20 November; the plan processed it now (Tue 24th)
    updated(client, with_status(task, "5", "2026-11-20", "failed", statusReason={"text": "member declined"}))
    assert obligation(client, "loop-closure-referring-entity", **about(referral))["restriction"]["period"][
        "end"] == "2026-11-30"


# ---- §5 duplicates ------------------------------------------------------------------------------------------

def test_duplicate_of_an_authorized_referral_is_recorded_and_denied_with_the_reason(client: httpx.Client) -> None:
    subject = member(client)
    first = created(client, referral_body(subject, organization(client, "clinic")))
    first = updated(client, decided(first, "approved", "2026-11-20T10:00:00-08:00", period={
        "valuePeriod": {"start": "2026-11-20", "end": "2027-11-19"}}))
    second_clinic = organization(client, "second-clinic")
    second = created(client, referral_body(subject, second_clinic, authored="2026-11-24"))
    assert second["status"] == "revoked"
    decision = next(e for e in second["extension"] if e["url"] == AUTH_URL)
    parts = {p["url"]: p for p in decision["extension"]}
    assert parts["status"]["valueCoding"]["code"] == "denied"
    assert parts["denial-reason"]["valueCodeableConcept"]["text"] == (
        "The Member already has an active authorization for this service")
    assert {"system": FLAGS_SYSTEM, "code": "duplicate-authorized"} in [
        {k: t[k] for k in ("system", "code")} for t in second["meta"]["tag"]]
    to_second = obligation(client, "authorization-decision-referring-entity", **about(second))
    assert to_second["restriction"]["recipient"] == [{"reference": second_clinic}]
    assert [o[0] for o in obligations(client, **about(second))] == [
        "authorization-decision-member", "authorization-decision-referring-entity"]
    # a different service is no duplicate
    other = created(client, referral_body(subject, second_clinic, service="medically-tailored-meals"))
    assert other["status"] == "active" and "tag" not in other.get("meta", {})


def test_duplicate_of_an_open_referral_is_tracked_and_both_are_flagged(client: httpx.Client) -> None:
    subject = member(client)
    first = created(client, referral_body(subject, organization(client, "clinic"), service="recuperative-care"))
    second = created(client, referral_body(subject, organization(client, "cbo"),
                                           service="recuperative care (MEDICAL respite)", authored="2026-11-23"))
    flag = f"{FLAGS_SYSTEM}|coordination-needed"
    flagged = client.get("/ServiceRequest", params={"_tag": flag, "subject": subject}).json()
    assert sorted(e["resource"]["id"] for e in flagged["entry"]) == sorted([first["id"], second["id"]])
    assert second["status"] == "active"
    # both stay fully tracked: the second owes its own decision, plus the coordination (due with the decision)
    # Mon 23rd + 5 business days: Tue 24th, Wed 25th, Mon 30th, Tue 1st, Wed 2nd
    assert obligations(client, **about(second)) == [("authorization-decision", "requested", "2026-12-02"),
                                                    ("duplicate-coordination", "requested", "2026-12-02")]
    assert obligations(client, **about(first)) == [("authorization-decision", "requested", "2026-12-01")]



def test_a_notice_missing_what_its_profile_requires_is_refused_and_changes_nothing(client: httpx.Client) -> None:
    referral = created(client, referral_body(member(client), organization(client, "clinic")))
    owed = obligation(client, "authorization-decision", **about(referral))
    incomplete = notice(owed, "2026-11-24T11:00:00-08:00")
    del incomplete["extension"]
    response = client.post("/Communication", json=incomplete, headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 422
    assert [i["expression"] for i in response.json()["issue"]] == [
        [f"Communication.extension('{BASE}/StructureDefinition/notice-channel')"]]
    assert client.get(f"/Task/{owed['id']}").json()["status"] == "requested"
    fax = notice(owed, "2026-11-24T11:00:00-08:00", channel="carrier-pigeon")
    refused = client.post("/Communication", json=fax, headers={"Content-Type": "application/fhir+json"})
    assert refused.status_code == 422, refused.text


# ---- the authorization clock as written; who referred ------------------------------------------------------

CLOCK_URL = f"{BASE}/StructureDefinition/authorization-clock"


def with_clock(referral: dict[str, Any], **parts: Any) -> dict[str, Any]:
    """``referral`` with the plan's authorization clock parts (name → value[x] dict)."""
    body = {**referral, "extension": [e for e in referral["extension"] if e["url"] != CLOCK_URL]}
    body["extension"].append({"url": CLOCK_URL, "extension": [{"url": name, **value} for name, value in
                                                                parts.items()]})
    return body


def refused_put(client: httpx.Client, body: dict[str, Any]) -> int:
    """The status of a PUT of ``body`` that must change nothing (its version stays)."""
    before = client.get(f"/ServiceRequest/{body['id']}").json()["meta"]["versionId"]
    response = client.put(f"/ServiceRequest/{body['id']}", json=body,
                          headers={"Content-Type": "application/fhir+json"})
    assert client.get(f"/ServiceRequest/{body['id']}").json()["meta"]["versionId"] == before
    return response.status_code


def test_the_decision_counts_from_the_information_and_may_be_extended_once_with_a_delay_notice(
        client: httpx.Client) -> None:
    referral = created(client, referral_body(member(client), organization(client, "clinic"), authored="2026-11-13"))
    assert obligations(client, **about(referral)) == [("authorization-decision", "requested", "2026-11-20")]
    # the information reasonably necessary arrived Wed 18th: 5 business days end Wed 25th (ceiling: Fri 27th)
    informed = with_clock(referral, **{"information-received": {"valueDateTime": "2026-11-18"}})
    referral = updated(client, informed)
    assert obligations(client, **about(referral)) == [("authorization-decision", "requested", "2026-11-25")]
    missing_reason = with_clock(referral, **{"information-received": {"valueDateTime": "2026-11-18"},
                                             "extended-days": {"valuePositiveInt": 14}})
    assert refused_put(client, missing_reason) == 422
    too_long = with_clock(referral, **{"information-received": {"valueDateTime": "2026-11-18"},
                                       "extended-days": {"valuePositiveInt": 15},
                                       "extension-reason": {"valueString": "awaiting records"}})
    assert refused_put(client, too_long) == 422
    extended = with_clock(referral, **{"information-received": {"valueDateTime": "2026-11-18"},
                                       "extended-days": {"valuePositiveInt": 14},
                                       "extension-reason": {"valueString": "awaiting specialist records"}})
    referral = updated(client, extended)
    assert obligations(client, **about(referral)) == [
        ("authorization-decision", "requested", "2026-12-09"),  # 25 Nov + 14 calendar days
        ("authorization-delay-member", "requested", "2026-11-25")]  # before the original deadline passes
    assert obligation(client, "authorization-delay-member", **about(referral))["restriction"]["recipient"] == [
        referral["subject"]]
    again = with_clock(referral, **{"information-received": {"valueDateTime": "2026-11-18"},
                                    "extended-days": {"valuePositiveInt": 7},
                                    "extension-reason": {"valueString": "more records"}})
    assert refused_put(client, again) == 422  # once only


def test_a_backdated_decision_owes_notices_whose_periods_start_by_their_end(client: httpx.Client) -> None:
    referral = created(client, referral_body(member(client), organization(client, "clinic"), authored="2026-09-28"))
    referral = updated(client, decided(referral, "approved", "2026-10-01T10:00:00-07:00"))
    found = client.get("/Task", params={"focus": f"ServiceRequest/{referral['id']}", "status": "requested"}).json()
    periods = [e["resource"]["restriction"]["period"] for e in found["entry"]]
    assert periods and all(p["start"][:10] <= p["end"][:10] for p in periods), periods


def test_who_referred_decides_a_self_referral_and_a_contradiction_is_flagged(client: httpx.Client) -> None:
    subject = member(client)
    mother = created(client, {"resourceType": "RelatedPerson", "patient": {"reference": subject}})
    referral = created(client, referral_body(subject, f"RelatedPerson/{mother['id']}", referral_type="1"))
    assert [t["code"] for t in referral["meta"]["tag"] if t["system"] == FLAGS_SYSTEM] == ["referral-type-mismatch"]
    referral = updated(client, decided(referral, "approved", DECISION))
    assert [o[0] for o in obligations(client, **about(referral), status="requested")] == [
        "authorization-decision-member"]  # a self-referral: only the Member is noticed
    teacher = f"Practitioner/{created(client, {'resourceType': 'Practitioner', 'name': [{'family': 'Teacher'}]})['id']}"
    claimed = created(client, referral_body(member(client), teacher, referral_type="3"))
    assert [t["code"] for t in claimed["meta"]["tag"] if t["system"] == FLAGS_SYSTEM] == ["referral-type-mismatch"]
    claimed = updated(client, decided(claimed, "approved", DECISION))
    assert obligation(client, "authorization-decision-referring-entity", **about(claimed))["restriction"][
        "recipient"] == [{"reference": teacher}]  # a teacher acting professionally is not a self-referral
