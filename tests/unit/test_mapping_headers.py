"""Header matching: normalization, aliases, missing, extra and duplicate headers."""

from __future__ import annotations

import pytest

from fhir_clr.mapping.headers import match_headers, normalize_header
from tests.bundled import find_spec


@pytest.mark.parametrize("text", ["Member Client Index Number (CIN)", "member client index number cin",
                                  "\ufeffMEMBER_CLIENT-INDEX  NUMBER [CIN]", " Member\tClient Index Number CIN. ",
                                  "\uff2dember Client Index Number (CIN)"])
def test_normalize(text: str) -> None:
    assert normalize_header(text) == "member client index number cin"


@pytest.mark.parametrize("spelling", ["Reason for Referral Loop Closure", "Referral Loop Closure Reason",
                                      "reason for referral closure"])
def test_three_spellings_of_the_closure_reason(spelling: str) -> None:
    spec = find_spec("rtf", "ecm")
    matched = match_headers(spec, ["Member CIN", "ECM Provider NPI", "Referral Status",
                                   "Date of Referral Status Update", spelling])
    assert matched.indexes["loop_closure_reason"] == 4
    assert matched.ok and matched.extra == [] and matched.duplicates == []


def test_missing_extra_absent_duplicates() -> None:
    spec = find_spec("rtf", "ecm")
    matched = match_headers(spec, ["CIN", "Favourite Colour", "", "Member CIN", "Referral Status"])
    assert matched.indexes == {"member_cin": 0, "referral_status": 4}
    assert matched.missing == ["ecm_provider_npi", "referral_status_date"]
    assert matched.extra == ["Favourite Colour"] and matched.duplicates == ["Member CIN"]
    assert "service" in matched.absent and "service" not in matched.missing  # it has a default
    assert not matched.ok and matched.width == 5


def test_full_header_row_matches_every_column() -> None:
    spec = find_spec("rtf", "ecm")
    matched = match_headers(spec, spec.headers)
    assert matched.indexes == {c.name: i for i, c in enumerate(spec.columns)}
    assert (matched.missing, matched.absent, matched.extra) == ([], [], [])
