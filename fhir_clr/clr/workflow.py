"""The CLR referral Task workflow: reported Referral Statuses drive the SDOHCC referral-management Task.

``businessStatus`` (CLR Referral Status) is the master; ``Task.status`` follows it directly (and, on closure, the
Reason for Referral Loop Closure) through tables in the rules configuration. A reported status is a fact as of
its Date of Referral Status Update: any forward movement is accepted (Pending → Outreach Initiated, Pending →
Referral Loop Closed), without demanding the states in between. Unusual movements — re-opening a closed or
declined referral, going back to an earlier status, a status dated before the current one — get the action the
configuration names for them: ``review`` (apply and tag the Task for the plan's review), ``superseded`` (keep
the report as history on the Task, leave the current status) or ``reject`` (422).

:meth:`TaskWorkflow.check_task_change` checks one proposed create or update of a referral Task for a caller and
returns the normalized Task plus the side effects to apply, or raises a :class:`FhirError` whose issues name the
offending elements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhir_clr.clr.codes import CodeLists
from fhir_clr.clr.config import extension_url
from fhir_clr.clr.deadlines import Deadlines, parse_moment
from fhir_clr.clr.noticing import Noticing
from fhir_clr.engine.rules import Caller
from fhir_clr.errors import FhirError, Issue
from fhir_clr.fhirmodel.clone import clone

ROLE_PLAN = "plan"
"""Caller role of the plan's own staff and systems: may act as any party."""

TERMINAL_STATUSES = frozenset({"rejected", "cancelled", "completed", "failed", "entered-in-error"})
ENTERED_IN_ERROR = "entered-in-error"
REVIEW, SUPERSEDED, REJECT = "review", "superseded", "reject"
MOVEMENT_ACTIONS = frozenset({REVIEW, SUPERSEDED, REJECT})
SUPERSEDED_NAME = "superseded-referral-status"


@dataclass(frozen=True, slots=True)
class CompleteServiceRequest:
    """Side effect: set the referral ServiceRequest's status to completed (loop closed with services received)."""

    reference: str


@dataclass(frozen=True, slots=True)
class CreateObligation:
    """Side effect: create this CLR Notice Obligation Task."""

    task: dict[str, Any]


SideEffect = CompleteServiceRequest | CreateObligation


@dataclass(slots=True)
class TaskDecision:
    """The outcome of an accepted Task change."""

    task: dict[str, Any]
    """The proposed Task with canonical codes and derived fields filled."""
    effects: list[SideEffect] = field(default_factory=list)
    status_changed: bool = False
    """True when the CLR Referral Status changed (or the Task is new)."""
    closure_reason: str | None = None
    """The Reason for Referral Loop Closure code when this change closes the loop."""
    movement: str | None = None
    """The unusual movement this change made (``reopen_after_closure``, ``reopen_after_decline``, ``backward``,
    ``older_than_current``), None for an ordinary one."""
    superseded: bool = False
    """True when the reported status was kept as history only (the current status did not change)."""


def parties(caller: Caller, task: dict[str, Any]) -> set[str]:
    """The roles ``caller`` holds on ``task``: ``plan``, ``requester`` (Task.requester) and/or ``owner``."""
    held = {ROLE_PLAN} if caller.role == ROLE_PLAN else set()
    if caller.organization:
        if _ref(task.get("requester")) == caller.organization:
            held.add("requester")
        if _ref(task.get("owner")) == caller.organization:
            held.add("owner")
    return held


def _ref(value: Any) -> str | None:
    return value.get("reference") if isinstance(value, dict) else None


def _forbidden(message: str, expression: str) -> FhirError:
    return FhirError(403, "forbidden", message, expression=expression)


