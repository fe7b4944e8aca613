"""The Notices page: the caller's CLR notices counted by state (queued, held, sent, failed) per channel and per
kind, the notices that need a person (held for review, failed, or retrying after an error) with their exact
content, and the schedules (monthly digest day; letters wait for the daily print batch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_clr.clr.config import extension_of, extension_url, value_of
from fhir_clr.console.names import Names
from fhir_clr.engine.engine import Engine
from fhir_clr.notices.composer import notice_kind, notice_text
from fhir_clr.search.parse import PAGE_TOKEN

STATES = {"queued": "preparation", "held": "on-hold", "sent": "completed", "failed": "not-done"}
"""Page column -> Communication status."""
CHANNELS = ("email", "fhir", "digest", "letter")
PAGE_SIZE = 25


@dataclass(slots=True)
class NoticeItem:
    """One notice needing attention."""

    id: str
    kind: str
    channel: str
    recipient: str
    status: str
    error: str
    content: str
    referral_id: str

    @property
    def releasable(self) -> bool:
        """True when a person can send it now (held) or try again (failed)."""
        return self.status in ("on-hold", "not-done")


@dataclass(slots=True)
class NoticesPage:
    """Everything the Notices page shows."""

    by_channel: dict[str, dict[str, int]]
    by_kind: dict[str, dict[str, int]]
    items: list[NoticeItem] = field(default_factory=list)
    next_token: str | None = None
    prev_token: str | None = None
    digest_day: int = 1
    kind_titles: dict[str, str] = field(default_factory=dict)


async def _count(engine: Engine, params: list[tuple[str, str]]) -> int:
    result = await engine.search("Communication", [*params, ("_summary", "count")])
    return int(result.total or 0)


async def notices_page(engine: Engine, page_token: str | None) -> NoticesPage:
    """The Notices page for the caller of ``engine`` (every figure counted through its access policy)."""
    rules, codes = engine.rules, engine.codes
    profile = [("_profile", extension_url(rules, "clr-notice"))]
    channels, kinds = codes["notice-channels"], codes["notice-kinds"]
    notice_kinds = list(rules["noticing"]["notice_kinds"])
    by_channel = {c: {state: await _count(engine, [*profile, ("status", status),
                                                  ("notice-channel", f"{channels.system}|{c}")])
                      for state, status in STATES.items()} for c in CHANNELS}
    by_kind = {k: {state: await _count(engine, [*profile, ("status", status),
                                                ("notice-kind", f"{kinds.system}|{k}")])
                   for state, status in STATES.items()} for k in notice_kinds}
    params = [*profile, ("status", "on-hold,not-done,preparation"), ("_count", str(PAGE_SIZE)),
              ("_sort", "-_lastUpdated")]
    if page_token:
        params.append((PAGE_TOKEN, page_token))
    result = await engine.search("Communication", params)
    names = Names(engine)
    channel_url = extension_url(rules, "notice-channel")
    notices: list[dict[str, Any]] = [orjson.loads(m.body) for m in result.matches if m.body is not None]
    await names.load(((n.get("recipient") or [{}])[0]).get("reference") for n in notices)
    items = []
    for notice in notices:
        error = (notice.get("statusReason") or {}).get("text", "")
        status = str(notice.get("status", ""))
        if status == "preparation" and not error:
            continue  # on its way: counted above, nothing for a person to do
        channel = value_of(extension_of(notice, channel_url)) or {}
        about = ((notice.get("about") or [{}])[0]).get("reference", "")
        recipient = (notice.get("recipient") or [None])[0]
        kind = notice_kind(notice)
        items.append(NoticeItem(notice["id"], kinds.concepts[kind].display if kind in kinds.concepts else kind,
                                str(channel.get("code", "")), names(recipient), status, error,
                                notice_text(notice), about.partition("/")[2] if about.startswith("ServiceRequest/")
                                else ""))
    digest = int(rules.get("notices", {}).get("digest", {}).get("day_of_month", 1))
    return NoticesPage(by_channel, by_kind, items, result.next_token, result.prev_token, digest,
                       {k: kinds.concepts[k].display for k in notice_kinds if k in kinds.concepts})
