"""Topic-based subscriptions (R4 Subscriptions Backport IG): filter criteria matched in memory."""
