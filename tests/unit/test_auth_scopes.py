"""SMART scope parsing (v1 and v2) and granting (requested ∩ registered)."""

from __future__ import annotations

import pytest

from fhir_clr.auth.scopes import ScopeError, ScopeSet, grant, parse_scope


def test_v2_letters_and_v1_actions() -> None:
    assert parse_scope("system/Task.rs").letters == frozenset("rs")
    assert parse_scope("system/*.cruds").allows("Patient", "d")
    assert parse_scope("system/Task.read").letters == frozenset("rs")
    assert parse_scope("system/*.write").letters == frozenset("cud")
    assert parse_scope("system/Task.*").letters == frozenset("cruds")
    assert not parse_scope("system/Task.rs").allows("Patient", "r")


@pytest.mark.parametrize("text", ["user/Task.rs", "patient/*.read", "system/Task.sr", "system/Task.rx",
                                  "system/Task.", "system/Task.rs?status=ready", "system/.rs", "Task.rs"])
def test_rejected_scopes(text: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(text)


def test_grant_is_the_intersection() -> None:
    allowed = ["system/Task.cruds", "system/Patient.rs"]
    assert grant("system/Task.rs system/Patient.rs system/Consent.rs", allowed).granted == (
        "system/Task.rs", "system/Patient.rs")
    assert grant("system/Patient.cruds", allowed).granted == ()
    assert grant("system/*.rs", allowed).granted == ()
    assert grant("system/*.rs", ["system/*.read"]).granted == ("system/*.rs",)
    assert grant("system/Task.read", ["system/*.cruds"]).granted == ("system/Task.read",)


def test_scope_set_checks_each_interaction() -> None:
    scopes = ScopeSet.from_strings(["system/Task.rs", "system/Patient.c"])
    assert scopes.allows("Task", "s") and not scopes.allows("Task", "u")
    assert scopes.allows("Patient", "c") and not scopes.allows("Patient", "r")
    assert scopes.text() == "system/Task.rs system/Patient.c"
