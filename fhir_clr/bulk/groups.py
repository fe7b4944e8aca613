"""The Group a Group-level export reads its Members from."""

from __future__ import annotations

from fhir_clr.engine.engine import Engine
from fhir_clr.errors import not_found
from fhir_clr.fhirmodel.validate import validate_id
from fhir_clr.store.port import StoredResource


async def export_group(scoped: Engine, group_id: str) -> StoredResource:
    """The current Group ``group_id`` when the caller's Organization may see it, else 404 (also when deleted, so
    nothing about a Group out of reach leaks).

    No Group scope is needed: bulk clients ask only for the scopes of the types they export, and what the
    export contains is filtered by those scopes and the caller's Organization, member by member."""
    validate_id(group_id)
    if scoped.access.restriction("Group") is not None and not await scoped.is_visible("Group", group_id):
        raise not_found("Group", group_id)
    current = await scoped.store.read("Group", group_id)
    if current is None or current.deleted:
        raise not_found("Group", group_id)
    return current
