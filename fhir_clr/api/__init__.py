"""HTTP layer: FHIR REST routes, content negotiation, responses."""
