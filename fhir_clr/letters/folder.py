"""The plan's letters folder (``notices/letters/`` by default, ``FHIR_CLR_LETTERS_DIR``): ``letters.yaml`` names
the letter template, the plan's contact details and the enclosures (PDF files) that follow each letter."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from fhir_clr.config import ConfigurationError

CONFIG_FILE = "letters.yaml"


@dataclass(frozen=True, slots=True)
class Enclosure:
    """One enclosure: its title (listed in the letter), its PDF bytes and the decisions it goes with (empty:
    every decision)."""

    title: str
    pdf: bytes
    decisions: frozenset[str]

    def goes_with(self, decision: str) -> bool:
        """True when this enclosure follows a letter about ``decision`` (an authorization-status code)."""
        return not self.decisions or decision in self.decisions


@dataclass(frozen=True, slots=True)
class PlanContact:
    """How the letter tells the Member to reach the plan."""

    name: str
    phone: str
    hours: str
    address: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LetterFont:
    """A TrueType font family for letters in any script (Chinese, Vietnamese, Russian…): regular and bold."""

    regular: Path
    bold: Path


@dataclass(frozen=True, slots=True)
class LettersFolder:
    """The loaded letters folder."""

    directory: Path
    template: str
    plan: PlanContact
    enclosures: tuple[Enclosure, ...]
    font: LetterFont | None = None
    """None: the PDF core font (Latin-1 only)."""

    @classmethod
    def load(cls, directory: Path) -> LettersFolder:
        """Read ``directory``; ConfigurationError (one line naming the file and the key) when it cannot serve."""
        path = directory / CONFIG_FILE
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise ConfigurationError(f"{path}: cannot read the letters configuration ({type(error).__name__})") \
                from None
        if not isinstance(data, dict):
            raise ConfigurationError(f"{path}: must be a mapping with template, plan and enclosures")
        template = _text(data, "template", path)
        if not (directory / template).is_file():
            raise ConfigurationError(f"{path}: template {template} is not a file in {directory}")
        plan = data.get("plan")
        if not isinstance(plan, dict):
            raise ConfigurationError(f"{path}: plan must be a mapping (name, phone, hours, address)")
        address = plan.get("address") or []
        if not isinstance(address, list) or not all(isinstance(line, str) for line in address):
            raise ConfigurationError(f"{path}: plan.address must be a list of lines")
        contact = PlanContact(_text(plan, "name", path, "plan."), _text(plan, "phone", path, "plan."),
                              _text(plan, "hours", path, "plan."), tuple(address))
        return cls(directory, template, contact, tuple(
            _enclosure(directory, path, index, item) for index, item in enumerate(data.get("enclosures") or [])),
            _font(directory, path, data.get("font")))

    def enclosures_for(self, decision: str) -> tuple[Enclosure, ...]:
        """The enclosures a letter about ``decision`` carries, in order."""
        return tuple(e for e in self.enclosures if e.goes_with(decision))


def _text(data: dict[str, Any], key: str, path: Path, prefix: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{path}: {prefix}{key} must be a non-empty string")
    return value


def _enclosure(directory: Path, path: Path, index: int, item: Any) -> Enclosure:
    where = f"{path}: enclosures[{index}]"
    if not isinstance(item, dict):
        raise ConfigurationError(f"{where} must be a mapping with title and file")
    title, file = _text(item, "title", path, f"enclosures[{index}]."), _text(item, "file", path,
                                                                            f"enclosures[{index}].")
    decisions = item.get("decisions") or []
    if not isinstance(decisions, list) or not all(isinstance(d, str) for d in decisions):
        raise ConfigurationError(f"{where}.decisions must be a list of authorization-status codes")
    try:
        pdf = (directory / file).read_bytes()
        PdfReader(io.BytesIO(pdf))
    except OSError:
        raise ConfigurationError(f"{where}.file {file} cannot be read") from None
    except PdfReadError:
        raise ConfigurationError(f"{where}.file {file} is not a PDF") from None
    return Enclosure(title, pdf, frozenset(decisions))


def _font(directory: Path, path: Path, item: Any) -> LetterFont | None:
    if item is None:
        return None
    if not isinstance(item, dict):
        raise ConfigurationError(f"{path}: font must be a mapping with regular and bold (TrueType files)")
    files = []
    for style in ("regular", "bold"):
        file = directory / _text(item, style, path, "font.")
        if not file.is_file():
            raise ConfigurationError(f"{path}: font.{style} {item[style]} is not a file")
        files.append(file)
    return LetterFont(*files)
