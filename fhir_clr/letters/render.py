"""Letters to PDF: the plan's Jinja2 template (sandboxed, strict: it can reach the :class:`LetterFields` it is
given and nothing else) renders HTML, fpdf2 lays it out on US Letter pages, and pypdf appends the enclosures
and joins letters into one print file."""

from __future__ import annotations

import io
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from fpdf import FPDF
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pypdf import PdfReader, PdfWriter

from fhir_clr.config import ConfigurationError
from fhir_clr.letters.fields import LetterFields
from fhir_clr.letters.folder import Enclosure, LettersFolder

LETTER_FONT = "letter"
"""The family name the letters folder's own font is registered under."""
TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                            "\u2014": "-", "\u2026": "...", "\u00a0": " "})
SAMPLE_FIELDS = LetterFields("January 2, 2026", "Sample Member", ("1 Sample Street", "Sacramento, CA 95800"),
                             "Enhanced Care Management", "denied", "January 1, 2026", "Sample reason",
                             ("Sample notice text.",), "Sample plan", "1-800-555-0100", "Weekdays",
                             ("PO Box 0",), ("Your Rights",))
"""Fields the template is tried with at start-up, so a template naming a field that does not exist fails then."""
SAMPLE_DAY = date(2026, 1, 2)
RECENT_PRINT_FILES = 2
"""Print files kept in memory, keyed by everything they print, so that downloading an unchanged batch again
answers at once with the same bytes."""


@dataclass(frozen=True, slots=True)
class Letter:
    """One letter ready to print: its fields and the enclosures that follow it."""

    fields: LetterFields
    enclosures: tuple[Enclosure, ...]


def printable(text: str) -> str:
    """``text`` in the character set of the PDF core fonts (Latin-1), for a letters folder with no font of its own:
    typographic quotes and dashes become plain ones, accented letters stay, anything else becomes ``?``."""
    normalized = unicodedata.normalize("NFC", text).translate(TYPOGRAPHY)
    return normalized.encode("latin-1", "replace").decode("latin-1")


class LetterRenderer:
    """Renders the letters of one letters folder."""

    def __init__(self, folder: LettersFolder) -> None:
        self.folder = folder
        self._recent: OrderedDict[tuple[tuple[Letter, ...], date], bytes] = OrderedDict()
        self._recent_lock = threading.Lock()
        environment = SandboxedEnvironment(loader=FileSystemLoader(folder.directory), undefined=StrictUndefined,
                                           autoescape=True)
        try:
            self._template = environment.get_template(folder.template)
            self.html(SAMPLE_FIELDS)
        except (TemplateError, TypeError, ValueError) as error:  # rendered sample fields only: no PHI in it
            raise ConfigurationError(f"{folder.directory / folder.template}: the letter template cannot render "
                                     f"({type(error).__name__}: {error})") from None
        try:
            self.letter_pdf(SAMPLE_FIELDS, SAMPLE_DAY)
        except Exception as error:  # a font file fpdf2 cannot use, or HTML it cannot lay out
            raise ConfigurationError(f"{folder.directory}: the letter cannot be laid out as a PDF "
                                     f"({type(error).__name__})") from None

    def html(self, fields: LetterFields) -> str:
        """The letter as HTML (the template sees ``letter`` only)."""
        return self._template.render(letter=fields)

    def letter_pdf(self, fields: LetterFields, day: date) -> bytes:
        """The letter alone as a PDF (dated ``day`` in its metadata, so the same letter gives the same bytes)."""
        pdf = FPDF(format="letter")
        pdf.set_creation_date(datetime.combine(day, time.min, UTC))
        pdf.set_title("Notice of Action")
        pdf.set_margins(25, 20, 25)
        pdf.add_page()
        font = self.folder.font
        if font is None:
            pdf.set_font("Helvetica", size=11)
            pdf.write_html(printable(self.html(fields)))
        else:
            for style, file in (("", font.regular), ("B", font.bold), ("I", font.regular), ("BI", font.bold)):
                pdf.add_font(LETTER_FONT, style, str(file))
            pdf.set_font(LETTER_FONT, size=11)
            pdf.write_html(unicodedata.normalize("NFC", self.html(fields)), font_family=LETTER_FONT)
        return bytes(pdf.output())

    def print_file(self, letters: Sequence[Letter], day: date) -> bytes:
        """Every letter followed by its enclosures, in order, as one PDF (the same letters of the same day give
        the same bytes; the last ``RECENT_PRINT_FILES`` files are not rendered again)."""
        key = (tuple(letters), day)
        with self._recent_lock:
            if key in self._recent:
                self._recent.move_to_end(key)
                return self._recent[key]
        rendered = self._render_print_file(key[0], day)
        with self._recent_lock:
            self._recent[key] = rendered
            while len(self._recent) > RECENT_PRINT_FILES:
                self._recent.popitem(last=False)
        return rendered

    def _render_print_file(self, letters: Sequence[Letter], day: date) -> bytes:
        writer = PdfWriter()
        for letter in letters:
            writer.append(PdfReader(io.BytesIO(self.letter_pdf(letter.fields, day))))
            for enclosure in letter.enclosures:
                writer.append(PdfReader(io.BytesIO(enclosure.pdf)))
        writer.add_metadata({"/Title": f"Member letters print batch {day.isoformat()}"})
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()
