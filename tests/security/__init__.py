"""The cross-organization attacker's suite (issue 17): provider B probes every route, operation and Bundle
entry of a secured server for provider A's data."""
