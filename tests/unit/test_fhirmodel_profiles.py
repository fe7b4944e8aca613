"""``claims_profile``: the one reading of ``meta.profile`` (versions ignored, anything but a list of strings claims
nothing)."""

from __future__ import annotations

from fhir_clr.fhirmodel.profiles import claimed_profiles, claims_profile

URL = "http://example.org/StructureDefinition/clr-referral"


def test_a_claim_matches_with_or_without_a_version() -> None:
    assert claims_profile({"meta": {"profile": [URL]}}, URL)
    assert claims_profile({"meta": {"profile": ["http://other", f"{URL}|1.2.0"]}}, URL)
    assert claimed_profiles({"meta": {"profile": [f"{URL}|1.2.0", "http://other"]}}) == [URL, "http://other"]


def test_another_profile_or_a_prefix_is_no_claim() -> None:
    assert not claims_profile({"meta": {"profile": [f"{URL}-task"]}}, URL)
    assert not claims_profile({"meta": {"profile": ["http://example.org/StructureDefinition/clr"]}}, URL)


def test_no_or_malformed_meta_claims_nothing() -> None:
    for resource in ({}, {"meta": None}, {"meta": "x"}, {"meta": {}}, {"meta": {"profile": URL}},
                     {"meta": {"profile": [None, 3]}}):
        assert claimed_profiles(resource) == []
        assert not claims_profile(resource, URL)
