"""The letter template is sandboxed and strict: it sees the LetterFields it is given and nothing else, so a
plan's template cannot print a Member's identifiers, birth date or clinical details by mistake; the fields
themselves are built from the minimum necessary."""

from __future__ import annotations

import dataclasses
import io
import shutil
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader

from fhir_clr.clr.codes import bundled_code_lists
from fhir_clr.clr.config import bundled_rules
from fhir_clr.config import BUNDLED_LETTERS_DIR, ConfigurationError
from fhir_clr.letters.fields import LetterFacts, LetterFields, member_name, postal_address
from fhir_clr.letters.folder import LettersFolder
from fhir_clr.letters.render import RECENT_PRINT_FILES, SAMPLE_FIELDS, Letter, LetterRenderer, printable

BASE = "http://fhir-clr.org/fhir"


def _folder_with_template(tmp_path: Path, template: str) -> LettersFolder:
    folder = tmp_path / "letters"
    shutil.copytree(BUNDLED_LETTERS_DIR, folder)
    (folder / "noa-letter.html.j2").write_text(template, encoding="utf-8")
    return LettersFolder.load(folder)


@pytest.mark.parametrize("expression", [
    "{{ letter.cin }}", "{{ letter.birth_date }}", "{{ patient }}", "{{ referral.reasonCode }}",
    "{{ letter.__class__.__mro__ }}", "{{ letter.__slots__ }}", "{{ ''.__class__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}", "{% for x in letter %}{{ x }}{% endfor %}",
])
def test_a_template_reaching_past_the_letter_fields_does_not_load(tmp_path: Path, expression: str) -> None:
    with pytest.raises(ConfigurationError, match="the letter template cannot render"):
        LetterRenderer(_folder_with_template(tmp_path, f"<p>{expression}</p>"))


def test_the_template_sees_exactly_the_letter_fields(tmp_path: Path) -> None:
    names = [f.name for f in dataclasses.fields(LetterFields)]
    assert names == ["letter_date", "member_name", "member_address", "service", "decision", "decision_date",
                     "denial_reason", "notice_text", "plan_name", "plan_phone", "plan_hours", "plan_address",
                     "enclosures"]
    every = "".join(f"<p>{{{{ letter.{name} }}}}</p>" for name in names)
    html = LetterRenderer(_folder_with_template(tmp_path, every)).html(SAMPLE_FIELDS)
    assert "Sample Member" in html and "Sample reason" in html
    with pytest.raises(dataclasses.FrozenInstanceError):
        SAMPLE_FIELDS.member_name = "someone else"  # type: ignore[misc]


def test_values_are_escaped_and_printable() -> None:
    renderer = LetterRenderer(LettersFolder.load(BUNDLED_LETTERS_DIR))
    fields = dataclasses.replace(SAMPLE_FIELDS, member_name="Ana <b>Garc\u00eda</b>",
                                 notice_text=("A \u201cquote\u201d",))
    html = renderer.html(fields)
    assert "Ana &lt;b&gt;Garc\u00eda&lt;/b&gt;" in html
    assert printable("Zo\u00eb \u2014 \u201cok\u201d \u4e2d") == 'Zo\u00eb - "ok" ?'
    assert renderer.letter_pdf(fields, date(2026, 12, 2)).startswith(b"%PDF")


def _decision(status: str, when: str, reason: str | None = None) -> dict[str, object]:
    parts = [{"url": "status", "valueCoding": {"code": status}}, {"url": "date", "valueDateTime": when}]
    if reason:
        parts.append({"url": "denial-reason", "valueCodeableConcept": {"text": reason}})
    return {"url": f"{BASE}/StructureDefinition/authorization-decision", "extension": parts}


def test_fields_come_from_the_minimum_necessary() -> None:
    folder = LettersFolder.load(BUNDLED_LETTERS_DIR)
    facts = LetterFacts(bundled_rules(), bundled_code_lists(), folder)
    patient = {"resourceType": "Patient", "identifier": [{"value": "91234567A"}], "birthDate": "1980-04-01",
               "name": [{"use": "old", "family": "Before"}, {"use": "official", "family": "Garcia",
                                                             "given": ["Ana"]}],
               "address": [{"use": "old", "line": ["1 Old Road"], "city": "Chico", "state": "CA",
                            "postalCode": "95926"},
                           {"use": "home", "line": ["12 Main Street"], "city": "Fresno", "state": "CA",
                            "postalCode": "93701"}]}
    referral = {"resourceType": "ServiceRequest", "code": {"text": "ECM"}, "reasonCode": [{"text": "F20"}],
                "extension": [_decision("denied", "2026-12-01T23:30:00-08:00", "Not medically necessary")]}
    decision = facts.decision(referral)
    assert decision is not None and (decision.code, decision.day) == ("denied", date(2026, 12, 1))  # plan-local
    fields = facts.fields({"payload": [{"contentString": "Composed text"}]}, referral, patient, decision,
                          date(2026, 12, 2))
    assert fields.member_name == member_name(patient) == "Ana Garcia"
    assert fields.member_address == postal_address(patient) == ("12 Main Street", "Fresno, CA 93701")
    assert (fields.service, fields.decision, fields.denial_reason) == (
        "Enhanced Care Management", "denied", "Not medically necessary")
    assert fields.enclosures == ("Your Rights", "State Hearing Request Form",
                                 "Independent Medical Review Application")
    assert fields.notice_text == ("Composed text",) and fields.letter_date == "December 2, 2026"
    assert "91234567A" not in repr(fields) and "1980" not in repr(fields) and "F20" not in repr(fields)
    approved = facts.decision({**referral, "extension": [_decision("approved", "2026-12-01")]})
    assert approved is not None and [e.title for e in folder.enclosures_for(approved.code)] == ["Your Rights"]


