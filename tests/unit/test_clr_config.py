"""The rules configuration only names codes that the code systems in profiles/ define."""

from __future__ import annotations

from fhir_clr.clr.codes import bundled_code_lists
from fhir_clr.clr.config import bundled_rules


def test_rules_config_codes_exist() -> None:
    rules, codes = bundled_rules(), bundled_code_lists()
    statuses = set(codes["referral-status"].concepts)
    reasons = set(codes["loop-closure-reason"].concepts)
    flow = rules["workflow"]
    assert set(flow["task_status_by_referral_status"]) | {flow["closed_referral_status"]} == statuses
    assert set(flow["task_status_by_closure_reason"]) == reasons
    assert set(flow["completes_service_request"]) | set(flow["denial_closure_reasons"]) <= reasons
    assert set(flow["status_order"]) | {flow["declined_referral_status"], flow["closed_referral_status"]} == statuses
    assert set(flow["status_set_by"]) == statuses and set(flow["requester_may_close_from"]) <= statuses
    assert set(flow["unusual_movements"].values()) <= {"review", "superseded", "reject"}
    assert flow["review_flag"] in codes["referral-flags"].concepts
    noticing = rules["noticing"]
    types = set(codes["referral-type"].concepts)
    assert set(noticing["self_referral_types"]) | set(noticing["mcp_identified_types"]) <= types
    authorization = set(codes["authorization-status"].concepts)
    for key in ("decided_authorization_statuses", "denied_authorization_statuses", "approved_authorization_statuses"):
        assert set(noticing[key]) <= authorization
    assert {"authorization-decision-member", "authorization-decision-referring-entity",
            "loop-closure-referring-entity", "inquiry-response", "status-update",
            "pending-follow-up"} <= set(codes["notice-kinds"].concepts)
