"""The complexity budget of JSON request bodies: how many JSON values (keys included) and strings one body may
hold, checked before the body becomes Python objects and long before model validation, which costs about
0.7 KB of memory per value (1.4 million tiny strings in 8 MB took a server past 1 GB).

The check runs on the raw bytes. A body shorter than the budget cannot exceed it (every value takes at least
a byte, every string two): ordinary bodies cost nothing. Longer ones are counted at C speed (``bytes.count``),
which decides almost every body on its own:

* quotes give the number of strings exactly, up to escaped quotes (``\\"``) — so a lower and an upper bound;
* commas, colons and opening brackets give an upper bound on the values (a lower bound too when the body has no
  strings, since then none of them can sit inside a string).

A body whose lower bound is over the budget is refused without being parsed; one whose upper bounds fit is
parsed as usual. Only a body in between (many commas or brackets inside its strings, e.g. long prose) is
counted exactly on the parsed tree, still before validation. Nesting depth is limited by ``parse_json_object``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from fhir_clr.engine.content import parse_json_object
from fhir_clr.errors import FhirError


@dataclass(frozen=True, slots=True)
class BodyBudget:
    """The most values and strings one JSON request body may hold."""

    max_elements: int
    max_strings: int

    def parse(self, raw: bytes, what: str = "request body") -> dict[str, Any]:
        """``raw`` parsed as a JSON object; FhirError 413 when it holds more than the budget, 400 when it is
        not valid JSON (see ``parse_json_object``)."""
        within = self.check_bytes(raw, what)
        value = parse_json_object(raw, what)
        if not within:
            self.check_tree(value, what)
        return value

    def check_bytes(self, raw: bytes, what: str = "request body") -> bool:
        """Refuse (413) a body whose byte counts prove it over budget; True when they prove it within budget,
        False when only ``check_tree`` on the parsed body can tell."""
        if len(raw) <= self.max_elements and len(raw) // 2 <= self.max_strings:
            return True  # every value takes a byte and every string two: nothing to count (ordinary bodies)
        quotes = raw.count(b'"')
        strings_low = (quotes - raw.count(b'\\"')) // 2 if quotes else 0
        if strings_low > self.max_strings:
            raise self._over(f"more than {self.max_strings} strings", what)
        separators = raw.count(b",") + raw.count(b":")
        elements_high = separators + raw.count(b"{") + raw.count(b"[") + 1
        elements_low = strings_low if quotes else separators + 1
        if elements_low > self.max_elements:
            raise self._over(f"more than {self.max_elements} values", what)
        return quotes // 2 <= self.max_strings and elements_high <= self.max_elements

    def check_tree(self, value: Any, what: str = "request body") -> None:
        """Count the values and strings of a parsed body, refusing (413) as soon as one is over budget."""
        elements, strings = 1, int(isinstance(value, str))
        stack = [value] if isinstance(value, dict | list) else []
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                elements += 2 * len(node)
                strings += len(node)
                children: Iterable[Any] = node.values()
            else:
                elements += len(node)
                children = node
            for child in children:
                if isinstance(child, str):
                    strings += 1
                elif isinstance(child, dict | list):
                    stack.append(child)
            if strings > self.max_strings:
                raise self._over(f"more than {self.max_strings} strings", what)
            if elements > self.max_elements:
                raise self._over(f"more than {self.max_elements} values", what)

    @staticmethod
    def _over(limit: str, what: str) -> FhirError:
        return FhirError(413, "too-costly", f"The {what} holds {limit} (JSON values and strings, keys "
                         "included); send it in smaller parts")


def body_budget(request: Request) -> BodyBudget:
    """The budget configured for the app serving ``request``."""
    settings = request.app.state.services.settings
    return BodyBudget(settings.max_body_elements, settings.max_body_strings)
