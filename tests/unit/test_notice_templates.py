"""Notice templates are data and reach only the minimum-necessary notice fields: every shipped template loads,
names nothing outside NoticeFields, renders with strict undefined variables; a template reaching for anything
else (a Member's diagnosis, a referral note, Python internals) is refused."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from fhir_clr.clr.codes import bundled_code_lists
from fhir_clr.clr.config import bundled_rules
from fhir_clr.config import BUNDLED_NOTICES_DIR, Settings
from fhir_clr.notices.fields import FIELD_NAMES, FieldGatherer, NoticeFields
from fhir_clr.notices.service import notice_templates
from fhir_clr.notices.templates import NoticeTemplates, TemplateError

KINDS = ("authorization-decision-member", "authorization-decision-referring-entity",
         "loop-closure-referring-entity", "inquiry-response", "authorization-delay-member")


def sample(**changes: str) -> NoticeFields:
    values = {f.name: f"<{f.name}>" for f in fields(NoticeFields)}
    return NoticeFields(**{**values, **changes})


def test_the_field_set_is_the_minimum_necessary() -> None:
    assert {
        "notice_kind", "notice_title", "recipient_name", "service", "service_code", "referral_id", "referral_date",
        "authorization_decision", "authorization_code", "decision_date", "denial_reason", "loop_closure_reason",
        "loop_closure_date", "referral_status", "plan_name", "plan_phone", "plan_email"} == FIELD_NAMES
    with pytest.raises(AttributeError):
        sample().service = "changed"  # type: ignore[misc]


def test_every_shipped_template_uses_only_the_notice_fields() -> None:
    templates = NoticeTemplates(BUNDLED_NOTICES_DIR)
    templates.check()
    names = sorted(p.name for p in BUNDLED_NOTICES_DIR.glob("*.j2"))
    assert names and all(templates.names_used(n) <= FIELD_NAMES for n in names if not n.startswith("digest."))


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_composes_for_its_channels(kind: str) -> None:
    templates = NoticeTemplates(BUNDLED_NOTICES_DIR)
    channels = ("letter", "email") if kind.endswith("-member") else ("email", "fhir")
    for channel in channels:
        rendered = templates.render(kind, channel, sample(denial_reason=""))
        assert (rendered.subject and "<referral_date>" in rendered.body) or "<service>" in rendered.body


@pytest.mark.parametrize("source", ["{{ diagnosis }}", "{{ referral.note }}", "{% if smi %}x{% endif %}",
                                    "{{ fields.subject }}"])
def test_a_template_reaching_beyond_the_fields_is_refused(tmp_path: Path, source: str) -> None:
    (tmp_path / "loop-closure-referring-entity.email.j2").write_text(f"Subject: x\n{source}\n")
    templates = NoticeTemplates(tmp_path)
    with pytest.raises(TemplateError, match=r"loop-closure-referring-entity\.email\.j2"):
        templates.check()
    with pytest.raises(TemplateError):
        templates.render("loop-closure-referring-entity", "email", sample())


def test_rendering_is_sandboxed_and_strict(tmp_path: Path) -> None:
    (tmp_path / "inquiry-response.j2").write_text("{{ service.__class__.__mro__ }}")
    with pytest.raises(SecurityError):
        NoticeTemplates(tmp_path).render("inquiry-response", "email", sample())
    (tmp_path / "inquiry-response.j2").write_text("{{ service.missing_attribute }}")
    with pytest.raises(UndefinedError):
        NoticeTemplates(tmp_path).render("inquiry-response", "email", sample())


def test_the_server_refuses_to_start_with_a_bad_template(tmp_path: Path) -> None:
    (tmp_path / "inquiry-response.j2").write_text("{{ member_diagnosis }}")
    with pytest.raises(TemplateError, match="member_diagnosis"):
        notice_templates(Settings(notices_dir=tmp_path))


def test_fields_come_from_the_referral_and_its_task_and_nothing_else() -> None:
    base = "http://fhir-clr.org/fhir"
    referral = {
        "resourceType": "ServiceRequest", "id": "sr-1", "code": {"text": "ECM"}, "authoredOn": "2026-11-20",
        "reasonCode": [{"text": "Schizophrenia; opioid use disorder"}], "note": [{"text": "CPS case open"}],
        "extension": [{"url": f"{base}/StructureDefinition/authorization-decision", "extension": [
            {"url": "status", "valueCoding": {"code": "denied"}},
            {"url": "date", "valueDateTime": "2026-11-24T18:00:00Z"},
            {"url": "denial-reason", "valueCodeableConcept": {"text": "Member already enrolled in ECM"}}]}]}
    task = {"resourceType": "Task", "id": "t-1", "statusReason": {"text": "Authorization Denied"},
            "businessStatus": {"text": "5"},
            "extension": [{"url": f"{base}/StructureDefinition/referral-loop-closure-date", "valueDate": "2026-11-25"}]}
    obligation = {"resourceType": "Task", "id": "o-1",
                  "code": {"coding": [{"code": "authorization-decision-referring-entity"}]}}
    fields = FieldGatherer(bundled_rules(), bundled_code_lists()).gather(obligation, referral, task, "Clinic")
    assert (fields.service, fields.authorization_decision, fields.decision_date, fields.denial_reason) == (
        "Enhanced Care Management", "Denied", "2026-11-24", "Member already enrolled in ECM")
    assert (fields.loop_closure_reason, fields.loop_closure_date, fields.referral_id) == (
        "Authorization Denied", "2026-11-25", "sr-1")
    text = " ".join(fields.variables().values()).lower()
    assert "schizophrenia" not in text and "opioid" not in text and "cps" not in text
