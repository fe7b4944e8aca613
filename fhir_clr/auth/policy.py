"""Per-organization access policy for authenticated clients.

* ``plan``: sees and changes everything its scopes allow; the only role that may read the audit trail.
* ``servicing-provider`` / ``referring-entity``: see
  - their own Subscriptions (``subscriber``, recorded by the server when they create one);
  - Tasks whose ``requester`` or ``owner`` is their Organization, ServiceRequests whose ``requester`` or
    ``performer`` is, and ServiceRequests that such Tasks point at (``focus``/``basedOn``);
  - Patients who are the subject of those referrals;
  - other clinical resources linked to those referrals: a Task's ``focus``/``output``, a ServiceRequest's
    ``supportingInfo``, and resources ``basedOn`` such a ServiceRequest;
  - the files they sent and the rejected rows kept for them: DocumentReferences whose ``author`` is their
    Organization and Binaries whose ``securityContext`` is (the importer records both);
  - resources their own clients created (the server-set created-by tag, see ``docs/security.md``);
  - directory and conformance resources (Organization, HealthcareService, …): no PHI, visible to all;
    likewise the subscription topics the server writes as ``Basic`` (coded ``fhir-types|SubscriptionTopic``),
    the only Basic resources every client sees. No client, not even the plan, may write or delete those.
  They may create and change referrals only when their Organization stays a party (``requester``, ``owner``
  or ``performer``), change other resources only when their own clients created them (so the plan's Members
  and records stay the plan's), and not write directory resources.
  Chained searches are allowed along the links above (or to directory types); ``_has`` only from directory
  types: otherwise they could probe resources the client cannot see.

Scopes are a ceiling: both the scope and the organization rule must allow an interaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_clr.auth.clients import Role
from fhir_clr.auth.tokens import Caller
from fhir_clr.engine.access import CREATED_BY_SYSTEM, TOPIC_BASIC_CODE, created_by_tags
from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel.allowlist import CONFORMANCE_TYPES
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.query import (
    AnyOf,
    ChainCondition,
    Condition,
    Criterion,
    HasCondition,
    ParamType,
    ReferenceValue,
    TokenValue,
)

DIRECTORY_TYPES = frozenset({"Organization", "Practitioner", "PractitionerRole", "HealthcareService", "Location",
                             "Endpoint", "Questionnaire", *CONFORMANCE_TYPES})
"""Non-PHI types every authenticated client may read and search."""

PLAN_ONLY_TYPES = frozenset({"AuditEvent"})
PARTY_ELEMENTS = {"Task": ("requester", "owner"), "ServiceRequest": ("requester", "performer")}
"""Referral types and the elements (search parameters of the same name) that make an Organization a party."""
OWN_RECORD_PARAMS = {"DocumentReference": "author", "Binary": "security-context"}
"""Types an organization sees when this search parameter names it: its received files and their rejects."""
SUBSCRIBER_EXTENSION = "http://fhir-clr.org/fhir/StructureDefinition/subscriber"
"""The server-set extension naming the Organization a Subscription belongs to (search parameter ``subscriber``)."""

TOPICS_ARE_THE_SERVERS = "Subscription topics are written by the server only"
TOPIC_BASIC = Condition("code", ParamType.TOKEN, (TokenValue(*TOPIC_BASIC_CODE),))
"""The server-written subscription topics among the Basic resources (see ``TOPIC_BASIC_CODE``)."""

CHAIN_LINKS = frozenset({("ServiceRequest", "subject", "Patient"), ("ServiceRequest", "patient", "Patient"),
                         ("Task", "patient", "Patient"), ("Task", "subject", "Patient"),
                         ("Task", "focus", "ServiceRequest"), ("Task", "based-on", "ServiceRequest")})
"""Chains that stay inside what a visible resource's own links already reveal."""


def forbidden(message: str) -> FhirError:
    """A 403 with a ``forbidden`` OperationOutcome."""
    return FhirError(403, "forbidden", message)


