"""Notices, inquiries and received files: the writes that satisfy or start obligations outside the referral
resources themselves.

* A ``Communication`` whose ``basedOn`` names an open obligation satisfies it once its status is ``completed``
  (completed when the notice was sent, with the Communication as its output); one still in ``preparation``, on
  hold or not done (a letter waiting for its print batch, a notice the server's worker has not delivered yet, see
  ``fhir_clr.notices``) leaves the obligation open.
* A ``Communication`` categorized as a status inquiry, ``about`` a CLR Referral, owes the inquirer (its
  ``sender``) an answer within the inquiry clock.
* A ``DocumentReference`` typed as a Return Transmission File owes its processing within the RTF clock; the
  file reaching ``docStatus`` final (processed) satisfies that obligation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir_clr.clr.deadlines import parse_moment
from fhir_clr.clr.obligations import completed, is_obligation, is_open, kind_of
from fhir_clr.clr.rules.context import ClrContext, reference_of
from fhir_clr.engine.rules import PlanningContext
from fhir_clr.store.port import Change

PROCESSED_DOC_STATUS = "final"
SENT_STATUS = "completed"
"""The Communication status of a notice that was sent (only a sent notice satisfies its obligation)."""


class MessageEvents:
    """Derives the extra changes of Communication and DocumentReference writes."""

    def __init__(self, context: ClrContext) -> None:
        self.context = context
        self._conf = context.rules["noticing"]

    # ---- Communication -----------------------------------------------------------------------------------

    async def communication(self, previous: dict[str, Any] | None, message: dict[str, Any],
                            planning: PlanningContext) -> list[Change]:
        """Obligations this Communication satisfies, and the answer an inquiry calls for."""
        now = planning.now
        reference = f"Communication/{message['id']}"
        sent = parse_moment(message.get("sent")) or now
        changes: list[Change] = []
        for based_on in message.get("basedOn", ()) if message.get("status") == SENT_STATUS else ():
            target = reference_of(based_on)
            obligation = await self.context.read(target) if target and target.startswith("Task/") else None
            if obligation is not None and is_obligation(obligation.body) and is_open(obligation.body):
                changes.append(self.context.update(obligation, completed(obligation.body, sent, reference)))
        if previous is None and self._is_inquiry(message):
            changes += await self._inquiry(message, planning)
        return changes

    def _is_inquiry(self, message: dict[str, Any]) -> bool:
        categories = self.context.code_list("message-category")
        return any(categories.code_of(c) == self._conf["inquiry_category"] for c in message.get("category", ())
                   if isinstance(c, dict))

    async def _inquiry(self, message: dict[str, Any], planning: PlanningContext) -> list[Change]:
        now = planning.now
        for about in message.get("about", ()):
            reference = reference_of(about)
            referral = await self.context.referral(reference, planning)
            if referral is None or reference is None:
                continue
            tasks = await self.context.open_referral_tasks(reference)
            task_reference = f"Task/{tasks[0].stored.resource_id}" if tasks else None
            received = parse_moment(message.get("received")) or parse_moment(message.get("sent")) or now
            moment = received if isinstance(received, datetime) else now
            inquirer = message.get("sender")
            return [self.context.create(o) for o in self.context.noticing.on_inquiry(
                referral, task_reference, moment, inquirer if isinstance(inquirer, dict) else None)]
        return []

    # ---- DocumentReference (received files) --------------------------------------------------------------

    async def document(self, previous: dict[str, Any] | None, document: dict[str, Any],
                       planning: PlanningContext) -> list[Change]:
        """The processing obligation of a received RTF, created on receipt and satisfied once processed."""
        now = planning.now
        if self.context.code_list("file-types").code_of(document.get("type")) != self._conf["rtf_file_type"]:
            return []
        reference = f"DocumentReference/{document['id']}"
        processed = document.get("docStatus") == PROCESSED_DOC_STATUS
        if previous is None:
            obligation = self.context.noticing.on_rtf_received(reference, parse_moment(document.get("date")) or now)
            return [self.context.create(completed(obligation, now, reference) if processed else obligation)]
        if not processed or previous.get("docStatus") == PROCESSED_DOC_STATUS:
            return []
        return [self.context.update(o, completed(o.body, now, reference))
                for o in await self.context.open_obligations(planning, focus=reference)
                if kind_of(o.body) == "rtf-processing"]
