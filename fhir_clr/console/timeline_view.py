"""One referral's story for the timeline page: the CLR Referral and its authorization decision, every version of
its referral Task (status, status date, closure reason, and the file row that wrote it), and each notice
obligation against its deadline with the notice that satisfied it (when, to whom, how).

Reads only through the caller's engine: the referral, ``Task?focus=``, instance history, and the satisfying
Communications by ``_id``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from fhir_clr.clr.config import extension_of, extension_url, value_of
from fhir_clr.clr.deadlines import Deadlines, parse_moment
from fhir_clr.clr.obligations import is_obligation
from fhir_clr.clr.rules.context import reference_of
from fhir_clr.console.names import Names
from fhir_clr.engine.engine import Engine
from fhir_clr.imports.received import ROW_SOURCE
from fhir_clr.notices.composer import notice_text

MAX_TASKS = 200
MAX_VERSIONS = 200


@dataclass(slots=True)
class StatusVersion:
    """One version of a referral Task."""

    version: int
    recorded: str
    status: str
    referral_status: str
    status_date: str
    closure_reason: str
    closure_date: str
    file_id: str | None
    file_row: str | None
    provider: str = ""
    """The servicing provider the Task was with (a reassigned referral shows each provider in turn)."""
    reason: str = ""
    """The status reason: the closure reason, or the decline reason of a Declined status."""


@dataclass(slots=True)
class NoticeLine:
    """One notice obligation: what, to whom, due when, and what satisfied or cancelled it."""

    kind: str
    recipient: str
    due: str
    state: str
    timeliness: str
    done: str
    sent_to: str
    channel: str
    note: str
    content: str = ""
    """Exactly what the notice said (its recorded payload), when the server composed or someone recorded it."""
    notice_status: str = ""
    """The notice's own status (preparation, on-hold, not-done, completed)."""
    error: str = ""
    """Why its delivery failed or is being retried."""


@dataclass(slots=True)
class Timeline:
    """Everything the timeline template shows."""

    referral_id: str
    facts: list[tuple[str, str]]
    authorization: list[tuple[str, str]]
    statuses: list[StatusVersion] = field(default_factory=list)
    notices: list[NoticeLine] = field(default_factory=list)
    files: list[tuple[str, list[str]]] = field(default_factory=list)


def _display(value: Any) -> str:
    """The text of a CodeableConcept or Coding."""
    if not isinstance(value, dict):
        return str(value or "")
    if value.get("text"):
        return str(value["text"])
    coding = (value.get("coding") or [value])[0]
    return str(coding.get("display") or coding.get("code") or "")


def _file_row(version: dict[str, Any]) -> tuple[str | None, str | None]:
    """The received file and row that wrote ``version`` (its ``meta.source``), or (None, None)."""
    source = ROW_SOURCE.match(str((version.get("meta") or {}).get("source", "")))
    return (source["document"], source["row"]) if source else (None, None)


def _timeliness(obligation: dict[str, Any], deadlines: Deadlines, today: date) -> str:
    """``on time``/``late`` for a satisfied obligation, ``overdue``/``open`` for an open one, else empty."""
    due = parse_moment(((obligation.get("restriction") or {}).get("period") or {}).get("end"))
    if due is None:
        return ""
    due_day = deadlines.local_date(due)
    if obligation.get("status") == "completed":
        done = parse_moment((obligation.get("executionPeriod") or {}).get("end"))
        if done is None:
            return "on time"
        return "on time" if deadlines.local_date(done) <= due_day else "late"
    if obligation.get("status") == "requested":
        return "overdue" if due_day < today else "open"
    return ""


