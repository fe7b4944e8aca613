"""What counts as a leak and what counts as "answers alike".

* A **leak** is any of A's secrets (the run's marker prefix, A's Members' CINs and names) in a response's
  body or headers that B did not send itself (a CIN B put in its own query may come back in a self link).
  Failure messages name the marker found, never the resource around it.
* Two answers are **alike** when status, the headers that carry meaning and the body are the same once the
  ids (the probed one, every uuid-shaped id, every job id), timestamps and version numbers are replaced by
  placeholders: a caller must not be able to tell a resource it may not see from one that does not exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from tests.security.world import MARKER

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b")
INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?|\b\d{2}:\d{2}(:\d{2})?\b")
VERSION = re.compile(r'("versionId"\s*:\s*")\d+"|W/\\?"\d+\\?"|(_history/)\d+')
DIGEST = re.compile(r"\b[0-9a-f]{64}\b")
"""A SHA-256 in hex: of the probe's own file, which differs between the two probes by construction."""
NUMBER_AFTER_TIME = re.compile(r"\b\d+(\.\d+)? ?ms\b|(?<=\"seconds\":)\d+(\.\d+)?")
MEANINGFUL_HEADERS = ("content-type", "location", "content-location", "etag", "last-modified", "www-authenticate",
                      "retry-after", "x-progress", "content-disposition")
MARKER_FOUND = re.compile(re.escape(MARKER) + r"[\w.-]*")
CIN_SHAPE = re.compile(r"\b\d{8}[A-Z]\b")


@dataclass
class Exchange:
    """One request B sent and the answer it got, with a label saying which probe it was."""

    label: str
    response: httpx.Response
    request: httpx.Request | None = None
    """The request B sent, when ``response`` is a part of a bigger answer (a Bundle entry)."""

    @property
    def sent(self) -> str:
        """Everything B itself sent (URL and body), to tell an echo from a leak."""
        request = self.request or self.response.request
        body = request.content.decode("utf-8", "replace") if request.content else ""
        return f"{request.url}\n{httpx.URL(str(request.url)).params}\n{body}"

    @property
    def text(self) -> str:
        """Headers and body as text."""
        headers = "\n".join(f"{k}: {v}" for k, v in self.response.headers.items())
        return f"{headers}\n\n{self.response.content.decode('utf-8', 'replace')}"


def leaks(exchange: Exchange, secrets: list[str]) -> list[str]:
    """The secrets found in ``exchange``'s answer (the full marker names for markers)."""
    text, sent = exchange.text, exchange.sent
    found = sorted({m for m in MARKER_FOUND.findall(text) if m not in sent})
    found += [s for s in secrets if s and s != MARKER and s in text and s not in sent and not s.startswith(MARKER)]
    return found


def leak_report(exchange: Exchange, secrets: list[str]) -> list[str]:
    """Failure lines for what ``exchange`` leaked (empty when nothing did)."""
    found = leaks(exchange, secrets)
    return [f"{exchange.label}: HTTP {exchange.response.status_code} leaks {', '.join(found)}"] if found else []


def normalised(response: httpx.Response, ids: tuple[str, ...] = ()) -> tuple[int, tuple[tuple[str, str], ...], str]:
    """Status, meaningful headers and body with ids, instants and versions replaced by placeholders."""
    def clean(text: str) -> str:
        for probed in sorted((i for i in ids if i), key=len, reverse=True):
            text = text.replace(probed, "<id>")
        text = DIGEST.sub("<sha256>", text)
        text = UUID.sub("<id>", text)
        text = VERSION.sub(lambda m: f"{m.group(1) or m.group(2) or ''}<v>", text)
        text = NUMBER_AFTER_TIME.sub("<ms>", text)
        return INSTANT.sub("<time>", text)

    headers = tuple((name, clean(response.headers[name])) for name in MEANINGFUL_HEADERS if name in response.headers)
    return response.status_code, headers, clean(response.content.decode("utf-8", "replace"))


def difference(hidden: Exchange, absent: Exchange, hidden_ids: tuple[str, ...],
               absent_ids: tuple[str, ...]) -> list[str]:
    """A failure line when ``hidden`` (about something B may not see) does not answer like ``absent`` (about
    something that does not exist); empty when alike."""
    seen, expected = normalised(hidden.response, hidden_ids), normalised(absent.response, absent_ids)
    if seen == expected:
        return []
    if seen[0] != expected[0]:
        what = f"status {seen[0]} vs {expected[0]}"
    elif seen[1] != expected[1]:
        what = f"headers {dict(seen[1])} vs {dict(expected[1])}"
    else:
        what = f"bodies differ: {_first_difference(seen[2], expected[2])}"
    return [f"{hidden.label} vs {absent.label}: {what}"]


def _first_difference(left: str, right: str) -> str:
    """A short excerpt around where two normalised bodies first differ (markers masked)."""
    at = next((i for i, (x, y) in enumerate(zip(left, right, strict=False)) if x != y), min(len(left), len(right)))
    start = max(0, at - 40)
    excerpt = lambda s: CIN_SHAPE.sub("<CIN>", MARKER_FOUND.sub("<MARKER>", s[start:at + 60]))  # noqa: E731
    return f"…{excerpt(left)!r} vs …{excerpt(right)!r}"


def assert_clean(failures: list[str]) -> None:
    """Fail with every collected failure line."""
    assert not failures, f"{len(failures)} problem(s):\n" + "\n".join(failures[:60]) + (
        f"\n… and {len(failures) - 60} more" if len(failures) > 60 else "")
