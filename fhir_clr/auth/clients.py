"""Registered backend-services clients: who they are, how they prove it (JWKS), what they may ask for, and
which Organization (and role) they act for."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from fhir_clr.auth.scopes import ScopeSet

CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
ORGANIZATION_REF = re.compile(r"^Organization/[A-Za-z0-9\-.]{1,64}$")


class Role(StrEnum):
    """What an organization is in the referral loop; decides what its clients see (see ``policy``)."""

    PLAN = "plan"
    SERVICING_PROVIDER = "servicing-provider"
    REFERRING_ENTITY = "referring-entity"


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """One registered client. Exactly one of ``jwks`` (inline key set) and ``jwks_url`` is set."""

    client_id: str
    name: str
    organization: str
    role: Role
    scopes: tuple[str, ...]
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    enabled: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not CLIENT_ID.match(self.client_id):
            raise ValueError("client_id must be 1-128 characters of A-Z a-z 0-9 . _ ~ -")
        if not ORGANIZATION_REF.match(self.organization):
            raise ValueError("organization must be a local reference Organization/<id>")
        if (self.jwks is None) == (self.jwks_url is None):
            raise ValueError("give exactly one of an inline JWKS and a JWKS URL")
        if self.jwks is not None and not isinstance(self.jwks.get("keys"), list):
            raise ValueError("the JWKS must be an object with a 'keys' array")
        if self.jwks_url is not None and not self.jwks_url.startswith(("https://", "http://")):
            raise ValueError("the JWKS URL must be http(s)")
        ScopeSet.from_strings(self.scopes)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (for persistence and ``clients list``)."""
        data = asdict(self)
        data["role"] = self.role.value
        data["scopes"] = list(self.scopes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClientRecord:
        """Inverse of ``to_json``."""
        return cls(client_id=data["client_id"], name=data.get("name", ""), organization=data["organization"],
                   role=Role(data["role"]), scopes=tuple(data.get("scopes", ())), jwks=data.get("jwks"),
                   jwks_url=data.get("jwks_url"), enabled=bool(data.get("enabled", True)),
                   extra=data.get("extra") or {})
