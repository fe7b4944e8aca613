"""The CLR referral Task workflow: reported statuses, unusual movements, who may set each status, derived fields
and refusals."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_clr.clr.workflow import CompleteServiceRequest, CreateObligation
from fhir_clr.engine.rules import Caller
from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel.validate import validate_resource
from tests.bundled import CODES, WORKFLOW

check_task_change = WORKFLOW.check_task_change

BASE = "http://fhir-clr.org/fhir"
DATE_URL = f"{BASE}/StructureDefinition/date-of-referral-status-update"
CLOSURE_URL = f"{BASE}/StructureDefinition/referral-loop-closure-date"
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # Monday 2 March 2026, 10:00 in California

PLAN = Caller("Organization/plan", "plan")
REQUESTER = Caller("Organization/clinic", "referring-entity")
OWNER = Caller("Organization/provider", "provider")
STRANGER = Caller("Organization/other", "provider")


def task(business: str | None, when: str | None = "2026-03-02", /, **extra: Any) -> dict[str, Any]:
    """A referral Task with businessStatus ``business`` (free text) dated ``when``."""
    out: dict[str, Any] = {"resourceType": "Task", "id": "t1", "intent": "order",
                           "focus": {"reference": "ServiceRequest/r1"}, "for": {"reference": "Patient/p1"},
                           "requester": {"reference": "Organization/clinic"},
                           "owner": {"reference": "Organization/provider"}, "authoredOn": "2026-02-02"}
    if business is not None:
        out["businessStatus"] = {"text": business}
    if when is not None:
        out["extension"] = [{"url": DATE_URL, "valueDateTime": when}]
    out.update(extra)
    return out


def stored(status: str, when: str) -> dict[str, Any]:
    """A Task as stored after an accepted change."""
    return check_task_change(None, task("3", when), PLAN, NOW).task if status == "3" else _walk(status, when)


def _walk(status: str, when: str) -> dict[str, Any]:
    current = check_task_change(None, task("3", "2026-02-02"), PLAN, NOW).task
    path = {"1": [("1", when)], "2": [("2", when)], "4": [("1", "2026-02-10"), ("4", when)]}[status]
    for step, day in path:
        current = check_task_change(current, task(step, day), PLAN, NOW).task
    return current


def refused(previous: dict[str, Any] | None, proposed: dict[str, Any], caller: Caller) -> FhirError:
    with pytest.raises(FhirError) as caught:
        check_task_change(previous, proposed, caller, NOW)
    return caught.value


def test_create_pending_normalizes_codes_and_derives_status() -> None:
    decision = check_task_change(None, task("3. pending"), REQUESTER, NOW)
    assert decision.task["status"] == "requested"
    assert decision.task["businessStatus"] == {"coding": [{"system": f"{BASE}/CodeSystem/referral-status",
                                                           "version": "0.1.0", "code": "3", "display": "Pending"}],
                                               "text": "Pending"}
    assert decision.status_changed and decision.effects == []


@pytest.mark.parametrize(("before", "after", "caller", "status"), [
    ("3", "1", OWNER, "accepted"), ("3", "2", OWNER, "rejected"), ("3", "1", PLAN, "accepted"),
    ("1", "4", OWNER, "in-progress"), ("4", "4", OWNER, "in-progress"),
])
def test_allowed_transitions(before: str, after: str, caller: Caller, status: str) -> None:
    previous = stored(before, "2026-02-20")
    assert check_task_change(previous, task(after, "2026-03-02"), caller, NOW).task["status"] == status


@pytest.mark.parametrize(("reason", "status"), [
    ("Services Received", "completed"), ("Unable to Reach Member", "failed"), ("Member Declined", "failed"),
    ("Member Disenrolled", "cancelled"), ("other", "cancelled"),
])
def test_closing_from_outreach(reason: str, status: str) -> None:
    decision = check_task_change(stored("4", "2026-02-20"),
                                 task("5", "2026-03-01T09:30:00-08:00", statusReason={"text": reason}), OWNER, NOW)
    assert decision.task["status"] == status
    assert decision.closure_reason is not None
    assert {"url": CLOSURE_URL, "valueDate": "2026-03-01"} in decision.task["extension"]
    assert decision.task["statusReason"]["coding"][0]["system"] == f"{BASE}/CodeSystem/loop-closure-reason"
    completes = [CompleteServiceRequest("ServiceRequest/r1")]
    assert (decision.effects == completes) is (status == "completed")


def test_closing_keeps_a_given_closure_date_and_explanation() -> None:
    proposed = task("5", "2026-03-02", statusReason={"coding": [{"code": "other"}], "text": "Moved away"})
    proposed["extension"].append({"url": CLOSURE_URL, "valueDate": "2026-02-27"})
    decision = check_task_change(stored("1", "2026-02-20"), proposed, OWNER, NOW)
    assert decision.task["statusReason"]["text"] == "Moved away"
    assert [e for e in decision.task["extension"] if e["url"] == CLOSURE_URL] == [
        {"url": CLOSURE_URL, "valueDate": "2026-02-27"}]


def test_requester_may_cancel_a_pending_referral() -> None:
    decision = check_task_change(stored("3", "2026-02-20"), task("5", statusReason={"text": "Member Deceased"}),
                                 REQUESTER, NOW)
    assert decision.task["status"] == "cancelled"


def issue(error: FhirError) -> tuple[int, str, str | None]:
    return error.status, error.issues[0].code, error.issues[0].expression


@pytest.mark.parametrize(("before", "after", "reason", "status"), [
    ("3", "4", None, "in-progress"),  # accepted and reached out within the month
    ("3", "5", "Services Received", "completed"),  # the whole loop within the month
    ("1", "2", None, "rejected"),
    ("1", "5", "Unable to Reach Member", "failed"),
])
def test_any_forward_movement_is_accepted(before: str, after: str, reason: str | None, status: str) -> None:
    proposed = task(after, statusReason={"text": reason}) if reason else task(after)
    decision = check_task_change(stored(before, "2026-02-20"), proposed, OWNER, NOW)
    assert (decision.task["status"], decision.movement, decision.superseded) == (status, None, False)
    assert "meta" not in decision.task


def test_a_new_status_may_share_the_previous_status_date() -> None:
    assert check_task_change(stored("1", "2026-02-20"), task("4", "2026-02-20"), OWNER, NOW).task["status"] == \
        "in-progress"


def _workflow(**actions: str) -> Any:
    from fhir_clr.clr.config import bundled_rules
    from fhir_clr.clr.workflow import TaskWorkflow

    rules = copy.deepcopy(bundled_rules())
    rules["workflow"]["unusual_movements"].update(actions)
    return TaskWorkflow(rules, CODES)


def _closed() -> dict[str, Any]:
    return check_task_change(stored("4", "2026-02-20"), task("5", "2026-02-25", statusReason={
        "text": "Unable to Reach Member"}), OWNER, NOW).task


@pytest.mark.parametrize(("before", "after", "movement"), [
    ("4", "1", "backward"), ("1", "3", "backward"), ("2", "1", "reopen_after_decline"),
])
def test_unusual_movements_apply_flagged_for_review_by_default(before: str, after: str, movement: str) -> None:
    decision = check_task_change(stored(before, "2026-02-20"), task(after), PLAN, NOW)
    assert decision.movement == movement and decision.status_changed
    assert [t["code"] for t in decision.task["meta"]["tag"]] == ["status-review"]


def test_reopening_a_closed_referral_is_flagged_and_drops_nothing_silently() -> None:
    reopened = check_task_change(_closed(), task("4"), OWNER, NOW)
    assert (reopened.movement, reopened.task["status"]) == ("reopen_after_closure", "in-progress")
    proposed = task("4")
    proposed["extension"].append({"url": CLOSURE_URL, "valueDate": "2026-02-25"})
    assert issue(refused(_closed(), proposed, OWNER))[2] == f"Task.extension('{CLOSURE_URL}')"


def test_an_older_status_is_kept_as_history_only_by_default() -> None:
    previous = stored("4", "2026-02-20")
    decision = check_task_change(previous, task("1", "2026-02-12"), OWNER, NOW)
    assert decision.superseded and decision.movement == "older_than_current" and not decision.status_changed
    assert decision.task["businessStatus"] == previous["businessStatus"]
    kept = [e for e in decision.task["extension"] if e["url"].endswith("/superseded-referral-status")]
    assert kept == [{"url": f"{BASE}/StructureDefinition/superseded-referral-status", "extension": [
        {"url": "status", "valueCoding": {"system": f"{BASE}/CodeSystem/referral-status", "version": "0.1.0",
                                          "code": "1", "display": "Accepted"}},
        {"url": "date", "valueDateTime": "2026-02-12"}]}]
    again = check_task_change(decision.task, task("1", "2026-02-12"), OWNER, NOW)
    assert again.task == decision.task  # reporting it again changes nothing


@pytest.mark.parametrize(("movement", "previous", "proposed", "message"), [
    ("backward", "4", task("1"), "cannot change from Outreach Initiated to Accepted"),
    ("reopen_after_decline", "2", task("1"), "cannot change from Declined to Accepted"),
    ("older_than_current", "4", task("1", "2026-02-12"), "cannot go back before the current status's date"),
])
def test_unusual_movements_can_be_configured_to_reject(movement: str, previous: str, proposed: dict[str, Any],
                                                       message: str) -> None:
    with pytest.raises(FhirError) as caught:
        _workflow(**{movement: "reject"}).check_task_change(stored(previous, "2026-02-20"), proposed, PLAN, NOW)
    assert caught.value.status == 422 and message in str(caught.value)


def test_an_unknown_movement_action_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="unusual_movements"):
        _workflow(backward="ignore")


def test_declined_carries_an_optional_decline_reason() -> None:
    coded = check_task_change(stored("3", "2026-02-20"), task("2", statusReason={
        "coding": [{"system": f"{BASE}/CodeSystem/decline-reason", "code": "capacity"}]}), OWNER, NOW).task
    assert coded["statusReason"]["coding"][0]["code"] == "capacity" and coded["status"] == "rejected"
    text = check_task_change(stored("3", "2026-02-20"), task("2", statusReason={"text": "outside the service area"}),
                             OWNER, NOW).task
    assert text["statusReason"]["coding"][0]["code"] == "service-area"
    assert "statusReason" not in check_task_change(stored("3", "2026-02-20"), task("2"), OWNER, NOW).task
    error = refused(stored("3", "2026-02-20"), task("2", statusReason={"text": "Services Received"}), OWNER)
    assert issue(error) == (422, "code-invalid", "Task.statusReason") and "Decline Reason" in str(error)


@pytest.mark.parametrize(("before", "after", "caller", "expression"), [
    ("3", "1", REQUESTER, "Task.businessStatus"),  # only the provider (or plan) accepts
    ("3", "1", STRANGER, "Task.businessStatus"),
    ("1", "4", REQUESTER, "Task.businessStatus"),
])
def test_wrong_party_is_forbidden(before: str, after: str, caller: Caller, expression: str) -> None:
    error = refused(stored(before, "2026-02-20"), task(after), caller)
    assert issue(error) == (403, "forbidden", expression)
    assert "Only the owner or the plan" in str(error)


def test_create_by_provider_is_forbidden() -> None:
    assert issue(refused(None, task("3"), OWNER)) == (403, "forbidden", "Task.businessStatus")


def test_requester_cannot_refresh_the_status() -> None:
    error = refused(stored("1", "2026-02-20"), task("1", "2026-03-02"), REQUESTER)
    assert issue(error) == (403, "forbidden", "Task.businessStatus")


@pytest.mark.parametrize(("element", "value"), [("for", {"reference": "Patient/p2"}),
                                                 ("focus", {"reference": "ServiceRequest/r2"}),
                                                 ("requester", {"reference": "Organization/provider"})])
def test_provider_cannot_change_requester_owned_elements(element: str, value: dict[str, str]) -> None:
    error = refused(stored("1", "2026-02-20"), task("4", **{element: value}), OWNER)
    assert issue(error) == (403, "forbidden", f"Task.{element}")


def test_owner_assignment_and_claim() -> None:
    previous = stored("3", "2026-02-20")
    reassigned = task("3", "2026-02-20", owner={"reference": "Organization/other"})
    assert issue(refused(previous, reassigned, OWNER)) == (403, "forbidden", "Task.owner")
    assert check_task_change(previous, reassigned, PLAN, NOW).task["owner"] == {"reference": "Organization/other"}
    unowned = copy.deepcopy(previous)
    del unowned["owner"]
    claim = task("1", owner={"reference": "Organization/other"})
    assert check_task_change(unowned, claim, STRANGER, NOW).task["status"] == "accepted"


def test_closing_requires_a_reason() -> None:
    error = refused(stored("4", "2026-02-20"), task("5"), OWNER)
    assert issue(error) == (422, "required", "Task.statusReason")


def test_closure_reason_outside_the_value_set() -> None:
    error = refused(stored("4", "2026-02-20"), task("5", statusReason={"text": "Bored"}), OWNER)
    assert issue(error) == (422, "code-invalid", "Task.statusReason")
    assert "Reason for Referral Loop Closure" in str(error)


def test_reason_only_on_closure_and_closure_date_only_when_closed() -> None:
    coded = {"coding": [{"system": f"{BASE}/CodeSystem/loop-closure-reason", "code": "other"}]}
    assert issue(refused(stored("1", "2026-02-20"), task("4", statusReason=coded), OWNER))[2] == "Task.statusReason"
    assert issue(refused(stored("3", "2026-02-20"), task("2", statusReason={"text": "Bored"}), OWNER))[2] == \
        "Task.statusReason"
    proposed = task("4")
    proposed["extension"].append({"url": CLOSURE_URL, "valueDate": "2026-03-02"})
    assert issue(refused(stored("1", "2026-02-20"), proposed, OWNER)) == (
        422, "business-rule", f"Task.extension('{CLOSURE_URL}')")


@pytest.mark.parametrize(("proposed", "code", "expression"), [
    (task(None), "required", "Task.businessStatus"),
    (task("Lost"), "code-invalid", "Task.businessStatus"),
    (task("4", None), "required", f"Task.extension('{DATE_URL}')"),
    (task("4", "yesterday"), "invalid", f"Task.extension('{DATE_URL}')"),
    (task("4", "2026-03-03"), "business-rule", f"Task.extension('{DATE_URL}')"),  # in the future
    (task("4", status="completed"), "business-rule", "Task.status"),
])
def test_unprocessable_changes(proposed: dict[str, Any], code: str, expression: str) -> None:
    error = refused(stored("1", "2026-02-20"), proposed, OWNER)
    assert issue(error) == (422, code, expression)


def test_all_problems_reported_together() -> None:
    error = refused(stored("4", "2026-02-20"), task("5", None), OWNER)
    assert [i.expression for i in error.issues] == ["Task.statusReason", f"Task.extension('{DATE_URL}')"]


def test_a_closed_task_changes_only_by_a_reported_status() -> None:
    closed = check_task_change(stored("4", "2026-02-20"), task("5", statusReason={"text": "Services Received"}),
                               OWNER, NOW).task
    edited = {**closed, "description": "edited"}
    error = refused(closed, edited, PLAN)
    assert issue(error) == (422, "business-rule", "Task.status")
    assert "closed" in str(error)


def test_entered_in_error() -> None:
    previous = stored("1", "2026-02-20")
    marked = task("1", "2026-02-20", status="entered-in-error")
    assert check_task_change(previous, marked, REQUESTER, NOW).task["status"] == "entered-in-error"
    assert issue(refused(previous, marked, OWNER)) == (403, "forbidden", "Task.status")


def test_closure_creates_the_loop_closure_notice_when_given_the_referral() -> None:
    referral = {"resourceType": "ServiceRequest", "id": "r1", "status": "active", "intent": "order",
                "subject": {"reference": "Patient/p1"}, "requester": {"reference": "Organization/clinic"},
                "code": {"coding": [{"system": f"{BASE}/CodeSystem/clr-services", "code": "ecm"}]},
                "extension": [{"url": f"{BASE}/StructureDefinition/referral-type", "valueCoding": {"code": "1"}}]}
    decision = check_task_change(stored("4", "2026-02-20"), task("5", statusReason={"text": "Services Received"}),
                                 OWNER, NOW, referral)
    obligations = [e.task for e in decision.effects if isinstance(e, CreateObligation)]
    assert [(o["code"]["coding"][0]["code"], o["restriction"]["period"]["end"]) for o in obligations] == [
        ("loop-closure-referring-entity", "2026-03-04")]
    assert obligations[0]["partOf"] == [{"reference": "Task/t1"}]


def test_inputs_untouched_and_result_is_valid_r4() -> None:
    previous = stored("4", "2026-02-20")
    proposed = task("5", statusReason={"text": "Services Received"})
    before = (copy.deepcopy(previous), copy.deepcopy(proposed))
    decision = check_task_change(previous, proposed, OWNER, NOW)
    assert (previous, proposed) == before
    validate_resource(decision.task)
