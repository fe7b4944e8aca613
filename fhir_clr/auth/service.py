"""The authorization server and resource-server objects of a running app, built at start-up."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir_clr.auth.assertion import AssertionVerifier
from fhir_clr.auth.audit import AuditTrail
from fhir_clr.auth.authstore import AuthStore, build_auth_store
from fhir_clr.auth.clients import ClientRecord
from fhir_clr.auth.jwks import JwksResolver
from fhir_clr.auth.ratelimit import RateLimiter
from fhir_clr.auth.signing import load_or_create_key
from fhir_clr.auth.tokens import TokenService
from fhir_clr.config import Settings
from fhir_clr.outbound.policy import EndpointPolicy
from fhir_clr.store.factory import build_log_store

CLIENT_RECHECK_SECONDS = 5.0
"""How long a client's enabled flag is cached by the resource server (a disable takes effect within this)."""


@dataclass
class AuthServices:
    """Everything the token endpoint and the security middleware use."""

    store: AuthStore
    verifier: AssertionVerifier
    tokens: TokenService
    limiter: RateLimiter
    """Requests per client at the resource server."""
    token_clients: RateLimiter
    """Tokens issued per client."""
    token_sources: RateLimiter
    """Token requests per remote address (charged before anything is parsed)."""
    audit: AuditTrail
    _enabled: dict[str, tuple[float, bool]] = field(default_factory=dict)

    async def client_enabled(self, client_id: str) -> bool:
        """True while the client is registered and enabled (cached for a few seconds)."""
        now = time.monotonic()
        cached = self._enabled.get(client_id)
        if cached and cached[0] > now:
            return cached[1]
        record: ClientRecord | None = await self.store.get_client(client_id)
        enabled = record is not None and record.enabled
        self._enabled[client_id] = (now + CLIENT_RECHECK_SECONDS, enabled)
        return enabled

    async def close(self) -> None:
        """Flush the audit trail and release the auth store."""
        await self.audit.stop()
        await self.store.close()


def signing_key_path(settings: Settings) -> Path:
    """The configured signing key file, or ``auth-signing-key.json`` in the data directory."""
    return settings.auth_signing_key or settings.data_dir / "auth-signing-key.json"


async def build_auth(settings: Settings, store: Any) -> AuthServices:
    """Open the auth store, load (or create) the signing key and start the audit writer (on the log store of
    ``build_log_store``, else on ``store``)."""
    auth_store = build_auth_store(settings.data_dir, store)
    await auth_store.open()
    key = load_or_create_key(signing_key_path(settings))
    issuer = (settings.base_url or "urn:fhir-clr").rstrip("/")
    log_store = build_log_store(settings)
    if log_store is not None:
        await log_store.open()
    audit = AuditTrail(log_store or store, owns_store=log_store is not None)
    audit.start()
    resolver = JwksResolver(min_refetch=settings.jwks_min_refetch_seconds,
                            policy=EndpointPolicy.from_entries(settings.webhook_allowed_hosts.split(",")))
    return AuthServices(store=auth_store, verifier=AssertionVerifier(auth_store, resolver),
                        tokens=TokenService(key, issuer, lifetime=settings.access_token_lifetime),
                        limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
                        token_clients=RateLimiter.per_minute(settings.token_rate_per_minute,
                                                             settings.token_rate_burst),
                        token_sources=RateLimiter.per_minute(settings.token_source_rate_per_minute,
                                                             settings.token_source_rate_burst),
                        audit=audit)
