"""Access tokens and the replay cache, without a server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from fhir_clr.auth import tokens
from fhir_clr.auth.authstore import SqliteAuthStore
from fhir_clr.auth.clients import ClientRecord, Role
from fhir_clr.auth.scopes import ScopeSet
from fhir_clr.auth.signing import load_or_create_key
from fhir_clr.auth.tokens import SESSION_TYPE, Caller, InvalidToken, TokenService

CALLER = Caller("app", "Organization/a", Role.SERVICING_PROVIDER, ScopeSet.from_strings(["system/Task.rs"]))


def test_token_round_trip_and_refusals(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path / "key.json")
    assert load_or_create_key(tmp_path / "key.json").kid == key.kid
    assert (tmp_path / "key.json").stat().st_mode & 0o077 == 0
    service = TokenService(key, "urn:test", lifetime=3600)
    assert service.lifetime == 300
    assert service.verify(service.issue(CALLER)) == CALLER
    other = TokenService(ECKey.generate_key("P-384", auto_kid=True), "urn:test")
    with pytest.raises(InvalidToken):
        service.verify(other.issue(CALLER))
    with pytest.raises(InvalidToken):
        TokenService(key, "urn:elsewhere").verify(service.issue(CALLER))
    expired = TokenService(key, "urn:test", lifetime=300, leeway=0)
    token = expired.issue(CALLER)
    expired.lifetime = -10
    with pytest.raises(InvalidToken):
        expired.verify(expired.issue(CALLER))
    assert expired.verify(token) == CALLER


async def test_replay_cache_and_registry(tmp_path: Path) -> None:
    store = SqliteAuthStore(tmp_path / "auth.sqlite3")
    await store.open()
    assert await store.claim_jti("k1", time.time() + 60)
    assert not await store.claim_jti("k1", time.time() + 60)
    assert await store.claim_jti("k2", time.time() - 1)
    assert await store.claim_jti("k3", time.time() + 60)
    assert await store.claim_jti("k2", time.time() + 60)  # the expired claim was swept
    record = ClientRecord("app", "App", "Organization/a", Role.PLAN, ("system/*.rs",), jwks={"keys": []})
    await store.put_client(record)
    assert await store.get_client("app") == record
    assert [r.client_id for r in await store.list_clients()] == ["app"]
    with pytest.raises(ValueError):
        ClientRecord("bad id", "x", "Organization/a", Role.PLAN, (), jwks={"keys": []})
    with pytest.raises(ValueError):
        ClientRecord("app", "x", "Patient/a", Role.PLAN, (), jwks={"keys": []})


def test_a_cached_verification_ends_when_the_token_expires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    service = TokenService(load_or_create_key(tmp_path / "key.json"), "urn:test", lifetime=60, leeway=5)
    token = service.issue(CALLER)
    assert service.verify(token) == CALLER  # verified once, now cached
    issued = time.time()
    monkeypatch.setattr(time, "time", lambda: issued + 60 + 4)
    assert service.verify(token) == CALLER  # within the leeway
    monkeypatch.setattr(time, "time", lambda: issued + 60 + 7)
    with pytest.raises(InvalidToken):
        service.verify(token)  # past exp + leeway: refused although cached
    with pytest.raises(InvalidToken):
        service.verify(token)


def test_the_cache_answers_only_the_exact_token_of_its_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    service = TokenService(load_or_create_key(tmp_path / "key.json"), "urn:test")
    token = service.issue(CALLER)
    assert service.verify(token) == CALLER
    head, payload, signature = token.split(".")
    forged = ".".join((head, payload, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")))
    with pytest.raises(InvalidToken):
        service.verify(forged)
    with pytest.raises(InvalidToken):
        service.verify(token, SESSION_TYPE)  # an access token never passes as a console session
    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 3)
    for _ in range(5):
        service.verify(service.issue(CALLER))
    assert len(service._verified) <= 3
