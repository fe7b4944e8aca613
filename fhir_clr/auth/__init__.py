"""Security: SMART Backend Services (token endpoint, client registry, access tokens), per-organization access
policy, audit trail and HTTP hardening."""