class TaskWorkflow:
    """The referral Task rules for one code-list set and rules configuration."""

    def __init__(self, rules: dict[str, Any], codes: CodeLists) -> None:
        self.rules = rules
        self.codes = codes
        self.deadlines = Deadlines(self.rules)
        self.noticing = Noticing(self.rules, self.codes)
        self._flow: dict[str, Any] = self.rules["workflow"]
        self._statuses = self.codes["referral-status"]
        self._reasons = self.codes["loop-closure-reason"]
        self._date_url = extension_url(self.rules, "date-of-referral-status-update")
        self._closure_date_url = extension_url(self.rules, "referral-loop-closure-date")
        self._superseded_url = extension_url(self.rules, SUPERSEDED_NAME)
        self._order = {code: rank for rank, code in enumerate(self._flow["status_order"])}
        self._actions: dict[str, str] = dict(self._flow["unusual_movements"])
        if not set(self._actions.values()) <= MOVEMENT_ACTIONS:
            raise ValueError(f"workflow.unusual_movements actions must be among {sorted(MOVEMENT_ACTIONS)}")
        self._decline_reasons = self.codes["decline-reason"]
        self._flags = self.codes["referral-flags"]

    # ---- public ------------------------------------------------------------------------------------------

    @property
    def status_date_url(self) -> str:
        """The URL of the Date of Referral Status Update extension."""
        return self._date_url

    @property
    def superseded_url(self) -> str:
        """The URL of the extension keeping a superseded (older) reported Referral Status."""
        return self._superseded_url

    @property
    def declined_status(self) -> str:
        """The Referral Status code of a declined referral."""
        return str(self._flow["declined_referral_status"])

    @property
    def closed_status(self) -> str:
        """The Referral Status code of a closed loop."""
        return str(self._flow["closed_referral_status"])

    def task_status_for(self, code: str, reason: str | None) -> str:
        """The Task.status a Referral Status code (and closure reason, when closed) calls for."""
        return self._task_status(code, reason)

    def closing(self, task: dict[str, Any], reason: str, when: datetime) -> dict[str, Any]:
        """A copy of ``task`` moved to Referral Loop Closed with ``reason`` (a closure reason code) dated
        ``when`` (or the Task's current status date, when that is later); Task.status left to be derived."""
        closed = clone(task)
        before = parse_moment(self._status_date(task))
        moment = when if before is None or self.deadlines.local_date(before) <= self.deadlines.local_date(when) \
            else before
        closed["businessStatus"] = {"coding": [self._statuses.coding(self.closed_status)]}
        closed["statusReason"] = {"coding": [self._reasons.coding(reason)]}
        closed.pop("status", None)
        closed["extension"] = [e for e in closed.get("extension", ()) if e.get("url") != self._date_url]
        closed["extension"].append({"url": self._date_url, "valueDateTime": moment.isoformat()})
        return closed

    def check_task_change(self, previous: dict[str, Any] | None, proposed: dict[str, Any], caller: Caller,
                          now: datetime, referral: dict[str, Any] | None = None) -> TaskDecision:
        """Check a create (``previous`` None) or update of a CLR referral Task by ``caller`` at ``now``.

        Returns the normalized Task and side effects; raises 403 (wrong party) or 422 (business rule) with one
        issue per problem and an element path each. With ``referral`` (the focus ServiceRequest) a closing
        change of a stored Task also yields the notice obligations the closure calls for.
        """
        task = clone(proposed)
        if previous is not None and task.get("status") == ENTERED_IN_ERROR:
            self._require(caller, previous, self._flow["entered_in_error_by"], "mark this referral Task as entered "
                          "in error", "Task.status")
            return TaskDecision(task)
        self._check_owned_elements(previous, task, caller)
        acting_on = task if previous is None else previous
        if previous is not None and previous.get("owner") is None and task.get("owner") is not None:
            acting_on = {**previous, "owner": task["owner"]}  # a claim (or assignment) checked just above
        previous_code = self._statuses.code_of(previous.get("businessStatus")) if previous else None
        code, reason, derived = self._normalize(task, now)
        movement = self._movement(previous, previous_code, code, task)
        if movement is None and previous is not None and previous.get("status") in TERMINAL_STATUSES:
            raise FhirError(422, "business-rule", "This referral Task is closed; its history cannot be changed",
                            expression="Task.status")
        if code != previous_code or movement is not None:
            self._check_setter(previous_code, code, caller, acting_on)
        elif self._status_date(previous) != self._status_date(task):
            self._require(caller, acting_on, self._flow["same_status_update_by"], "update the Referral Status",
                          "Task.businessStatus")
        action = self._actions.get(movement, REVIEW) if movement else None
        if action == REJECT:
            raise _unprocessable([self._movement_issue(movement or "", previous_code, code)])
        if action == SUPERSEDED:
            assert previous is not None
            return TaskDecision(self._superseding(previous, task, code), movement=movement, superseded=True)
        task["status"] = derived
        if action == REVIEW:
            task["meta"] = self._tagged(task.get("meta"))
        decision = TaskDecision(task, status_changed=code != previous_code or movement is not None,
                                movement=movement)
        if code == self._flow["closed_referral_status"]:
            self._fill_closure_date(task, now)
            decision.closure_reason = reason
            focus = _ref(task.get("focus"))
            if reason in self._flow["completes_service_request"] and focus:
                decision.effects.append(CompleteServiceRequest(focus))
            if referral is not None and task.get("id"):
                decision.effects.extend(CreateObligation(t) for t in self.noticing.on_loop_closed(
                    referral, f"Task/{task['id']}", reason, now))
        return decision

    def _movement(self, previous: dict[str, Any] | None, previous_code: str | None, code: str,
                  task: dict[str, Any]) -> str | None:
        """The unusual movement from ``previous`` to ``task`` (see :attr:`TaskDecision.movement`), or None."""
        if previous is None:
            return None
        local = self.deadlines.local_date
        before, after = parse_moment(self._status_date(previous)), parse_moment(self._status_date(task))
        if before is not None and after is not None and local(after) < local(before):
            return "older_than_current"
        if code == previous_code:
            return None
        if previous.get("status") in TERMINAL_STATUSES:
            return "reopen_after_closure" if previous_code == self.closed_status else "reopen_after_decline"
        if code in self._order and previous_code in self._order and self._order[code] < self._order[previous_code]:
            return "backward"
        return None

    def _movement_issue(self, movement: str, previous_code: str | None, code: str) -> Issue:
        before = self._statuses.concepts[previous_code].display if previous_code else "(new referral)"
        after = self._statuses.concepts[code].display
        if movement == "older_than_current":
            message = "The Date of Referral Status Update cannot go back before the current status's date"
            return Issue("business-rule", message, expression=f"Task.extension('{self._date_url}')")
        return Issue("business-rule", f"The Referral Status cannot change from {before} to {after}",
                     expression="Task.businessStatus")

    def _superseding(self, previous: dict[str, Any], task: dict[str, Any], code: str) -> dict[str, Any]:
        """``previous`` (its current status untouched) keeping the reported status of ``task`` as history."""
        kept = clone(previous)
        if isinstance(task.get("meta"), dict):
            kept["meta"] = clone(task["meta"])  # the writer's meta (its source), as for any update
        entry = {"url": self._superseded_url, "extension": [
            {"url": "status", "valueCoding": self._statuses.coding(code)},
            {"url": "date", "valueDateTime": self._status_date(task)}]}
        extensions = kept.setdefault("extension", [])
        if entry not in extensions:
            extensions.append(entry)
        return kept

    def is_recorded(self, task: dict[str, Any], code: str, status_date: Any) -> bool:
        """True when ``task`` already keeps the reported status ``code`` dated ``status_date`` as superseded."""
        entry = [{"url": "status", "valueCoding": self._statuses.coding(code)},
                 {"url": "date", "valueDateTime": status_date}]
        return any(e.get("url") == self._superseded_url and e.get("extension") == entry
                   for e in task.get("extension", ()) if isinstance(e, dict))

    def _tagged(self, meta: Any) -> dict[str, Any]:
        """``meta`` with the review flag among its tags."""
        flag = self._flags.coding(self._flow["review_flag"])
        out = clone(meta) if isinstance(meta, dict) else {}
        tags = out.setdefault("tag", [])
        if not any(t.get("system") == flag["system"] and t.get("code") == flag["code"] for t in tags):
            tags.append({"system": flag["system"], "code": flag["code"], "display": flag["display"]})
        return out

    # ---- steps -------------------------------------------------------------------------------------------

    def _normalize(self, task: dict[str, Any], now: datetime) -> tuple[str, str | None, str]:
        """Canonical codes in ``task``, checked against the status-date and closure rules; returns the Referral
        Status code, the closure reason code and the Task.status they call for. Raises 422 with every problem."""
        issues: list[Issue] = []
        code = self._normalize_business_status(task, issues)
        closed = code == self._flow["closed_referral_status"]
        reason = self._normalize_reason(task, code, issues)
        self._check_status_date(task, now, issues)
        if not closed and any(e.get("url") == self._closure_date_url for e in task.get("extension", ())):
            issues.append(Issue("business-rule", "A Referral Loop Closure Date is only recorded on a closed referral",
                                expression=f"Task.extension('{self._closure_date_url}')"))
        if issues or code is None:
            raise _unprocessable(issues)
        derived = self._task_status(code, reason)
        given = task.get("status")
        if given is not None and given != derived:
            raise _unprocessable([Issue("business-rule", f"Task.status {given} does not match the Referral Status, "
                                        f"which requires {derived}", expression="Task.status")])
        return code, reason, derived

    def _require(self, caller: Caller, task: dict[str, Any], allowed: list[str], action: str,
                 expression: str) -> None:
        if not parties(caller, task) & set(allowed):
            raise _forbidden(f"Only the {' or the '.join(allowed)} may {action}", expression)

    def _check_owned_elements(self, previous: dict[str, Any] | None, task: dict[str, Any], caller: Caller) -> None:
        """Elements only the requester (or plan) may change, and ``owner``, which only they assign (or which a
        provider may claim on an unowned Task by naming itself)."""
        if previous is None:
            return
        held = parties(caller, previous)
        for element in self._flow["requester_owned_elements"]:
            if previous.get(element) != task.get(element) and not held & {"requester", ROLE_PLAN}:
                raise _forbidden(f"Only the requester or the plan may change Task.{element}", f"Task.{element}")
        if previous.get("owner") != task.get("owner") and not held & {"requester", ROLE_PLAN}:
            claims = previous.get("owner") is None and _ref(task.get("owner")) == caller.organization
            if not claims or caller.organization is None:
                raise _forbidden("Only the requester or the plan may assign Task.owner", "Task.owner")

    def _normalize_business_status(self, task: dict[str, Any], issues: list[Issue]) -> str | None:
        value = task.get("businessStatus")
        if value is None:
            issues.append(Issue("required", "Task.businessStatus (CLR Referral Status) is required",
                                expression="Task.businessStatus"))
            return None
        try:
            task["businessStatus"] = self._statuses.parse_concept(value, "Task.businessStatus")
        except FhirError as error:
            issues.extend(error.issues)
            return None
        code: str = task["businessStatus"]["coding"][0]["code"]
        return code

    def _normalize_reason(self, task: dict[str, Any], code: str | None, issues: list[Issue]) -> str | None:
        """The reason ``task`` gives for its status: the Reason for Referral Loop Closure (required when closed)
        or the optional Decline Reason (when declined); no other status carries one."""
        value = task.get("statusReason")
        closed = code == self._flow["closed_referral_status"]
        declined = code == self.declined_status
        if not closed and not declined:
            if value is not None:
                issues.append(Issue("business-rule", "A status reason is only recorded when the Referral Status is "
                                    "Referral Loop Closed (its closure reason) or Declined (its decline reason)",
                                    expression="Task.statusReason"))
            return None
        if value is None:
            if closed:
                issues.append(Issue("required", "Closing a referral requires a Reason for Referral Loop Closure",
                                    expression="Task.statusReason"))
            return None
        codes = self._reasons if closed else self._decline_reasons
        try:
            concept = codes.parse_concept(value, "Task.statusReason")
        except FhirError as error:
            issues.extend(error.issues)
            return None
        if isinstance(value, dict) and isinstance(value.get("text"), str) and value["text"].strip():
            concept["text"] = value["text"]
        task["statusReason"] = concept
        return concept["coding"][0]["code"] if closed else None

    def _status_date(self, task: dict[str, Any] | None) -> Any:
        for ext in (task or {}).get("extension", ()):
            if isinstance(ext, dict) and ext.get("url") == self._date_url:
                return ext.get("valueDateTime")
        return None

    def _check_status_date(self, task: dict[str, Any], now: datetime, issues: list[Issue]) -> None:
        expression = f"Task.extension('{self._date_url}')"
        raw = self._status_date(task)
        if raw is None:
            issues.append(Issue("required", "Every Referral Status needs its Date of Referral Status Update",
                                expression=expression))
            return
        moment = parse_moment(raw)
        if moment is None:
            issues.append(Issue("invalid", "The Date of Referral Status Update is not a valid dateTime",
                                expression=expression))
            return
        local = self.deadlines.local_date
        if local(moment) > local(now):
            issues.append(Issue("business-rule", "The Date of Referral Status Update cannot be in the future",
                                expression=expression))

    def _task_status(self, code: str | None, reason: str | None) -> str:
        if code == self._flow["closed_referral_status"]:
            by_reason = self._flow["task_status_by_closure_reason"]
            closing: str = by_reason.get(reason, self._flow["task_status_for_other_closure_reasons"])
            return closing
        status: str = self._flow["task_status_by_referral_status"][code]
        return status

    def _check_setter(self, previous_code: str | None, code: str, caller: Caller, acting_on: dict[str, Any]) -> None:
        """A new referral starts at the initial status; each status may be set only by the parties the
        configuration names (the requester may also close a referral still in one of the listed statuses)."""
        if previous_code is None and code != str(self._flow["initial_referral_status"]):
            raise _unprocessable([Issue("business-rule", f"The Referral Status cannot change from (new referral) "
                                        f"to {self._statuses.concepts[code].display}",
                                        expression="Task.businessStatus")])
        allowed = list(self._flow["status_set_by"].get(code, [ROLE_PLAN]))
        if code == self.closed_status and previous_code in self._flow["requester_may_close_from"]:
            allowed.append("requester")
        self._require(caller, acting_on, sorted(set(allowed)), f"set the Referral Status to "
                      f"{self._statuses.concepts[code].display}", "Task.businessStatus")

    def _fill_closure_date(self, task: dict[str, Any], now: datetime) -> None:
        extensions = task.setdefault("extension", [])
        if any(e.get("url") == self._closure_date_url for e in extensions):
            return
        when = parse_moment(self._status_date(task)) or now
        extensions.append({"url": self._closure_date_url,
                           "valueDate": self.deadlines.local_date(when).isoformat()})


def _unprocessable(issues: list[Issue]) -> FhirError:
    first = issues[0]
    return FhirError(422, first.code, first.message, expression=first.expression, issues=issues)
