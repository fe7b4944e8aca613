"""Topic-based subscriptions (FHIR R4 Subscriptions Backport IG): topics, filter criteria matched in memory,
negotiation of Subscription resources, the outbox → numbered events pipeline, and reliable rest-hook delivery."""