class TimelineBuilder:
    """Builds :class:`Timeline` for one referral id through ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rules = engine.rules
        self.codes = engine.codes
        self.deadlines = Deadlines(self.rules)
        self.names = Names(engine)

    async def build(self, referral_id: str) -> Timeline:
        """The timeline of ``ServiceRequest/referral_id`` (404 FhirError when the caller cannot see it)."""
        referral = orjson.loads((await self.engine.read("ServiceRequest", referral_id)).body or b"{}")
        found = await self.engine.search("Task", [("focus", f"ServiceRequest/{referral_id}"),
                                                  ("_count", str(MAX_TASKS)), ("_total", "none")])
        tasks = [orjson.loads(m.body) for m in found.matches if m.body is not None]
        obligations = [t for t in tasks if is_obligation(t)]
        referral_tasks = [t for t in tasks if not is_obligation(t)]
        communications = await self._communications(obligations)
        await self.names.load([reference_of(v) for v in (referral.get("subject"), referral.get("requester"),
                                                         *(referral.get("performer") or ()))]
                              + [reference_of(r) for o in obligations
                                 for r in (o.get("restriction") or {}).get("recipient", ())]
                              + [reference_of(r) for c in communications.values() for r in c.get("recipient", ())])
        timeline = Timeline(referral_id, self._facts(referral), self._authorization(referral))
        await self.names.load([reference_of(t.get("owner")) for t in referral_tasks])
        for task in referral_tasks:
            timeline.statuses += await self._versions(task["id"])
        timeline.statuses.sort(key=lambda v: v.recorded)
        today = self.deadlines.local_date(self.engine.clock())
        timeline.notices = [self._notice(o, communications, today) for o in sorted(
            obligations, key=lambda o: str(((o.get("restriction") or {}).get("period") or {}).get("end", "")))]
        rows: dict[str, list[str]] = {}
        sources = [(v.file_id, v.file_row) for v in timeline.statuses] + await self._referral_sources(referral_id)
        for file_id, row in sources:
            if file_id and row and row not in rows.setdefault(file_id, []):
                rows[file_id].append(row)
        timeline.files = sorted((file_id, sorted(found, key=int)) for file_id, found in rows.items())
        return timeline

    async def _referral_sources(self, referral_id: str) -> list[tuple[str | None, str | None]]:
        """The file rows that wrote versions of the referral itself (MIF rows, ASF decisions)."""
        history = await self.engine.history("ServiceRequest", referral_id, [("_count", str(MAX_VERSIONS))])
        return [_file_row(orjson.loads(entry.body)) for entry in history.entries if entry.body is not None]

    def _facts(self, referral: dict[str, Any]) -> list[tuple[str, str]]:
        performer = (referral.get("performer") or [None])[0]
        referral_type = _display(value_of(extension_of(referral, extension_url(self.rules, "referral-type"))))
        flags = ", ".join(t.get("display") or t.get("code", "") for t in (referral.get("meta") or {}).get("tag", ())
                          if t.get("system") == self.codes["referral-flags"].system)
        return [("Member", self.names(referral.get("subject"))), ("Service", _display(referral.get("code"))),
                ("Referral type", referral_type), ("Referred on", str(referral.get("authoredOn", ""))[:10]),
                ("Referring Entity", self.names(referral.get("requester"))), ("Provider", self.names(performer)),
                ("Referral record status", str(referral.get("status", ""))), ("Flags", flags or "none")]

    def _authorization(self, referral: dict[str, Any]) -> list[tuple[str, str]]:
        decision = extension_of(referral, extension_url(self.rules, "authorization-decision"))
        if decision is None:
            return []
        parts = {p.get("url"): value_of(p) for p in decision.get("extension", ()) if isinstance(p, dict)}
        number_system = self.rules["identifier_systems"]["authorization_number"]
        number = next((i.get("value") for i in referral.get("identifier", ()) if i.get("system") == number_system),
                      None)
        period = parts.get("period") or {}
        facts = [("Decision", _display(parts.get("status"))), ("Decided on", str(parts.get("date") or "")[:10])]
        if period:
            facts.append(("Authorized period", f"{period.get('start', '?')} to {period.get('end', '?')}"))
        if number:
            facts.append(("Authorization number", str(number)))
        return facts

    async def _versions(self, task_id: str) -> list[StatusVersion]:
        history = await self.engine.history("Task", task_id, [("_count", str(MAX_VERSIONS))])
        versions = []
        for entry in history.entries:
            if entry.body is None:
                continue
            task = orjson.loads(entry.body)
            file_id, row = _file_row(task)
            closure = value_of(extension_of(task, extension_url(self.rules, "referral-loop-closure-date")))
            reason = _display(task.get("statusReason")) if task.get("statusReason") else ""
            closed = closure is not None
            versions.append(StatusVersion(
                entry.version, entry.last_updated, str(task.get("status", "")), _display(task.get("businessStatus")),
                str(value_of(extension_of(task, extension_url(self.rules, "date-of-referral-status-update"))) or ""),
                reason if closed else "", str(closure or ""), file_id, row, self.names(task.get("owner")), reason))
        return versions

    async def _communications(self, obligations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The notices of ``obligations``, by ``Communication/id`` (the ones that satisfied them) and by the
        obligation's ``Task/id`` (the server's notice for it, sent or not yet)."""
        ids = sorted({ref.partition("/")[2] for o in obligations for out in o.get("output", ())
                      if (ref := reference_of(out.get("valueReference"))) and ref.startswith("Communication/")})
        tasks = sorted(f"Task/{o['id']}" for o in obligations if o.get("id"))
        found: dict[str, dict[str, Any]] = {}
        if ids:
            result = await self.engine.search("Communication", [("_id", ",".join(ids)), ("_count", str(len(ids)))])
            found.update((f"Communication/{m.resource_id}", orjson.loads(m.body)) for m in result.matches
                         if m.body is not None)
        if tasks:
            result = await self.engine.search("Communication", [("based-on", ",".join(tasks)),
                                                                ("_count", str(min(1000, 4 * len(tasks))))])
            for match in result.matches:
                message = orjson.loads(match.body or b"{}")
                found.setdefault(f"Communication/{match.resource_id}", message)
                for based_on in message.get("basedOn", ()):
                    if (ref := reference_of(based_on)) in tasks:
                        found.setdefault(ref, message)
        return found

    def _notice(self, obligation: dict[str, Any], communications: dict[str, dict[str, Any]],
                today: date) -> NoticeLine:
        restriction = obligation.get("restriction") or {}
        recipients = ", ".join(self.names(r) for r in restriction.get("recipient", ())) or "—"
        by = next((reference_of(o.get("valueReference")) for o in obligation.get("output", ())), None)
        message = communications.get(by or "", {}) or communications.get(f"Task/{obligation.get('id')}", {})
        channel_url = extension_url(self.rules, "notice-channel")
        channel = _display(value_of(extension_of(message, channel_url))) if message else ""
        done = (obligation.get("executionPeriod") or {}).get("end", "")
        return NoticeLine(
            _display(obligation.get("code")), recipients, str((restriction.get("period") or {}).get("end", "")),
            str(obligation.get("status", "")), _timeliness(obligation, self.deadlines, today),
            str(message.get("sent") or done or ""),
            ", ".join(self.names(r) for r in message.get("recipient", ())) if message else "",
            channel or (_display((message.get("medium") or [None])[0]) if message.get("medium") else ""),
            _display(obligation.get("statusReason")) if obligation.get("statusReason") else "",
            notice_text(message), str(message.get("status", "")),
            _display(message.get("statusReason")) if message.get("statusReason") else "")
