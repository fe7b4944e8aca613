"""The required-binding table (built from the R4 definitions) and the value set expansion of its build tool."""

from __future__ import annotations

from fhir_clr.fhirmodel.bindings import NESTED_RESOURCE, binding_table
from tools.build_required_codes import Expander


def test_table_covers_the_referral_workflow_and_data_types() -> None:
    table = binding_table()
    assert "requested" in table.codes["Task.status"] and "bogus" not in table.codes["Task.status"]
    assert table.codes["Task.intent"] >= {"order", "plan", "proposal"}
    assert table.codes["Bundle.entry.request.method"] == {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}
    assert table.codes["HumanName.use"] >= {"official", "usual", "nickname"}
    for path in ("ContactPoint.system", "Identifier.use", "Address.use", "Quantity.comparator", "Narrative.status",
                 "Patient.contact.gender", "Task.priority", "ServiceRequest.status", "Subscription.status"):
        assert table.codes[path], path
    assert "SubscriptionTopic" not in table.elements  # R4B-only types are not served


def test_walk_nodes_know_choice_keys_and_nested_resources() -> None:
    elements = binding_table().elements
    assert elements["Task.output"]["valueQuantity"][:2] == ("value", "Quantity")
    assert elements["Task"]["contained"][1] == NESTED_RESOURCE
    assert elements["Bundle.entry"]["resource"][1] == NESTED_RESOURCE
    assert elements["Task"]["status"] == ("status", None, "Task.status")


def test_code_check_messages_name_element_code_and_value_set() -> None:
    issue = binding_table().check("Task.status", "bogus", "Task.status")
    assert issue is not None and issue.code == "code-invalid" and issue.expression == "Task.status"
    assert "'bogus'" in issue.message and "http://hl7.org/fhir/ValueSet/task-status" in issue.message
    assert binding_table().check("Task.status", "requested", "Task.status") is None


def test_expander_nested_concepts_filters_imports_and_excludes() -> None:
    code_system = {"resourceType": "CodeSystem", "url": "urn:cs", "content": "complete", "concept": [
        {"code": "a", "concept": [{"code": "a1", "concept": [{"code": "a11"}]},
                                  {"code": "a2", "property": [{"code": "notSelectable", "valueBoolean": True}]}]},
        {"code": "b"}]}
    value_sets = [
        {"resourceType": "ValueSet", "url": "urn:vs:all", "compose": {"include": [{"system": "urn:cs"}]}},
        {"resourceType": "ValueSet", "url": "urn:vs:below-a", "compose": {"include": [{"system": "urn:cs", "filter": [
            {"property": "concept", "op": "descendent-of", "value": "a"}]}]}},
        {"resourceType": "ValueSet", "url": "urn:vs:import", "compose": {
            "include": [{"valueSet": ["urn:vs:all"]}], "exclude": [{"system": "urn:cs", "concept": [{"code": "b"}]}]}},
        {"resourceType": "ValueSet", "url": "urn:vs:external", "compose": {"include": [{"system": "urn:ietf:bcp:13"}]}},
    ]
    expander = Expander([code_system, *value_sets])
    assert expander.expand("urn:vs:all|4.0.1") == {"urn:cs": {"a", "a1", "a11", "b"}}
    assert expander.expand("urn:vs:below-a") == {"urn:cs": {"a1", "a11"}}
    assert expander.expand("urn:vs:import") == {"urn:cs": {"a", "a1", "a11"}}
    assert expander.expand("urn:vs:external") is None
    assert expander.expand("urn:vs:unknown") is None
