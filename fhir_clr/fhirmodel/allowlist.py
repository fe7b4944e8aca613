"""The R4 resource types this server serves (an explicit allow-list: fhir.resources R4B models also know
R4B-only types such as SubscriptionTopic, which must not appear on an R4 endpoint)."""

from __future__ import annotations

CLINICAL_AND_WORKFLOW_TYPES: tuple[str, ...] = (
    "Patient", "Organization", "Practitioner", "PractitionerRole", "RelatedPerson", "HealthcareService",
    "Location", "Endpoint", "ServiceRequest", "Task", "Communication", "CommunicationRequest", "Consent",
    "Coverage", "Condition", "Goal", "Observation", "Procedure", "Questionnaire", "QuestionnaireResponse",
    "DocumentReference", "Group", "CareTeam", "CarePlan", "Provenance", "AuditEvent", "Binary", "Device",
    "Encounter", "EpisodeOfCare", "Subscription", "Basic", "List",
)

CONFORMANCE_TYPES: tuple[str, ...] = (
    "StructureDefinition", "CodeSystem", "ValueSet", "SearchParameter", "CapabilityStatement",
    "OperationDefinition", "ImplementationGuide", "ConceptMap",
)

R4_RESOURCE_TYPES: frozenset[str] = frozenset(CLINICAL_AND_WORKFLOW_TYPES + CONFORMANCE_TYPES)
"""Types with REST endpoints (read/write/search/history)."""

R4_NON_STORED_TYPES: frozenset[str] = frozenset({"Bundle", "Parameters", "OperationOutcome"})
"""Types that appear in requests/responses but have no REST endpoint of their own."""


def is_served_type(resource_type: str) -> bool:
    """True when ``resource_type`` has a REST endpoint on this server."""
    return resource_type in R4_RESOURCE_TYPES
