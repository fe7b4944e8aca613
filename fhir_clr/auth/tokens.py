"""Access tokens: self-contained JWTs signed by the server (ES384), carrying the client, its organization and
role, and the granted scopes. No refresh tokens."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from fhir_clr.auth.clients import Role
from fhir_clr.auth.scopes import ScopeError, ScopeSet
from fhir_clr.auth.signing import SIGNING_ALG

TOKEN_TYPE = "at+jwt"
SESSION_TYPE = "console-session+jwt"
"""A staff console session, issued at sign-in in exchange for a valid access token; never an access token."""
VERIFIED_CACHE_SIZE = 10_000
"""Verified tokens remembered (by digest) until they expire, so a signature is checked once per token."""


class InvalidToken(Exception):
    """The bearer token is malformed, forged, expired or not for this server."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the authenticated client, the Organization it acts for, its role and granted scopes."""

    client_id: str
    organization: str
    role: Role
    scopes: ScopeSet


class TokenService:
    """Issues and verifies access tokens with one signing key."""

    def __init__(self, key: ECKey, issuer: str, *, lifetime: int = 300, leeway: int = 5) -> None:
        self.key = key
        self.issuer = issuer
        self.lifetime = min(lifetime, 300)
        self.leeway = leeway
        self._verified: dict[bytes, tuple[Caller, int]] = {}

    def issue(self, caller: Caller, *, lifetime: int | None = None, token_type: str = TOKEN_TYPE) -> str:
        """A signed token for ``caller``: an access token valid for ``lifetime`` seconds, or with
        ``token_type=SESSION_TYPE`` a console session (``lifetime`` given by the caller)."""
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": caller.client_id, "client_id": caller.client_id,
                  "org": caller.organization, "role": caller.role.value, "scope": caller.scopes.text(),
                  "iat": now, "exp": now + (lifetime if lifetime is not None else self.lifetime),
                  "jti": uuid.uuid4().hex}
        return jwt.encode({"alg": SIGNING_ALG, "kid": self.key.kid, "typ": token_type}, claims, self.key,
                          algorithms=[SIGNING_ALG])

    def verify(self, token: str, token_type: str = TOKEN_TYPE) -> Caller:
        """The caller of a valid token of ``token_type``; InvalidToken otherwise (the reason is not told to the
        client). A console session never passes as an access token, nor the reverse."""
        digest = hashlib.sha256(token_type.encode() + b" " + token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None and known[1] + self.leeway >= time.time():
            return known[0]
        caller, exp = self._verify_signed(token, token_type)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[digest] = (caller, exp)
        return caller

    def _verify_signed(self, token: str, token_type: str) -> tuple[Caller, int]:
        try:
            decoded = jwt.decode(token, self.key, algorithms=[SIGNING_ALG])
        except (JoseError, ValueError, TypeError):
            raise InvalidToken("signature") from None
        claims = decoded.claims
        if decoded.header.get("typ") != token_type or claims.get("iss") != self.issuer:
            raise InvalidToken("issuer")
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp + self.leeway < time.time():
            raise InvalidToken("expired")
        try:
            return Caller(client_id=str(claims["client_id"]), organization=str(claims["org"]),
                          role=Role(claims["role"]), scopes=ScopeSet.from_strings(str(claims["scope"]).split())), exp
        except (KeyError, ValueError, ScopeError):
            raise InvalidToken("claims") from None
