"""Daily print batches of Member letters, kept as FHIR data written through the engine.

* **Cut** (``cut``): the letters waiting to be printed — CLR Notice Communications in ``preparation`` whose
  medium is ``MAILWRIT`` and that no earlier batch holds — join the batch of the day, a ``List`` identified
  ``PRINT_BATCH_SYSTEM|{day}`` (created race-free with a conditional create). A day has one batch: cutting it
  again answers the same List, and letters queued after the cut wait for the next day's batch. Letters to a
  Member who opted out of written communication, with no mailing address or no recorded decision, or whose
  obligation was satisfied another way (a phone call recorded), are left out (the worklist's
  ``written-opt-out`` group lists the opted-out Members' open obligations): a Member gets one notice.
* **Print file** (``print_file``): the batch as one PDF, each letter followed by its enclosures; made from the
  stored data of each download (nothing is written beside it), so a second download gives the same letters, and
  the same bytes without rendering again while none of their data changed (the renderer keeps the last files
  in memory, keyed by everything they print).
* **Mailed** (``mark_mailed``): each letter the print file holds that is still in preparation becomes
  ``completed`` with ``sent`` = the mailing day, which completes the Member's notice obligation (a sent CLR Notice
  ``basedOn`` it, see ``fhir_clr.clr.rules.messages``). Letters already sent keep their date, so marking twice
  changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from fhir_clr.clr.member_letters import (
    LETTER_MEDIUM,
    PRINT_BATCH_SYSTEM,
    SENT_STATUS,
    WAITING_STATUS,
    opted_out_of_letters,
)
from fhir_clr.clr.obligations import is_open
from fhir_clr.engine.engine import Engine
from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel.clone import clone
from fhir_clr.letters.fields import LetterFacts, postal_address
from fhir_clr.letters.folder import LettersFolder
from fhir_clr.letters.render import Letter, LetterRenderer

REFERENCES_PER_QUERY = 200
PAGE_SIZE = 1000
SKIP_OPTED_OUT = "opted out of written communication"
SKIP_NO_ADDRESS = "no mailing address"
SKIP_NO_DECISION = "no authorization decision recorded on the referral"
SKIP_NO_MEMBER = "no Member (Patient recipient) found"
SKIP_OBLIGATION_CLOSED = "its notice obligation was already satisfied or cancelled: set the letter to stopped"
EMPTY_REASON = {"system": "http://terminology.hl7.org/CodeSystem/list-empty-reason", "code": "nilknown",
                "display": "Nil Known"}


@dataclass(slots=True)
class CutResult:
    """A cut batch: the List (stored, unless nothing waited: then an empty List with ``emptyReason``), whether
    this call created it, and the letters left out with why (Communication references only: no PHI)."""

    batch: dict[str, Any]
    created: bool
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class MailedResult:
    """What marking a batch mailed did."""

    marked: int = 0
    already_sent: int = 0
    not_in_preparation: int = 0
    """Letters deleted, stopped or entered in error since the cut (left as they are)."""
    not_printed: int = 0
    """Letters the print file leaves out since the cut (the Member opted out, lost their address…): still waiting."""


@dataclass(slots=True)
class _Sources:
    """The FHIR resources one letter is made of."""

    communication: dict[str, Any]
    patient: dict[str, Any] | None
    referral: dict[str, Any] | None
    obligations_closed: bool = False
    """True when every obligation the letter is ``basedOn`` was satisfied or cancelled another way."""


def batch_identifier(day: date) -> str:
    """The search token of the batch of ``day``."""
    return f"{PRINT_BATCH_SYSTEM}|{day.isoformat()}"


def _chunks(values: list[str], size: int = REFERENCES_PER_QUERY) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _reference(value: Any) -> str | None:
    reference = value.get("reference") if isinstance(value, dict) else None
    return reference if isinstance(reference, str) and reference.count("/") == 1 else None


class PrintBatches:
    """Cuts, prints and marks the print batches of one engine (the plan's, or the CLI's)."""

    def __init__(self, engine: Engine, facts: LetterFacts, renderer: LetterRenderer) -> None:
        self.engine = engine
        self.facts = facts
        self.renderer = renderer

    def for_engine(self, engine: Engine) -> PrintBatches:
        """The same batches acting through ``engine`` (a caller's view)."""
        return PrintBatches(engine, self.facts, self.renderer)

    def today(self) -> date:
        """The plan-local date of the engine's clock."""
        return self.facts.deadlines.local_date(self.engine.clock())

    # ---- reading -----------------------------------------------------------------------------------------

    async def find(self, day: date) -> dict[str, Any] | None:
        """The batch of ``day``, None when it was never cut."""
        found = await self.engine.search("List", [("identifier", batch_identifier(day)), ("_count", "1")])
        return orjson.loads(found.matches[0].body) if found.matches and found.matches[0].body else None

    async def require(self, day: date) -> dict[str, Any]:
        """The batch of ``day``; 404 when it was never cut."""
        batch = await self.find(day)
        if batch is None:
            raise FhirError(404, "not-found", f"No print batch was cut for {day.isoformat()}", expression="batch")
        return batch

    async def _search(self, resource_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Every match of a search, all pages, as JSON."""
        pages = self.engine.iter_pages(resource_type, [*params, ("_count", str(PAGE_SIZE)), ("_total", "none")])
        return [orjson.loads(r.body) async for page in pages for r in page.matches if r.body is not None]

    async def _by_reference(self, resource_type: str, references: list[str]) -> dict[str, dict[str, Any]]:
        ids = sorted({r.split("/", 1)[1] for r in references if r.startswith(f"{resource_type}/")})
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(ids):
            for resource in await self._search(resource_type, [("_id", ",".join(chunk))]):
                found[f"{resource_type}/{resource['id']}"] = resource
        return found

    async def _sources(self, communications: list[dict[str, Any]]) -> list[_Sources]:
        """Each letter with its Member and its referral (through the obligation's ``focus``, else ``about``)."""
        members = {c["id"]: next((r for r in map(_reference, c.get("recipient", ())) if r and r.startswith(
            "Patient/")), None) for c in communications}
        obligations = await self._by_reference("Task", [r for c in communications for r in map(
            _reference, c.get("basedOn", ())) if r])
        referral_of: dict[str, str | None] = {}
        closed: set[str] = set()
        for communication in communications:
            owed = [obligations[r] for r in map(_reference, communication.get("basedOn", ())) if r in obligations]
            if owed and not any(is_open(o) for o in owed):
                closed.add(communication["id"])
            focus = [_reference(o.get("focus")) for o in owed]
            about = [_reference(a) for a in communication.get("about", ())]
            referral_of[communication["id"]] = next((r for r in (*focus, *about) if r and r.startswith(
                "ServiceRequest/")), None)
        patients = await self._by_reference("Patient", [r for r in members.values() if r])
        referrals = await self._by_reference("ServiceRequest", [r for r in referral_of.values() if r])
        return [_Sources(c, patients.get(members[c["id"]] or ""), referrals.get(referral_of[c["id"]] or ""),
                         c["id"] in closed) for c in communications]

    def _skip_reason(self, sources: _Sources) -> str | None:
        if sources.obligations_closed:
            return SKIP_OBLIGATION_CLOSED
        if sources.patient is None:
            return SKIP_NO_MEMBER
        if opted_out_of_letters(sources.patient):
            return SKIP_OPTED_OUT
        if not postal_address(sources.patient):
            return SKIP_NO_ADDRESS
        if sources.referral is None or self.facts.decision(sources.referral) is None:
            return SKIP_NO_DECISION
        return None

    # ---- cutting -----------------------------------------------------------------------------------------

    async def waiting(self) -> list[dict[str, Any]]:
        """The letters waiting to be printed that no batch holds yet, oldest first."""
        letters = await self._search("Communication", [("status", WAITING_STATUS),
                                                                  ("medium", LETTER_MEDIUM), ("_sort", "_lastUpdated")])
        batched: set[str] = set()
        references = [f"Communication/{c['id']}" for c in letters]
        for chunk in _chunks(references):
            for batch in await self._search("List", [("identifier", f"{PRINT_BATCH_SYSTEM}|"),
                                                                ("item", ",".join(chunk))]):
                batched.update(r for r in (_reference(e.get("item")) for e in batch.get("entry", ())) if r)
        return [c for c in letters if f"Communication/{c['id']}" not in batched]

    async def cut(self, day: date) -> CutResult:
        """The batch of ``day`` (not in the future): the existing one, or a new one of the letters waiting now."""
        if day > self.today():
            raise FhirError(400, "value", "A print batch cannot be cut for a day in the future", expression="date")
        existing = await self.find(day)
        if existing is not None:
            return CutResult(existing, created=False)
        included: list[_Sources] = []
        skipped: list[tuple[str, str]] = []
        for sources in await self._sources(await self.waiting()):
            reason = self._skip_reason(sources)
            if reason is None:
                included.append(sources)
            else:
                skipped.append((f"Communication/{sources.communication['id']}", reason))
        body = self._batch_body(day, included, skipped)
        if not included:
            return CutResult(body, created=False, skipped=skipped)
        result = await self.engine.create("List", body, if_none_exist=f"identifier={batch_identifier(day)}")
        assert result.stored is not None and result.stored.body is not None
        return CutResult(orjson.loads(result.stored.body), created=result.status == 201, skipped=skipped)

    def _batch_body(self, day: date, included: list[_Sources], skipped: list[tuple[str, str]]) -> dict[str, Any]:
        """The List of a batch (sorted by ZIP code for the mail room), noting the letters left out and why; an
        empty one (never stored) says nothing was waiting."""
        included = sorted(included, key=lambda s: (postal_address(s.patient or {})[-1:], s.communication["id"]))
        body: dict[str, Any] = {
            "resourceType": "List", "status": "current", "mode": "snapshot",
            "title": f"Member letters print batch {day.isoformat()}",
            "identifier": [{"system": PRINT_BATCH_SYSTEM, "value": day.isoformat()}],
            "date": self.engine.clock().isoformat()}
        if included:
            body["entry"] = [{"item": {"reference": f"Communication/{s.communication['id']}"}} for s in included]
        else:
            body["emptyReason"] = {"coding": [EMPTY_REASON], "text": "No letter is waiting to be printed"}
        if skipped:
            body["note"] = [{"text": f"Left out: {reference} ({reason})"} for reference, reason in skipped]
        return body

    # ---- printing ----------------------------------------------------------------------------------------

    async def letters(self, batch: dict[str, Any], day: date) -> list[Letter]:
        """The printable letters of ``batch`` in its order (a letter whose data no longer allows printing, such
        as a Member who opted out since the cut, is left out)."""
        references = [r for r in (_reference(e.get("item")) for e in batch.get("entry", ())) if r]
        communications = await self._by_reference("Communication", references)
        ordered = [communications[r] for r in references if r in communications]
        letters: list[Letter] = []
        for sources in await self._sources(ordered):
            if self._skip_reason(sources) is not None:
                continue
            assert sources.patient is not None and sources.referral is not None
            decision = self.facts.decision(sources.referral)
            assert decision is not None
            fields = self.facts.fields(sources.communication, sources.referral, sources.patient, decision, day)
            letters.append(Letter(fields, self.facts.folder.enclosures_for(decision.code)))
        return letters

    async def print_file(self, batch: dict[str, Any], day: date) -> tuple[bytes, int]:
        """``batch`` (of ``day``) as one PDF, and how many letters it holds."""
        letters = await self.letters(batch, day)
        return await asyncio.to_thread(self.renderer.print_file, letters, day), len(letters)

    # ---- mailing -----------------------------------------------------------------------------------------

    async def mark_mailed(self, day: date, mailed: date) -> MailedResult:
        """Record the letters the batch of ``day`` prints as sent on ``mailed`` (not before the batch day, not in
        the future); letters already sent keep their date."""
        if mailed < day:
            raise FhirError(400, "value", f"The mailing date must not be before the batch day {day.isoformat()}",
                            expression="date")
        if mailed > self.today():
            raise FhirError(400, "value", "The mailing date must not be in the future", expression="date")
        batch = await self.require(day)
        references = [r for r in (_reference(e.get("item")) for e in batch.get("entry", ())) if r]
        communications = await self._by_reference("Communication", references)
        result = MailedResult(not_in_preparation=len([r for r in references if r not in communications]))
        for sources in await self._sources([communications[r] for r in references if r in communications]):
            letter = sources.communication
            if letter.get("status") == SENT_STATUS:
                result.already_sent += 1
            elif letter.get("status") != WAITING_STATUS:
                result.not_in_preparation += 1
            elif self._skip_reason(sources) is not None:
                result.not_printed += 1
            else:
                sent = clone(letter)
                sent["status"], sent["sent"] = SENT_STATUS, mailed.isoformat()
                await self.engine.update("Communication", letter["id"], sent,
                                         if_match=int(letter["meta"]["versionId"]))
                result.marked += 1
        return result

def build_print_batches(engine: Engine, letters_dir: Path) -> PrintBatches:
    """The print batches of ``engine`` with the letters folder at ``letters_dir`` (ConfigurationError, one line,
    when the folder cannot serve)."""
    folder = LettersFolder.load(letters_dir)
    return PrintBatches(engine, LetterFacts(engine.rules, engine.codes, folder), LetterRenderer(folder))
