"""The notice worker: the outbox of CLR notices is the set of open obligation Tasks (each committed in the same
transaction as the event that owes it), so nothing owed can be lost between a commit and a send.

One server process at a time works (it holds the ``notices/worker`` lease). Each pass:

1. **compose** — open notice obligations the worker has not looked at (no ``businessStatus``) get a route
   (:mod:`fhir_clr.notices.channels`). With a channel, the notice is composed and created as a CLR Notice
   Communication (``preparation``, or ``on-hold`` when the rules hold its kind for review), by a conditional
   create on its obligation-derived identifier, then the obligation is marked ``queued`` (or ``held``);
   without one, the obligation is marked ``no-channel`` or ``needs-contact`` with the reason (worklist).
   A loop-closure notice going by digest is re-dated to the recipient's digest day (the rules' ``digest``).
   Obligations without a channel are looked at again every ``RECHECK_SECONDS``;
2. **send** — notices in ``preparation`` go by their channel: email at once, digests on their day (one message
   for all of a recipient's due entries), FHIR through the recipient's Subscription (the durable rest-hook
   pipeline delivers it; the endpoint's 2xx acknowledgement is the send). A delivered notice is updated to
   ``completed`` with ``sent`` = the delivery time, which completes its obligation (``clr_messages``). A
   passing failure is retried with exponential back-off (the error on the notice's ``statusReason``); a
   permanent one (e.g. SMTP 550) makes the notice ``not-done`` and the obligation ``failed`` (worklist).
   Letters stay in ``preparation`` for the print batch.

Delivery is at-least-once: a crash after a send and before its record is written repeats the send with the same
``Message-ID`` (derived from the notice's id), which receivers use to drop the duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from fhir_clr.clr.codes import CodeLists
from fhir_clr.clr.config import extension_url
from fhir_clr.clr.deadlines import Deadlines, parse_moment
from fhir_clr.clr.obligations import kind_of
from fhir_clr.engine.engine import Engine
from fhir_clr.errors import FhirError
from fhir_clr.notices.channels import DIGEST, EMAIL, FHIR, NOTICE_TOPIC, ChannelChooser, Route
from fhir_clr.notices.composer import (
    NOTICE_ID_SYSTEM,
    PREPARATION,
    NoticeComposer,
    notice_kind,
    notice_text,
    obligation_of,
    split_payload,
)
from fhir_clr.notices.digest import digest_day
from fhir_clr.notices.fields import FieldGatherer
from fhir_clr.notices.smtp import DeliveryFailure, OutgoingEmail, SmtpSender, message_id
from fhir_clr.notices.templates import NoticeTemplates, TemplateError
from fhir_clr.search.parse import PAGE_TOKEN
from fhir_clr.store.port import RecordWrite, Store
from fhir_clr.subscriptions import state as subscription_records
from fhir_clr.subscriptions.notifications import Event

log = logging.getLogger(__name__)
LEASE = "notices/worker"
DELIVERY_RECORD = "notice-delivery"
"""Store record per notice (key: Communication id) with its failed attempts, next try and last error."""
RECHECK_SECONDS = 60.0
PASS_GAP_SECONDS = 0.25
"""Shortest pause between two passes of the worker, however often commits wake it."""
PAGE = 100
DELIVERY_STATUS_SYSTEM = "http://fhir-clr.org/fhir/CodeSystem/notice-delivery-status"
QUEUED, HELD, FAILED = "queued", "held", "failed"
REVIEW = "review"


class LeaseLost(Exception):
    """Another server process holds the notice worker's lease now."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off of one notice's tries."""

    base_seconds: float
    max_seconds: float

    def delay(self, failures: int) -> float:
        """Seconds before the next try after ``failures`` failed ones."""
        return float(min(self.max_seconds, self.base_seconds * 2 ** max(0, failures - 1)))


class NoticeWorker:
    """Composes and delivers CLR notices in the background of a server process."""

    def __init__(self, engine: Engine, store: Store, templates: NoticeTemplates, sender: SmtpSender | None,
                 retry: RetryPolicy, *, poll_seconds: float = 2.0, lease_seconds: float = 30.0,
                 woken: asyncio.Event | None = None) -> None:
        self.engine = engine
        self.store = store
        self.rules: dict[str, Any] = engine.rules
        self.codes: CodeLists = engine.codes
        self.templates = templates
        self.sender = sender
        self.retry = retry
        self.poll_seconds = poll_seconds
        self.woken = woken
        self.lease_seconds = lease_seconds
        self.deadlines = Deadlines(self.rules)
        self.chooser = ChannelChooser(self.rules, self._read, self._subscription_of)
        self.gatherer = FieldGatherer(self.rules, self.codes)
        self.composer = NoticeComposer(self.rules, self.codes)
        conf = self.rules.get("notices", {})
        self.delivery_modes: dict[str, str] = conf.get("delivery", {})
        self.kinds = sorted(self.rules["noticing"]["notice_kinds"])
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._obligation_profile = extension_url(self.rules, "clr-notice-obligation")
        self._notice_profile = extension_url(self.rules, "clr-notice")
        self._rechecked = 0.0
        self._lease_until = 0.0
        self._event_cursor: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background loop."""
        self._task = asyncio.create_task(self._run(), name="notices")

    async def stop(self) -> None:
        """Stop the loop (a send in flight is abandoned; its notice is re-sent later) and give the lease back."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.store.release_lease(LEASE, self.owner)

    async def _run(self) -> None:
        while True:
            try:
                if await self._hold():
                    await self.run_once()
            except asyncio.CancelledError:
                raise
            except LeaseLost:
                log.warning("notice worker lease taken over by another process")
            except Exception as error:  # the worker must survive; no content is logged
                log.error("notice worker pass failed: %s", type(error).__name__)
            await self._pause()

    async def _pause(self) -> None:
        """Wait for the next pass: a commit in this process (when ``woken`` is given) or ``poll_seconds``
        (commits of other processes), whichever comes first, and never less than ``PASS_GAP_SECONDS`` so that a
        busy store (or this worker's own writes) cannot keep the worker passing back to back."""
        gap = min(PASS_GAP_SECONDS, self.poll_seconds)
        await asyncio.sleep(gap)
        if self.woken is None:
            await asyncio.sleep(self.poll_seconds - gap)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.woken.wait(), timeout=self.poll_seconds - gap)
        self.woken.clear()

    async def _hold(self) -> bool:
        now = time.monotonic()
        if self._lease_until - now > self.lease_seconds / 2:
            return True
        if await self.store.acquire_lease(LEASE, self.owner, self.lease_seconds):
            self._lease_until = now + self.lease_seconds
            return True
        self._lease_until = 0.0
        return False

    async def _keep_lease(self) -> None:
        """Renew the lease when half of it is gone (LeaseLost when another process holds it now)."""
        if self._lease_until and not await self._hold():
            raise LeaseLost

    async def run_once(self) -> None:
        """One pass: compose what became owed, then send what is ready. A long pass renews the lease as it goes
        and stops (LeaseLost) when another process took it over."""
        async for obligation in self._pages("Task", self._obligation_params([("business-status:missing", "true")])):
            await self._keep_lease()
            await self._compose_one(obligation)
        if time.monotonic() - self._rechecked >= RECHECK_SECONDS:
            self._rechecked = time.monotonic()
            waiting = f"{DELIVERY_STATUS_SYSTEM}|no-channel,{DELIVERY_STATUS_SYSTEM}|needs-contact"
            async for obligation in self._pages("Task", self._obligation_params([("business-status", waiting)])):
                await self._keep_lease()
                await self._compose_one(obligation)
        await self.send_ready()

    async def _compose_one(self, obligation: dict[str, Any]) -> None:
        """:meth:`compose`, so that one obligation whose notice cannot be written does not stop the others (it is
        marked ``no-channel`` with the refusal, and looked at again with those; anything unexpected is logged by
        type and tried again next pass)."""
        try:
            await self.compose(obligation)
        except FhirError as error:
            await self._mark(obligation, "no-channel", f"The notice could not be recorded (HTTP {error.status})")
        except Exception as error:  # no content is logged: the obligation's id only
            log.error("notice not composed: %s", type(error).__name__, extra={"obligation": obligation.get("id")})

    def _obligation_params(self, extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
        kinds = self.codes["notice-kinds"]
        return [("_profile", self._obligation_profile), ("status", "requested"),
                ("code", ",".join(f"{kinds.system}|{k}" for k in self.kinds)), *extra]

    async def _pages(self, resource_type: str, params: list[tuple[str, str]]) -> AsyncIterator[dict[str, Any]]:
        """Every match of a search, page by page (bodies)."""
        token: str | None = None
        while True:
            page = await self.engine.search(resource_type, [*params, ("_count", str(PAGE)),
                                                            *([(PAGE_TOKEN, token)] if token else [])])
            for match in page.matches:
                if match.body is not None:
                    yield orjson.loads(match.body)
            token = page.next_token
            if not token:
                return

    # ---- reads ------------------------------------------------------------------------------------------

    async def _read(self, reference: str) -> dict[str, Any] | None:
        resource_type, _, resource_id = reference.partition("/")
        try:
            stored = await self.engine.read(resource_type, resource_id)
        except FhirError:
            return None
        return orjson.loads(stored.body) if stored.body else None

    async def _subscription_of(self, organization: str) -> str | None:
        page = await self.engine.search("Subscription", [("subscriber", organization),
                                                         ("status", "active,requested"), ("_count", "50")])
        for match in page.matches:
            body = orjson.loads(match.body or b"{}")
            if str(body.get("criteria", "")).split("|")[0] == NOTICE_TOPIC:
                return str(body["id"])
        return None

    # ---- compose ----------------------------------------------------------------------------------------

    async def compose(self, obligation: dict[str, Any]) -> None:
        """Route the notice ``obligation`` asks for and create its Communication (or mark why not)."""
        kind = kind_of(obligation) or ""
        recipients = (obligation.get("restriction") or {}).get("recipient") or [{}]
        recipient = recipients[0].get("reference") if isinstance(recipients[0], dict) else None
        route = await self.chooser.route(recipient, kind)
        if not route.deliverable:
            await self._mark(obligation, route.status or "no-channel", route.reason)
            return
        referral = await self._read(obligation["focus"]["reference"]) if obligation.get("focus") else None
        task_ref = ((obligation.get("partOf") or [{}])[0]).get("reference")
        task = await self._read(task_ref) if task_ref else None
        fields = self.gatherer.gather(obligation, referral, task, route.name)
        try:
            rendered = self.templates.render(kind, route.channel or "", fields)
        except TemplateError:
            await self._mark(obligation, "no-channel", f"No notice template for {kind} by {route.channel}")
            return
        held = self.delivery_modes.get(kind) == REVIEW
        body = self.composer.communication(obligation, route, rendered, fields, held=held)
        await self.engine.create("Communication", body,
                                 if_none_exist=f"identifier={NOTICE_ID_SYSTEM}|{obligation['id']}")
        if route.channel == DIGEST:
            obligation = self._redated(obligation)
        await self._mark(obligation, HELD if held else QUEUED, "")

    def _redated(self, obligation: dict[str, Any]) -> dict[str, Any]:
        """``obligation`` due on its recipient's digest day (the rules' digest flexibility)."""
        start = parse_moment(((obligation.get("restriction") or {}).get("period") or {}).get("start"))
        processed = self.deadlines.local_date(start) if isinstance(start, datetime) else (
            start or self.deadlines.local_date(self.engine.clock()))
        day = digest_day(processed, self.rules)
        period = {**obligation["restriction"]["period"], "end": day.isoformat()}
        return {**obligation, "restriction": {**obligation["restriction"], "period": period}}

    async def _mark(self, obligation: dict[str, Any], code: str, reason: str) -> None:
        """Record on the open obligation why its notice waits (``businessStatus`` + ``statusReason``)."""
        current = await self._read(f"Task/{obligation['id']}")
        if current is None or current.get("status") != "requested":
            return
        wanted = {"coding": [self.codes["notice-delivery-status"].coding(code)]}
        old_code = ((current.get("businessStatus") or {}).get("coding") or [{}])[0].get("code")
        old_reason = (current.get("statusReason") or {}).get("text", "")
        period = (obligation.get("restriction") or {}).get("period")
        if old_code == code and old_reason == reason and (current.get("restriction") or {}).get("period") == period:
            return
        body = {**current, "businessStatus": wanted}
        if period is not None:
            body["restriction"] = {**(current.get("restriction") or {}), "period": period}
        body.pop("statusReason", None)
        if reason:
            body["statusReason"] = {"text": reason}
        with contextlib.suppress(FhirError):  # changed meanwhile: the next pass looks again
            await self.engine.update("Task", obligation["id"], body,
                                     if_match=int(current.get("meta", {}).get("versionId", 0)) or None)

    # ---- send -------------------------------------------------------------------------------------------

    async def send_ready(self) -> None:
        """Deliver the notices in preparation by email, digest and FHIR."""
        channels = self.codes["notice-channels"]
        params = [("_profile", self._notice_profile), ("status", PREPARATION),
                  ("notice-channel", ",".join(f"{channels.system}|{c}" for c in (EMAIL, FHIR)))]
        by_subscription: dict[str, list[dict[str, Any]]] = {}
        async for notice in self._pages("Communication", params):
            await self._keep_lease()
            recipient = ((notice.get("recipient") or [{}])[0]).get("reference")
            if self._channel(notice) == EMAIL:
                ready, state = await self._due(notice["id"])
                if ready:
                    await self._send_email(notice, await self.chooser.route(recipient, notice_kind(notice)), state)
                continue
            route = await self.chooser.route(recipient, notice_kind(notice))
            if route.channel == FHIR and route.address:
                by_subscription.setdefault(route.address, []).append(notice)
        for (recipient, address), notices in (await self._due_digests()).items():
            await self._send_digest(recipient, address, notices)
        for subscription_id, notices in by_subscription.items():
            await self._acknowledged(subscription_id, notices)
        if self.sender is not None:
            await self.sender.close()

    def _channel(self, notice: dict[str, Any]) -> str:
        url = extension_url(self.rules, "notice-channel")
        for extension in notice.get("extension", ()):
            if extension.get("url") == url:
                return str((extension.get("valueCoding") or {}).get("code", ""))
        return ""

    async def _due(self, notice_id: str) -> tuple[bool, dict[str, Any]]:
        record = await self.store.get_record(DELIVERY_RECORD, notice_id)
        doc = record.doc if record else {}
        return int(doc.get("next_try_us", 0)) <= time.time_ns() // 1000, doc

    async def _send_email(self, notice: dict[str, Any], route: Route, state: dict[str, Any]) -> None:
        if self.sender is None:
            await self._failed_for_now(notice, state, "No SMTP relay is configured (FHIR_CLR_SMTP_HOST)")
            return
        if route.channel not in (EMAIL, DIGEST) or not route.address:
            await self._failed_for_now(notice, state, "The recipient has no email address now")
            return
        subject, body = split_payload(notice_text(notice))
        now = datetime.now(UTC)
        identity = message_id(f"notice-{notice['id']}", self.sender.config.domain)
        email = OutgoingEmail(route.address, subject, body, identity, now, route.certificate)
        try:
            await self.sender.send(email)
        except DeliveryFailure as failure:
            if failure.permanent:
                await self._failed_for_good([notice], str(failure))
            else:
                await self._failed_for_now(notice, state, str(failure))
            return
        await self._sent([notice], now)

    async def _due_digests(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """The digest entries whose digest day has come (their queued obligation is due today or earlier), by
        (recipient, address): found from the due obligations, so entries waiting for their day cost nothing."""
        digest_kinds = self.chooser.digest_kinds
        if not digest_kinds:
            return {}
        today = self.deadlines.local_date(self.engine.clock())
        kinds, channels = self.codes["notice-kinds"], self.codes["notice-channels"]
        due_obligations = [("_profile", self._obligation_profile), ("status", "requested"),
                           ("code", ",".join(f"{kinds.system}|{k}" for k in sorted(digest_kinds))),
                           ("business-status", f"{DELIVERY_STATUS_SYSTEM}|{QUEUED}"),
                           ("due-date", f"le{today.isoformat()}")]
        ids = [o["id"] async for o in self._pages("Task", due_obligations)]
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for start in range(0, len(ids), PAGE):
            batch = ",".join(f"Task/{i}" for i in ids[start:start + PAGE])
            params = [("based-on", batch), ("status", PREPARATION), ("notice-channel", f"{channels.system}|{DIGEST}")]
            async for notice in self._pages("Communication", params):
                recipient = str(((notice.get("recipient") or [{}])[0]).get("reference"))
                route = await self.chooser.route(recipient, notice_kind(notice))
                if route.address:
                    grouped.setdefault((recipient, route.address), []).append(notice)
        return grouped

    async def _send_digest(self, recipient: str, address: str, due: list[dict[str, Any]]) -> None:
        """One message with the entries ``due`` (their digest day has come)."""
        today = self.deadlines.local_date(self.engine.clock())
        ready, state = await self._due(due[0]["id"])
        if not ready:
            return
        if self.sender is None:
            await self._failed_for_now(due[0], state, "No SMTP relay is configured (FHIR_CLR_SMTP_HOST)")
            return
        contact = self.rules.get("notices", {}).get("plan_contact", {})
        recipient_resource = await self._read(recipient) or {}
        name = str(recipient_resource.get("name", "")) if isinstance(recipient_resource.get("name"), str) else ""
        rendered = self.templates.render_digest({
            "entries": [split_payload(notice_text(n))[1].strip() for n in due], "recipient_name": name,
            "digest_date": today.isoformat(), "plan_name": contact.get("name", ""),
            "plan_phone": contact.get("phone", ""), "plan_email": contact.get("email", "")})
        now = datetime.now(UTC)
        key = f"digest-{recipient.replace('/', '-')}-{today.isoformat()}"
        route = await self.chooser.route(recipient, "")
        email = OutgoingEmail(address, rendered.subject, rendered.body, message_id(key, self.sender.config.domain),
                              now, route.certificate)
        try:
            await self.sender.send(email)
        except DeliveryFailure as failure:
            if failure.permanent:
                await self._failed_for_good(due, str(failure))
            else:
                await self._failed_for_now(due[0], state, str(failure))
            return
        await self._sent(due, now)

    async def _acknowledged(self, subscription_id: str, notices: list[dict[str, Any]]) -> None:
        """Complete the FHIR notices whose notification event the subscription's endpoint acknowledged."""
        record = await self.store.get_record(subscription_records.DELIVERY, subscription_id)
        delivered = int(record.doc.get("delivered", 0)) if record else 0
        pending = {n["id"]: n for n in notices}
        cursor = self._event_cursor.get(subscription_id, 0)
        acknowledged: list[dict[str, Any]] = []
        while cursor < delivered and pending:
            events = await self.store.list_records(
                subscription_records.EVENT, prefix=f"{subscription_id}/",
                after=subscription_records.event_key(subscription_id, cursor), limit=500)
            if not events:
                break
            for record_ in events:
                event = Event.from_doc(record_.doc)
                if event.number > delivered:
                    break
                cursor = event.number
                if event.resource_type == "Communication" and event.resource_id in pending:
                    acknowledged.append(pending.pop(event.resource_id))
            else:
                continue
            break
        self._event_cursor[subscription_id] = cursor
        if acknowledged:
            sent_us = int(record.doc.get("last_sent_us", 0)) if record else 0
            at = datetime.fromtimestamp(sent_us / 1e6, UTC) if sent_us else datetime.now(UTC)
            await self._sent(acknowledged, at)

    # ---- outcomes ---------------------------------------------------------------------------------------

    async def _sent(self, notices: list[dict[str, Any]], at: datetime) -> None:
        """Record each notice as sent at ``at``: ``completed`` (its obligation completes in the same write)."""
        for notice in notices:
            body = {**notice, "status": "completed", "sent": at.isoformat().replace("+00:00", "Z")}
            body.pop("statusReason", None)
            body.pop("meta", None)
            body["meta"] = {"profile": notice.get("meta", {}).get("profile", [])}
            with contextlib.suppress(FhirError):
                await self.engine.update("Communication", notice["id"], body)
            with contextlib.suppress(Exception):
                await self.store.write_records([RecordWrite(DELIVERY_RECORD, notice["id"], None)])

    async def _failed_for_now(self, notice: dict[str, Any], state: dict[str, Any], error: str) -> None:
        """A passing failure: try again after the back-off; the error shows on the notice."""
        failures = int(state.get("failures", 0)) + 1
        next_try = time.time_ns() // 1000 + int(self.retry.delay(failures) * 1e6)
        await self.store.write_records([RecordWrite(DELIVERY_RECORD, notice["id"], {
            "failures": failures, "next_try_us": next_try, "error": error})])
        if (notice.get("statusReason") or {}).get("text") != error:
            body = {**notice, "statusReason": {"text": error}}
            with contextlib.suppress(FhirError):
                await self.engine.update("Communication", notice["id"], body)

    async def _failed_for_good(self, notices: list[dict[str, Any]], error: str) -> None:
        """A permanent failure: the notice is ``not-done`` and its obligation stays open, marked ``failed``."""
        for notice in notices:
            body = {**notice, "status": "not-done", "statusReason": {"text": error}}
            with contextlib.suppress(FhirError):
                await self.engine.update("Communication", notice["id"], body)
            reference = obligation_of(notice)
            obligation = await self._read(reference) if reference else None
            if obligation is not None:
                await self._mark(obligation, FAILED, error)
            with contextlib.suppress(Exception):
                await self.store.write_records([RecordWrite(DELIVERY_RECORD, notice["id"], None)])
