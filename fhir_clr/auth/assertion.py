"""Client authentication with ``private_key_jwt`` (RFC 7523 §3, SMART client-confidential-asymmetric)."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from fhir_clr.auth.authstore import AuthStore
from fhir_clr.auth.clients import ClientRecord
from fhir_clr.auth.jwks import KTY_FOR_ALG, JwksResolver, KeyLookupError

ASSERTION_ALGS = tuple(KTY_FOR_ALG)
MAX_LIFETIME = 300
CLOCK_SKEW = 30


NOT_VERIFIED = "the client assertion does not verify for an enabled, registered client"
"""The one answer for an unknown client, a disabled one, an unusable key and a bad signature, so that the
token endpoint does not tell which client ids exist."""


class ClientAuthError(Exception):
    """The client could not be authenticated (``invalid_client``); the message is safe to return, ``reason``
    (for the server log only) may say more."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


def _header(assertion: str) -> dict[str, Any]:
    try:
        encoded = assertion.split(".")[0]
        header = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, IndexError, orjson.JSONDecodeError):
        raise ClientAuthError("the client assertion is not a JWT") from None
    if not isinstance(header, dict):
        raise ClientAuthError("the client assertion is not a JWT")
    return header


class AssertionVerifier:
    """Checks a client assertion: algorithm, key, signature, ``iss``/``sub``/``aud``/``exp``/``jti``."""

    def __init__(self, store: AuthStore, resolver: JwksResolver) -> None:
        self.store = store
        self.resolver = resolver

    async def verify(self, assertion: str, audiences: set[str]) -> ClientRecord:
        """The registered, enabled client that signed ``assertion`` for one of ``audiences``."""
        header = _header(assertion)
        alg = header.get("alg")
        if alg not in ASSERTION_ALGS:
            raise ClientAuthError("the client assertion must be signed with RS384 or ES384")
        unverified = self._unverified_claims(assertion)
        client_id = unverified.get("iss")
        client = await self.store.get_client(client_id) if isinstance(client_id, str) else None
        if client is None or not client.enabled:
            raise ClientAuthError(NOT_VERIFIED, "unknown or disabled client")
        if "jku" in header and header["jku"] != client.jwks_url:
            raise ClientAuthError(NOT_VERIFIED, "the assertion's jku is not the client's registered JWKS URL")
        kid = header.get("kid")
        try:
            jwk = await self.resolver.key_for(client, alg, kid if isinstance(kid, str) else None)
            key = JWKRegistry.import_key(jwk)
            claims = jwt.decode(assertion, key, algorithms=[alg]).claims
        except KeyLookupError as missing:
            raise ClientAuthError(NOT_VERIFIED, str(missing)) from None
        except (JoseError, ValueError, TypeError):
            raise ClientAuthError(NOT_VERIFIED, "the signature does not verify") from None
        self._check_claims(claims, client.client_id, audiences)
        jti_key = hashlib.sha256(f"{client.client_id}\x00{claims['jti']}".encode()).hexdigest()
        if not await self.store.claim_jti(jti_key, float(claims["exp"]) + CLOCK_SKEW):
            raise ClientAuthError("the client assertion was already used (jti)")
        return client

    @staticmethod
    def _unverified_claims(assertion: str) -> dict[str, Any]:
        try:
            payload = assertion.split(".")[1]
            claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, IndexError, orjson.JSONDecodeError):
            raise ClientAuthError("the client assertion is not a JWT") from None
        if not isinstance(claims, dict):
            raise ClientAuthError("the client assertion is not a JWT")
        return claims

    @staticmethod
    def _check_claims(claims: dict[str, Any], client_id: str, audiences: set[str]) -> None:
        now = time.time()
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise ClientAuthError("iss and sub must both be the client_id")
        aud = claims.get("aud")
        aud_values = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a in audiences for a in aud_values):
            raise ClientAuthError("aud must be this server's token endpoint URL")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp + CLOCK_SKEW < now:
            raise ClientAuthError("the client assertion has expired or has no exp")
        if exp > now + MAX_LIFETIME + CLOCK_SKEW:
            raise ClientAuthError("the client assertion's exp is more than 5 minutes ahead")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf > now + CLOCK_SKEW:
            raise ClientAuthError("the client assertion is not valid yet")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise ClientAuthError("the client assertion needs a jti")
