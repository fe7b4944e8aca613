"""Opaque keyset paging tokens, usable by any store adapter.

A token is base64url(orjson([fingerprint, payload])). The fingerprint ties it to the request that produced
it, so a token replayed against another query is refused with ``InvalidPageToken``. Tokens are positions,
not secrets: forging one only moves the caller within results it may already see.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import orjson

from fhir_clr.store.port import InvalidPageToken


def fingerprint(*parts: object) -> str:
    """A short stable digest of the parts' reprs (the query or history scope a token belongs to)."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def encode_token(fp: str, payload: list[Any]) -> str:
    """An opaque token carrying ``payload`` for the request fingerprinted ``fp``."""
    return base64.urlsafe_b64encode(orjson.dumps([fp, payload])).rstrip(b"=").decode("ascii")


def decode_token(token: str, fp: str) -> list[Any]:
    """The payload of ``token``; InvalidPageToken when it is malformed or belongs to another request."""
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidPageToken("malformed paging token") from None
    if (not isinstance(decoded, list) or len(decoded) != 2 or decoded[0] != fp
            or not isinstance(decoded[1], list)):
        raise InvalidPageToken("the paging token belongs to another request")
    return decoded[1]
