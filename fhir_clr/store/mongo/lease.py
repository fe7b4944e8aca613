"""Named leases in the ``leases`` collection, so that one of several fhir-clr replicas does a piece of
background work (e.g. delivering the outbox) at a time.

A lease document is ``{_id: name, owner, expiresUs}``. Acquiring is one atomic upsert whose filter only
matches a free, expired, or already-owned lease; when another owner holds a live lease the upsert tries
to insert a second document with the same ``_id`` and fails with a duplicate key, which means "not
acquired". Renewing is acquiring again before ``expiresUs``.
"""

from __future__ import annotations

import time
from typing import Any

from pymongo.errors import DuplicateKeyError


def _now_us() -> int:
    return time.time_ns() // 1_000


async def acquire_lease(leases: Any, name: str, owner: str, ttl: float) -> bool:
    """Take or renew lease ``name`` for ``owner`` for ``ttl`` seconds; False when someone else holds it."""
    now = _now_us()
    try:
        await leases.update_one(
            {"_id": name, "$or": [{"owner": {"$eq": owner}}, {"expiresUs": {"$lte": now}}]},
            {"$set": {"owner": owner, "expiresUs": now + int(ttl * 1_000_000)}},
            upsert=True)
    except DuplicateKeyError:
        return False
    return True


async def release_lease(leases: Any, name: str, owner: str) -> bool:
    """Give lease ``name`` back if ``owner`` holds it; True when it was released."""
    result = await leases.delete_one({"_id": {"$eq": name}, "owner": {"$eq": owner}})
    deleted: int = result.deleted_count
    return deleted == 1
