"""Write the sample enclosure PDFs shipped in ``notices/letters/enclosures/`` (placeholders, clearly marked as
samples: a plan replaces them with its own Your Rights notice, State Hearing request form and IMR application).

Run from the repository root: ``python tools/make_sample_enclosures.py``. The output is deterministic."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

OUT = Path(__file__).resolve().parents[1] / "notices" / "letters" / "enclosures"
FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLES = {
    "your-rights-SAMPLE.pdf": ("Your Rights", [
        "SAMPLE - replace with the plan's own \"Your Rights\" notice (APL 21-011 attachment).",
        "This placeholder stands where the plan's notice of the Member's rights goes: the right to ask for an "
        "appeal, to ask for a State Hearing, to ask for an Independent Medical Review, and how to get help "
        "in other languages and formats."]),
    "state-hearing-form-SAMPLE.pdf": ("State Hearing Request Form", [
        "SAMPLE - replace with the current State Hearing request form.",
        "This placeholder stands where the form a Member uses to ask the State for a hearing goes."]),
    "imr-form-SAMPLE.pdf": ("Independent Medical Review Application", [
        "SAMPLE - replace with the current Independent Medical Review (IMR) application form.",
        "This placeholder stands where the DMHC IMR application and its instructions go."]),
}


def sample_pdf(title: str, paragraphs: list[str]) -> bytes:
    """One page: the title, a SAMPLE banner and the paragraphs."""
    pdf = FPDF(format="letter")
    pdf.set_creation_date(FIXED_DATE)  # the same bytes on every run
    pdf.set_title(f"{title} (SAMPLE)")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 28)
    pdf.set_text_color(180, 0, 0)
    pdf.cell(0, 16, "SAMPLE", new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, title, new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font("Helvetica", "", 12)
    for paragraph in paragraphs:
        pdf.ln(4)
        pdf.multi_cell(0, 7, paragraph, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def main() -> None:
    """Write every sample enclosure."""
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (title, paragraphs) in SAMPLES.items():
        (OUT / name).write_bytes(sample_pdf(title, paragraphs))
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