class OrganizationPolicy:
    """The access policy of one authenticated caller (see module docstring)."""

    def __init__(self, caller: Caller, registry: SearchParamRegistry) -> None:
        self.caller = caller
        self.organization: str | None = caller.organization
        self.role = caller.role
        self.registry = registry
        self._criteria: dict[str, Criterion | None] = {}

    # ---- scopes ------------------------------------------------------------------------------------------

    def permits(self, resource_type: str, interaction: str) -> bool:
        """True when a granted scope covers the interaction."""
        return self.caller.scopes.allows(resource_type, interaction)

    def require(self, resource_type: str, interaction: str) -> None:
        """403 unless a granted scope covers the interaction."""
        if not self.permits(resource_type, interaction):
            raise forbidden(f"The access token's scopes do not allow this interaction on {resource_type}")

    # ---- visibility --------------------------------------------------------------------------------------

    def restriction(self, resource_type: str) -> Criterion | None:
        """None for the plan and directory types; otherwise an OR of the organization's links."""
        if self.role is Role.PLAN or resource_type in DIRECTORY_TYPES:
            return None
        if resource_type not in self._criteria:
            self._criteria[resource_type] = AnyOf(tuple(self._alternatives(resource_type)))
        return self._criteria[resource_type]

    def _alternatives(self, resource_type: str) -> list[Condition | ChainCondition | HasCondition]:
        if resource_type in PLAN_ONLY_TYPES:
            return []
        created = Condition("_tag", ParamType.TOKEN, (TokenValue(CREATED_BY_SYSTEM, self.caller.organization),))
        return [created, *self._links(resource_type)]

    def _links(self, resource_type: str) -> list[Condition | ChainCondition | HasCondition]:
        """The alternatives that come from referral links (see the module docstring)."""
        if resource_type in PARTY_ELEMENTS:
            found: list[Condition | ChainCondition | HasCondition | None] = [
                self._party(resource_type, p) for p in PARTY_ELEMENTS[resource_type]]
            if resource_type == "ServiceRequest":
                found += self._via_tasks(("focus", "based-on"))
            return [c for c in found if c is not None]
        if resource_type == "Subscription":
            return [c for c in (self._party("Subscription", "subscriber"),) if c is not None]
        if resource_type == "Patient":
            return [c for c in (*self._via("ServiceRequest", "subject"), *self._via("Task", "patient"))
                    if c is not None]
        found = [*self._via_tasks(("focus", "output")), *self._via("ServiceRequest", "supporting-info")]
        if resource_type == "Basic":
            found.append(TOPIC_BASIC)
        if resource_type in OWN_RECORD_PARAMS:
            found.append(self._party(resource_type, OWN_RECORD_PARAMS[resource_type]))
        if self._has_param(resource_type, "based-on"):
            found += [ChainCondition("based-on", "ServiceRequest", c) for c in
                      (self._party("ServiceRequest", p) for p in PARTY_ELEMENTS["ServiceRequest"]) if c is not None]
        return [c for c in found if c is not None]

    def _party(self, resource_type: str, param: str) -> Condition | None:
        if not self._has_param(resource_type, param):
            return None
        return Condition(param, ParamType.REFERENCE, (ReferenceValue(self.caller.organization),))

    def _via(self, source_type: str, link: str) -> list[HasCondition | None]:
        """Resources that a ``source_type`` referral of this organization references through ``link``."""
        if not self._has_param(source_type, link):
            return []
        return [HasCondition(source_type, link, party) if party else None
                for party in (self._party(source_type, p) for p in PARTY_ELEMENTS[source_type])]

    def _via_tasks(self, links: Sequence[str]) -> list[HasCondition | None]:
        return [c for link in links for c in self._via("Task", link)]

    def _has_param(self, resource_type: str, param: str) -> bool:
        definition = self.registry.get(resource_type, param)
        return definition is not None and definition.type is ParamType.REFERENCE

    def check_search(self, resource_type: str, criteria: Sequence[Criterion]) -> None:
        """403 for chains leaving the caller's links and for ``_has`` from PHI types."""
        if self.role is Role.PLAN:
            return
        for criterion in criteria:
            if isinstance(criterion, ChainCondition) and criterion.target_type not in DIRECTORY_TYPES and (
                    resource_type, criterion.param, criterion.target_type) not in CHAIN_LINKS:
                raise forbidden(f"Chained search through {criterion.param} to {criterion.target_type} is not "
                                "available to this client")
            if isinstance(criterion, HasCondition) and criterion.source_type not in DIRECTORY_TYPES:
                raise forbidden(f"_has on {criterion.source_type} is not available to this client")

    # ---- writes ------------------------------------------------------------------------------------------

    def check_content(self, resource_type: str, resource: dict[str, Any] | None) -> None:
        """Who may change what: see the module docstring."""
        if resource_type in PLAN_ONLY_TYPES:
            raise forbidden(f"{resource_type} is written by the server only")
        if resource_type == "Basic" and is_topic_basic(resource):
            raise forbidden(TOPICS_ARE_THE_SERVERS)
        if self.role is Role.PLAN or resource is None:
            return
        if resource_type in DIRECTORY_TYPES:
            raise forbidden(f"Only the plan maintains {resource_type} resources")
        if resource_type in PARTY_ELEMENTS and not self.is_party(resource_type, resource):
            raise forbidden(f"A {resource_type} must keep {self.caller.organization} as "
                            f"{' or '.join(PARTY_ELEMENTS[resource_type])}")

    def check_change(self, resource_type: str, current: dict[str, Any]) -> None:
        """Referrals and Subscriptions follow their own rules (a party keeps itself a party); any other resource
        a provider may update or delete only when its own clients created it: a Member, a Condition or a
        directory entry the plan registered stays the plan's, though providers linked to it can read it. No
        client, not even the plan, changes a subscription topic."""
        if resource_type == "Basic" and is_topic_basic(current):
            raise forbidden(TOPICS_ARE_THE_SERVERS)
        if self.role is Role.PLAN or resource_type in PARTY_ELEMENTS or resource_type == "Subscription":
            return
        if not self._created_by_caller(current):
            raise forbidden(f"A provider changes only the {resource_type} resources its own clients created")

    def _created_by_caller(self, resource: dict[str, Any]) -> bool:
        return any(tag.get("code") == self.caller.organization for tag in created_by_tags(resource))

    def visibility_in_body(self, resource_type: str) -> bool:
        """Referrals and Subscriptions: each version's own parties (or subscriber) decide."""
        return self.role is not Role.PLAN and (resource_type in PARTY_ELEMENTS or resource_type == "Subscription")

    def names_caller(self, resource_type: str, resource: dict[str, Any]) -> bool:
        """True when the resource itself makes it the caller's: party, subscriber or created-by tag."""
        if self.role is Role.PLAN or resource_type in DIRECTORY_TYPES:
            return True
        if resource_type in PLAN_ONLY_TYPES:
            return False
        if resource_type == "Basic" and is_topic_basic(resource):
            return True
        if self._created_by_caller(resource):
            return True
        if resource_type == "Subscription":
            return any(isinstance(e, dict) and e.get("url") == SUBSCRIBER_EXTENSION and
                       _local((e.get("valueReference") or {}).get("reference")) == self.caller.organization
                       for e in resource.get("extension") or [])
        return self.is_party(resource_type, resource)

    def is_party(self, resource_type: str, resource: dict[str, Any]) -> bool:
        """True when the caller's Organization is a party (requester, owner, performer) of a referral."""
        for element in PARTY_ELEMENTS.get(resource_type, ()):
            value = resource.get(element)
            for ref in value if isinstance(value, list) else [value]:
                if isinstance(ref, dict) and _local(ref.get("reference")) == self.caller.organization:
                    return True
        return False


def is_topic_basic(resource: dict[str, Any] | None) -> bool:
    """True when a Basic's ``code`` is the one of the server-written subscription topics."""
    code = resource.get("code") if isinstance(resource, dict) else None
    codings = code.get("coding") if isinstance(code, dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and (c.get("system"), c.get("code")) == TOPIC_BASIC_CODE for c in codings)


def _local(reference: Any) -> str | None:
    """``Type/id`` of a relative reference (absolute ones point elsewhere and never make a party)."""
    if not isinstance(reference, str) or "://" in reference:
        return None
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None
