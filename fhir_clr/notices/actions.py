"""What a person does with a notice from the console: send one held for review, or try a failed one again.
Both put the notice back in ``preparation`` (the worker sends it on its next pass, with the same Message-ID)
and mark its obligation ``queued``; everything goes through the caller's engine."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_clr.engine.engine import Engine
from fhir_clr.errors import FhirError
from fhir_clr.notices.composer import ON_HOLD, PREPARATION, obligation_of

RELEASABLE = frozenset({ON_HOLD, "not-done"})
"""Notice statuses a person may (re-)send: held for review, or failed."""


async def release(engine: Engine, communication_id: str) -> dict[str, Any]:
    """Queue the held or failed CLR Notice ``communication_id`` for sending (404 as for an absent notice when the
    caller may not see it; 409 when it is neither held nor failed). The updated notice."""
    stored = await engine.read("Communication", communication_id)
    notice = orjson.loads(stored.body or b"{}")
    if notice.get("status") not in RELEASABLE or not notice.get("identifier"):
        raise FhirError(409, "business-rule", "Only a notice held for review or one whose delivery failed can be "
                        "sent from here")
    body = {**notice, "status": PREPARATION}
    body.pop("statusReason", None)
    result = await engine.update("Communication", communication_id, body, if_match=stored.version)
    reference = obligation_of(notice)
    if reference:
        task = orjson.loads((await engine.read("Task", reference.partition("/")[2])).body or b"{}")
        if task.get("status") == "requested":
            delivery = engine.codes["notice-delivery-status"]
            task = {**task, "businessStatus": {"coding": [delivery.coding("queued")]}}
            task.pop("statusReason", None)
            await engine.update("Task", task["id"], task)
    return orjson.loads(result.stored.body or b"{}") if result.stored is not None else body
