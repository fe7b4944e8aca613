"""Notice templates: Jinja2 files in the notices directory (the repository's ``notices/``, replaceable by a plan
with ``FHIR_CLR_NOTICES_DIR``), one per notice kind and channel: ``<kind>.<channel>.j2``, else ``<kind>.j2``.

Templates render in a sandboxed environment with ``StrictUndefined`` and see only the fields of
:class:`~fhir_clr.notices.fields.NoticeFields`; loading refuses a template that names any other variable, so a
template cannot reach content outside the minimum-necessary set. An email or FHIR template may start with a
``Subject: …`` line (the message subject); the rest is the body, exactly what is sent and recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fhir_clr.notices.fields import FIELD_NAMES, NoticeFields

DIGEST_TEMPLATE = "digest"
"""The template (``digest.email.j2``) wrapping the entries of a monthly digest."""
DIGEST_VARIABLES = frozenset({"entries", "recipient_name", "digest_date", "plan_name", "plan_phone", "plan_email"})


class TemplateError(ValueError):
    """A notice template that cannot be used (named in the message; never rendered content)."""


@dataclass(frozen=True, slots=True)
class RenderedNotice:
    """A composed notice: its subject and its text body."""

    subject: str
    body: str


class NoticeTemplates:
    """The notice templates of one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = ImmutableSandboxedEnvironment(loader=FileSystemLoader(str(directory)), undefined=StrictUndefined,
                                                 autoescape=False, keep_trailing_newline=False)
        self._names: dict[str, tuple[str, frozenset[str]]] = {}

    def check(self) -> None:
        """Refuse (TemplateError) any template in the directory that uses a name outside its allowed set."""
        for path in sorted(self.directory.glob("*.j2")):
            allowed = DIGEST_VARIABLES if path.name.startswith(f"{DIGEST_TEMPLATE}.") else FIELD_NAMES
            unknown = self.names_used(path.name) - allowed
            if unknown:
                raise TemplateError(f"notice template {path.name} uses {', '.join(sorted(unknown))}, which is not "
                                    "among the minimum-necessary notice fields")

    def names_used(self, name: str) -> set[str]:
        """The free variables the template ``name`` refers to (parsed once per version of the file)."""
        source, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
        known = self._names.get(name)
        if known is None or known[0] != source:
            known = (source, frozenset(meta.find_undeclared_variables(self.env.parse(source))))
            self._names[name] = known
        return set(known[1])

    def template_name(self, kind: str, channel: str) -> str | None:
        """The file that composes ``kind`` for ``channel`` (None when there is none)."""
        for name in (f"{kind}.{channel}.j2", f"{kind}.j2"):
            if (self.directory / name).is_file():
                return name
        return None

    def render(self, kind: str, channel: str, fields: NoticeFields) -> RenderedNotice:
        """The notice ``kind`` for ``channel`` composed from ``fields`` (TemplateError when no template)."""
        name = self.template_name(kind, channel)
        if name is None:
            raise TemplateError(f"no notice template for {kind} by {channel}")
        return self._render(name, fields.variables(), fields.notice_title)

    def render_digest(self, variables: dict[str, Any]) -> RenderedNotice:
        """The digest message wrapping ``variables['entries']`` (each a composed entry's body)."""
        name = f"{DIGEST_TEMPLATE}.email.j2"
        return self._render(name, variables, "Referral loop-closure notices")

    def _render(self, name: str, variables: dict[str, Any], default_subject: str) -> RenderedNotice:
        unknown = self.names_used(name) - (DIGEST_VARIABLES if name.startswith(f"{DIGEST_TEMPLATE}.") else FIELD_NAMES)
        if unknown:
            raise TemplateError(f"notice template {name} uses names outside the notice fields")
        try:
            text = self.env.get_template(name).render(**variables)
        except TemplateNotFound:
            raise TemplateError(f"notice template {name} is missing") from None
        lines = text.strip().splitlines()
        if lines and lines[0].lower().startswith("subject:"):
            return RenderedNotice(lines[0].split(":", 1)[1].strip(), "\n".join(lines[1:]).strip() + "\n")
        return RenderedNotice(default_subject, text.strip() + "\n")
