"""RTF rows to referral Task updates.

A row names its referral by Member CIN, service and servicing provider NPI (see
:mod:`fhir_clr.imports.referral_match`). The row's Referral Status, its date and the closure reason (and servicing
contact, service dates) are merged into the current Task, so the CLR workflow rules check the change exactly as
for a REST update. A row reporting a status older than the Task's that a version of the Task already recorded
changes nothing (a re-sent older row).
"""

from __future__ import annotations

from typing import Any

import orjson

from fhir_clr.clr.rules.context import REFERRAL_TASK_PROFILE
from fhir_clr.clr.workflow import TaskWorkflow
from fhir_clr.fhirmodel.clone import clone
from fhir_clr.imports.referral_match import ReferralMatcher, RowProblem
from fhir_clr.imports.row_kinds import Parsed, ReferralUpdates
from fhir_clr.store.port import HistoryFilter

HISTORY_VERSIONS = 100
"""Most versions of a referral Task looked at to find an older reported status already recorded."""


class RtfRows(ReferralUpdates):
    """RTF rows: each updates its referral Task; one referral's rows go in the order their statuses happened."""

    def __init__(self, matcher: ReferralMatcher, provider_npi: str | None) -> None:
        super().__init__(matcher, provider_npi)
        rules = matcher.engine.rules
        self.codes = matcher.engine.codes
        self.workflow = TaskWorkflow(rules, self.codes)
        self._closure_date_url = f"{rules['canonical_base']}/StructureDefinition/referral-loop-closure-date"

    def order(self, item: Parsed) -> tuple[Any, ...]:
        """When the row's status happened (see :meth:`happened`)."""
        return self.happened(item[1], item[0].number)

    def updated(self, task: dict[str, Any], fragments: dict[str, dict[str, Any]]
                ) -> tuple[dict[str, Any], dict[str, Any]] | RowProblem:
        """The referral Task and the Task as the row updates it."""
        return task, self.updated_task(task, fragments.get("Task", {}))

    async def unchanged(self, current: dict[str, Any], updated: dict[str, Any]) -> bool:
        """True for a row reporting an older status the Task already has on record."""
        return self._older(updated, current) and await self.already_reported(current, updated)

    def _older(self, updated: dict[str, Any], current: dict[str, Any]) -> bool:
        """True when ``updated`` reports a status dated before ``current``'s."""
        (_, after), (_, before) = self.status_of(updated), self.status_of(current)
        return isinstance(after, str) and isinstance(before, str) and after[:10] < before[:10]

    def updated_task(self, current: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
        """``current`` with the row's Task elements: Referral Status (canonical), its date, the status reason
        (the closure reason when closing; a reason the row does not give is kept only while the status stays),
        extensions by URL (the closure date dropped when the row does not close), and any other element the
        row carries. The Task's tags (a review flag) stay."""
        task = clone(current)
        tags = (current.get("meta") or {}).get("tag")
        task["meta"] = {"profile": [REFERRAL_TASK_PROFILE], **({"tag": clone(tags)} if tags else {})}
        statuses = self.codes["referral-status"]
        before = statuses.code_of(current.get("businessStatus"))
        for element, value in fragment.items():
            if element in ("resourceType", "extension"):
                continue
            task[element] = value
        urls = {e.get("url") for e in fragment.get("extension", ())}
        task["extension"] = [e for e in task.get("extension", ()) if e.get("url") not in urls] + list(
            fragment.get("extension", ()))
        code = statuses.code_of(task.get("businessStatus"))
        if code is not None:
            task["businessStatus"] = statuses.parse_concept(code)
        closing = code == self.workflow.closed_status
        if code != before and "statusReason" not in fragment:
            task.pop("statusReason", None)
        if not closing:
            task["extension"] = [e for e in task["extension"] if e.get("url") != self._closure_date_url]
        reason = None
        if closing:
            reason = self.codes["loop-closure-reason"].code_of(task.get("statusReason"))
            if reason is not None:
                task["statusReason"] = self.codes["loop-closure-reason"].parse_concept(reason)
        elif code != self.workflow.declined_status:
            task.pop("statusReason", None)
        if code is not None:
            task["status"] = self.workflow.task_status_for(code, reason)
        return task

    def status_of(self, task: dict[str, Any]) -> tuple[str | None, str | None]:
        """The Referral Status code of ``task`` and its Date of Referral Status Update (as written)."""
        date = next((e.get("valueDateTime") for e in task.get("extension", ()) if isinstance(e, dict) and
                     e.get("url") == self.workflow.status_date_url), None)
        return self.codes["referral-status"].code_of(task.get("businessStatus")), date

    def happened(self, fragments: dict[str, dict[str, Any]], row: int) -> tuple[str, int, int]:
        """When a row's status happened, to order the rows of one referral: its Date of Referral Status Update,
        then how far along the status is (Pending, Accepted, Outreach Initiated, then Declined, Closed), then
        the row number."""
        code, date = self.status_of(fragments.get("Task", {}))
        order = [*self.workflow.rules["workflow"]["status_order"], self.workflow.declined_status,
                 self.workflow.closed_status]
        return (str(date or "")[:10], order.index(code) if code in order else len(order), row)

    async def already_reported(self, current: dict[str, Any], updated: dict[str, Any]) -> bool:
        """True when the status ``updated`` reports is already on record for ``current``: kept as superseded,
        or a version of the Task once had it (a repeated row of an older status)."""
        code, date = self.status_of(updated)
        if code is None or date is None:
            return False
        if self.workflow.is_recorded(current, code, date):
            return True
        page = await self.matcher.engine.store.history(HistoryFilter("Task", str(current.get("id"))), HISTORY_VERSIONS)
        return any(self.status_of(orjson.loads(v.body)) == (code, date) for v in page.entries
                   if v.body is not None and not v.deleted)