def test_a_broken_letters_folder_is_one_line_naming_what_to_fix(tmp_path: Path) -> None:
    folder = tmp_path / "letters"
    shutil.copytree(BUNDLED_LETTERS_DIR, folder)
    (folder / "enclosures" / "imr-form-SAMPLE.pdf").write_bytes(b"not a pdf")
    with pytest.raises(ConfigurationError, match=r"enclosures\[2\]\.file enclosures/imr-form-SAMPLE.pdf is not a PDF"):
        LettersFolder.load(folder)
    (folder / "letters.yaml").write_text("template: missing.j2\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"template missing\.j2 is not a file"):
        LettersFolder.load(folder)


DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


@pytest.mark.skipif(not (DEJAVU / "DejaVuSans.ttf").is_file(), reason="needs the DejaVu fonts (Debian fonts-dejavu)")
def test_a_letters_font_prints_any_script(tmp_path: Path) -> None:
    folder = tmp_path / "letters"
    shutil.copytree(BUNDLED_LETTERS_DIR, folder)
    with (folder / "letters.yaml").open("a", encoding="utf-8") as config:
        config.write(f"font:\n  regular: {DEJAVU / 'DejaVuSans.ttf'}\n  bold: {DEJAVU / 'DejaVuSans-Bold.ttf'}\n")
    renderer = LetterRenderer(LettersFolder.load(folder))
    fields = dataclasses.replace(SAMPLE_FIELDS, member_name="Nguy\u1ec5n V\u0103n Anh",
                                 notice_text=("\u0413\u0430\u0440\u0441\u0438\u044f \u2014 \u201cok\u201d",))
    text = PdfReader(io.BytesIO(renderer.letter_pdf(fields, date(2026, 12, 2)))).pages[0].extract_text()
    assert "Nguy\u1ec5n V\u0103n Anh" in text and "\u0413\u0430\u0440\u0441\u0438\u044f \u2014 \u201cok\u201d" in text


def test_a_font_that_is_not_a_file_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "letters"
    shutil.copytree(BUNDLED_LETTERS_DIR, folder)
    with (folder / "letters.yaml").open("a", encoding="utf-8") as config:
        config.write("font:\n  regular: missing.ttf\n  bold: missing-bold.ttf\n")
    with pytest.raises(ConfigurationError, match=r"font\.regular missing\.ttf is not a file"):
        LettersFolder.load(folder)
    (folder / "missing.ttf").write_bytes(b"not a font")
    (folder / "missing-bold.ttf").write_bytes(b"not a font")
    with pytest.raises(ConfigurationError, match="the letter cannot be laid out as a PDF"):
        LetterRenderer(LettersFolder.load(folder))


def test_an_unchanged_print_file_is_not_rendered_again_and_any_change_is(monkeypatch: pytest.MonkeyPatch) -> None:
    renderer = LetterRenderer(LettersFolder.load(BUNDLED_LETTERS_DIR))
    rendered: list[str] = []
    original = renderer.letter_pdf

    def counted(fields: LetterFields, day: date) -> bytes:
        rendered.append(fields.member_name)
        return original(fields, day)
    monkeypatch.setattr(renderer, "letter_pdf", counted)
    day = date(2026, 12, 2)
    letters = [Letter(SAMPLE_FIELDS, ()), Letter(dataclasses.replace(SAMPLE_FIELDS, member_name="Second"), ())]
    first = renderer.print_file(letters, day)
    assert renderer.print_file(list(letters), day) == first and len(rendered) == 2  # served from memory
    moved = [letters[0], Letter(dataclasses.replace(SAMPLE_FIELDS, member_name="Moved"), ())]
    changed = renderer.print_file(moved, day)
    assert rendered[2:] == [SAMPLE_FIELDS.member_name, "Moved"] and changed != first
    assert "Moved" in "".join(page.extract_text() for page in PdfReader(io.BytesIO(changed)).pages)
    for other in range(RECENT_PRINT_FILES):  # the oldest file leaves memory
        renderer.print_file(letters[:1], date(2026, 12, 3 + other))
    renderer.print_file(letters, day)
    assert len(rendered) == 4 + RECENT_PRINT_FILES + 2
