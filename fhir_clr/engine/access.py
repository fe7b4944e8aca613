"""What the engine asks about the caller of an interaction. The HTTP layer builds a policy per request (see
``fhir_clr.auth.policy``) and hands it to the engine with ``Engine.with_access``; CLI commands, file loaders
and dev mode use ``FULL_ACCESS``.

A restricted policy turns into query criteria: searches AND the policy's criterion into the query, and reads,
writes, includes and history check single resources with the same criterion (``fhir_clr.engine.visibility``),
so every path answers "may this caller see it" the same way. Resources outside a caller's reach are reported
exactly as absent ones (never 403). The whole model: ``docs/security.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from fhir_clr.store.query import Criterion

CREATED_BY_SYSTEM = "https://fhir-clr.org/CodeSystem/created-by"
"""``meta.tag`` system of the server-set tag naming the organization (``Organization/id``) whose restricted
client created a resource. Clients can neither set nor remove it."""



def is_created_by_tag(tag: Any) -> bool:
    """True for a ``meta.tag`` entry of the server's created-by system."""
    return isinstance(tag, dict) and tag.get("system") == CREATED_BY_SYSTEM


def created_by_tags(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The created-by tags of a resource (none, or the one the server set)."""
    meta = resource.get("meta")
    tags = meta.get("tag") if isinstance(meta, dict) else None
    return [t for t in tags if is_created_by_tag(t)] if isinstance(tags, list) else []


TOPIC_BASIC_CODE = ("http://hl7.org/fhir/fhir-types", "SubscriptionTopic")
"""``Basic.code`` (system, code) of the R4 form of a subscription topic the server writes at start-up
(``fhir_clr.subscriptions.topic_basic``): conformance data without PHI, readable by every authenticated client
and written by the server only."""


class AccessPolicy(Protocol):
    """The caller's rights, as the engine needs them."""

    organization: str | None
    """``Organization/id`` the caller acts for (None: unrestricted server-side caller)."""

    @property
    def role(self) -> str:
        """The caller organization's role in the referral loop (``plan``, ``servicing-provider``, ...)."""

    def permits(self, resource_type: str, interaction: str) -> bool:
        """True when the caller's scopes allow ``interaction`` (one of ``c r u d s``) on ``resource_type``."""

    def require(self, resource_type: str, interaction: str) -> None:
        """Raise 403 unless ``permits``."""

    def restriction(self, resource_type: str) -> Criterion | None:
        """A criterion matching exactly the resources of ``resource_type`` the caller may see; None: all."""

    def check_search(self, resource_type: str, criteria: Sequence[Criterion]) -> None:
        """Raise 403 for search criteria that would reveal data outside the caller's reach (chains, _has)."""

    def check_content(self, resource_type: str, resource: dict[str, Any] | None) -> None:
        """Raise 403 unless the caller may store ``resource`` (None: a delete) as ``resource_type``."""

    def check_change(self, resource_type: str, current: dict[str, Any]) -> None:
        """Raise 403 unless the caller may update or delete the resource whose current version is ``current``
        (one it can see: visibility was decided before)."""

    def visibility_in_body(self, resource_type: str) -> bool:
        """True when a ``resource_type`` resource's own content decides who sees it (referral parties,
        subscriber), so each stored version is judged by its own body."""

    def names_caller(self, resource_type: str, resource: dict[str, Any]) -> bool:
        """True when ``resource``'s own content makes it visible to the caller (a party element, the
        subscriber, the created-by tag)."""


class FullAccess:
    """No restrictions (dev mode, CLI, server-internal callers)."""

    organization: str | None = None
    role: str = "plan"

    def permits(self, resource_type: str, interaction: str) -> bool:
        """Everything is permitted."""
        return True

    def require(self, resource_type: str, interaction: str) -> None:
        """Never refuses."""

    def restriction(self, resource_type: str) -> Criterion | None:
        """No restriction."""
        return None

    def check_search(self, resource_type: str, criteria: Sequence[Criterion]) -> None:
        """Every search is allowed."""

    def check_content(self, resource_type: str, resource: dict[str, Any] | None) -> None:
        """Every write is allowed."""

    def check_change(self, resource_type: str, current: dict[str, Any]) -> None:
        """Every resource may be changed."""

    def visibility_in_body(self, resource_type: str) -> bool:
        """Nothing is hidden, so no body decides."""
        return False

    def names_caller(self, resource_type: str, resource: dict[str, Any]) -> bool:
        """Everything is the caller's."""
        return True


FULL_ACCESS = FullAccess()
