"""SMART system scopes, v1 (``system/Task.read``) and v2 (``system/Task.rs``).

Local policy: only ``system/`` scopes are granted (backend services have no user or patient context); v2
letters must be a subset of ``cruds`` in that order, anything else is rejected; a v2 ``?param=value`` query
restriction is *not* applied as a filter, so a scope carrying one is refused at token time rather than
silently widened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LETTERS = "cruds"
V1_ACTIONS = {"read": "rs", "write": "cud", "*": "cruds"}


class ScopeError(ValueError):
    """A scope string this server does not accept."""


@dataclass(frozen=True, slots=True)
class Scope:
    """One parsed scope: a resource type (or ``*``) and the interactions (letters of ``cruds``) it allows."""

    resource_type: str
    letters: frozenset[str]

    def allows(self, resource_type: str, letter: str) -> bool:
        """True when this scope covers ``letter`` on ``resource_type``."""
        return letter in self.letters and self.resource_type in ("*", resource_type)


def parse_scope(text: str) -> Scope:
    """Parse one ``system/<Type|*>.<action>`` scope (v1 action or v2 letters); ScopeError otherwise."""
    context, slash, rest = text.partition("/")
    if context != "system" or not slash:
        raise ScopeError(f"only system/ scopes are supported: {text!r}")
    resource_type, dot, action = rest.partition(".")
    if not dot or not resource_type or not (resource_type == "*" or resource_type.isalpha()):
        raise ScopeError(f"malformed scope: {text!r}")
    if "?" in action:
        raise ScopeError(f"scopes with query restrictions are not supported: {text!r}")
    if action in V1_ACTIONS:
        return Scope(resource_type, frozenset(V1_ACTIONS[action]))
    if not action or any(c not in LETTERS for c in action) or "".join(c for c in LETTERS if c in action) != action:
        raise ScopeError(f"scope action must be read, write, * or letters of 'cruds' in order: {text!r}")
    return Scope(resource_type, frozenset(action))


@dataclass(frozen=True, slots=True)
class ScopeSet:
    """The scopes of one access token, kept as the strings granted and their parsed form."""

    granted: tuple[str, ...]
    parsed: tuple[Scope, ...]

    @classmethod
    def from_strings(cls, scopes: Iterable[str]) -> ScopeSet:
        """Parse scopes (ScopeError on the first invalid one)."""
        granted = tuple(dict.fromkeys(s for s in scopes if s))
        return cls(granted, tuple(parse_scope(s) for s in granted))

    def allows(self, resource_type: str, letter: str) -> bool:
        """True when some scope covers ``letter`` (one of ``cruds``) on ``resource_type``."""
        return any(scope.allows(resource_type, letter) for scope in self.parsed)

    def text(self) -> str:
        """The space-separated scope string."""
        return " ".join(self.granted)


def grant(requested: str, allowed: Iterable[str]) -> ScopeSet:
    """Scopes granted for a token request: each requested scope is kept when a registered scope covers all of
    its interactions on its type. ScopeError for malformed requests; an empty result is the caller's to refuse."""
    ceiling = ScopeSet.from_strings(allowed)
    kept = []
    for text in requested.split():
        scope = parse_scope(text)
        if all(_covered(ceiling, scope, letter) for letter in scope.letters):
            kept.append(text)
    return ScopeSet.from_strings(kept)


def _covered(ceiling: ScopeSet, scope: Scope, letter: str) -> bool:
    if scope.resource_type == "*":
        return any(c.resource_type == "*" and letter in c.letters for c in ceiling.parsed)
    return ceiling.allows(scope.resource_type, letter)
