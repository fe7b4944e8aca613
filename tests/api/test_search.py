"""Search over HTTP: parameter types, modifiers, chains, includes, sorting, paging, summaries."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import FHIR_JSON, organization, patient, task, unique


def post(client: httpx.Client, body: dict) -> dict:
    response = client.post(f"/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()


def ids(bundle: dict, mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == mode]


@pytest.fixture()
def referral_set(client: httpx.Client) -> dict:
    """An owner organization with four Tasks (two requested), a patient and a ServiceRequest."""
    org = post(client, organization(unique("Org")))
    family = unique("Fam")
    member = post(client, patient(family, birthDate="1980-05-17", gender="female",
                                  identifier=[{"system": "urn:test:cin", "value": unique("cin")}]))
    service = post(client, {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                            "subject": {"reference": f"Patient/{member['id']}"},
                            "authoredOn": "2026-10-05"})
    owner = f"Organization/{org['id']}"
    tasks = [
        post(client, task(owner, "requested", focus={"reference": f"ServiceRequest/{service['id']}"},
                          authoredOn="2026-10-01T10:00:00Z", priority="urgent",
                          **{"for": {"reference": f"Patient/{member['id']}"}})),
        post(client, task(owner, "requested", authoredOn="2026-10-03T10:00:00Z", priority="routine")),
        post(client, task(owner, "accepted", authoredOn="2026-10-05T10:00:00Z")),
        post(client, task(owner, "completed", authoredOn="2026-11-01T10:00:00Z")),
    ]
    provenance = post(client, {"resourceType": "Provenance", "recorded": "2026-10-01T10:00:00Z",
                               "target": [{"reference": f"Task/{tasks[0]['id']}"}],
                               "agent": [{"who": {"reference": owner}}]})
    return {"org": org, "owner": owner, "member": member, "family": family, "service": service,
            "tasks": tasks, "provenance": provenance}


def test_token_and_reference(client: httpx.Client, referral_set: dict) -> None:
    owner = referral_set["owner"]
    bundle = client.get("/Task", params={"owner": owner, "status": "requested"}).json()
    assert bundle["type"] == "searchset" and bundle["total"] == 2
    assert set(ids(bundle)) == {t["id"] for t in referral_set["tasks"][:2]}
    either = client.get("/Task", params={"owner": owner, "status": "requested,accepted"}).json()
    assert either["total"] == 3
    negated = client.get("/Task", params={"owner": owner, "status:not": "requested"}).json()
    assert negated["total"] == 2
    bare_id = client.get("/Task", params={"owner": referral_set["org"]["id"]}).json()
    assert bare_id["total"] == 4
    typed = client.get("/Task", params={"owner:Organization": referral_set["org"]["id"]}).json()
    assert typed["total"] == 4
    absolute = client.get("/Task", params={"owner": f"{client.base_url}/{owner}"}).json()
    assert absolute["total"] == 4


def test_dates_strings_missing(client: httpx.Client, referral_set: dict) -> None:
    owner = referral_set["owner"]
    october = client.get("/Task", params={"owner": owner, "authored-on": "2026-10"}).json()
    assert october["total"] == 3
    after = client.get("/Task", params={"owner": owner, "authored-on": "gt2026-10-03T10:00:00Z"}).json()
    assert after["total"] == 2
    window = client.get("/Task", params=[("owner", owner), ("authored-on", "ge2026-10-02"),
                                         ("authored-on", "lt2026-11-01")]).json()
    assert window["total"] == 2
    family = referral_set["family"]
    assert client.get("/Patient", params={"family": family[:6].lower()}).json()["total"] >= 1
    assert client.get("/Patient", params={"family:exact": family}).json()["total"] == 1
    assert client.get("/Patient", params={"family:exact": family.lower()}).json()["total"] == 0
    assert client.get("/Patient", params={"name:contains": family[4:]}).json()["total"] == 1
    assert client.get("/Patient", params={"family": family, "birthdate": "1980"}).json()["total"] == 1
    assert client.get("/Patient", params={"family": family, "birthdate": "ne1980-05-17"}).json()["total"] == 0
    no_focus = client.get("/Task", params={"owner": owner, "focus:missing": "true"}).json()
    assert no_focus["total"] == 3


def test_chain_has_and_identifier(client: httpx.Client, referral_set: dict) -> None:
    family = referral_set["family"]
    chained = client.get("/Task", params={"patient.family": family}).json()
    assert ids(chained) == [referral_set["tasks"][0]["id"]]
    focus_chain = client.get("/Task", params={"focus:ServiceRequest.status": "active",
                                              "owner": referral_set["owner"]}).json()
    assert ids(focus_chain) == [referral_set["tasks"][0]["id"]]
    reverse = client.get("/Patient", params={"_has:Task:patient:status": "requested", "family": family}).json()
    assert ids(reverse) == [referral_set["member"]["id"]]
    cin = referral_set["member"]["identifier"][0]["value"]
    by_identifier = client.get("/Patient", params={"identifier": f"urn:test:cin|{cin}"}).json()
    assert ids(by_identifier) == [referral_set["member"]["id"]]


def test_include_and_revinclude(client: httpx.Client, referral_set: dict) -> None:
    first = referral_set["tasks"][0]["id"]
    bundle = client.get("/Task", params={"_id": first, "_include": ["Task:focus", "Task:patient"],
                                         "_revinclude": "Provenance:target"}).json()
    assert ids(bundle) == [first]
    included = set(ids(bundle, "include"))
    assert included == {referral_set["service"]["id"], referral_set["member"]["id"],
                        referral_set["provenance"]["id"]}
    assert bundle["total"] == 1
    iterate = client.get("/Task", params={"_id": first, "_include": "Task:focus",
                                          "_include:iterate": "ServiceRequest:subject"}).json()
    assert referral_set["member"]["id"] in ids(iterate, "include")


def test_sort_and_keyset_paging(client: httpx.Client, referral_set: dict) -> None:
    owner = referral_set["owner"]
    newest_first = client.get("/Task", params={"owner": owner, "_sort": "-authored-on"}).json()
    assert ids(newest_first) == [t["id"] for t in reversed(referral_set["tasks"])]
    two_keys = client.get("/Task", params={"owner": owner, "_sort": "status,-_lastUpdated"}).json()
    statuses = [e["resource"]["status"] for e in two_keys["entry"]]
    assert statuses == sorted(statuses)
    page = client.get("/Task", params={"owner": owner, "_sort": "-_lastUpdated", "_count": 3}).json()
    assert len(ids(page)) == 3 and "total" not in page  # not asked for and not free: no count of every match
    counted = client.get("/Task", params={"owner": owner, "_sort": "-_lastUpdated", "_count": 3,
                                          "_total": "accurate"}).json()
    assert ids(counted) == ids(page) and counted["total"] == 4
    whole = client.get("/Task", params={"owner": owner, "_count": 10}).json()
    assert whole["total"] == 4  # the whole result on one page: its total is free, and given
    links = {link["relation"]: link["url"] for link in page["link"]}
    second = client.get(links["next"]).json()
    assert len(ids(second)) == 1
    assert not set(ids(page)) & set(ids(second))
    previous = {link["relation"]: link["url"] for link in second["link"]}["previous"]
    assert ids(client.get(previous).json()) == ids(page)


def test_paging_is_stable_while_writes_happen(client: httpx.Client, referral_set: dict) -> None:
    owner = referral_set["owner"]
    url: str | None = None
    seen: list[str] = []
    bundle = client.get("/Task", params={"owner": owner, "_count": 2}).json()
    while True:
        seen += ids(bundle)
        post(client, task(owner, "requested"))  # a write between every two pages
        url = {link["relation"]: link["url"] for link in bundle["link"]}.get("next")
        if url is None or len(seen) > 20:
            break
        bundle = client.get(url).json()
    assert len(seen) == len(set(seen)), "a resource appeared twice"
    assert {t["id"] for t in referral_set["tasks"]} <= set(seen), "a resource was skipped"


def test_summary_elements_total(client: httpx.Client, referral_set: dict) -> None:
    owner = referral_set["owner"]
    count = client.get("/Task", params={"owner": owner, "_summary": "count"}).json()
    assert count["total"] == 4 and "entry" not in count
    elements = client.get("/Task", params={"owner": owner, "_elements": "status"}).json()
    resource = elements["entry"][0]["resource"]
    assert set(resource) <= {"resourceType", "id", "meta", "status"}
    assert any(tag["code"] == "SUBSETTED" for tag in resource["meta"]["tag"])
    no_total = client.get("/Task", params={"owner": owner, "_total": "none", "_count": 1}).json()
    assert "total" not in no_total


def test_post_search_and_lastupdated_alias(client: httpx.Client, referral_set: dict) -> None:
    owner = referral_set["owner"]
    posted = client.post("/Task/_search", data={"owner": owner, "status": "requested"},
                         headers={"Content-Type": "application/x-www-form-urlencoded"}).json()
    assert posted["total"] == 2
    since = referral_set["tasks"][0]["meta"]["lastUpdated"]
    lower = client.get("/Task", params={"owner": owner, "_lastupdated": f"ge{since}"}).json()
    upper = client.get("/Task", params={"owner": owner, "_lastUpdated": f"ge{since}"}).json()
    assert lower["total"] == upper["total"] >= 4


def test_unknown_parameters(client: httpx.Client, referral_set: dict) -> None:
    owner = referral_set["owner"]
    lenient = client.get("/Task", params={"owner": owner, "colour": "blue"}).json()
    assert lenient["total"] == 4
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome and "colour" in outcome[0]["resource"]["issue"][0]["details"]["text"]
    strict = client.get("/Task", params={"owner": owner, "colour": "blue"}, headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    bad_date = client.get("/Task", params={"authored-on": "yesterday"})
    assert bad_date.status_code == 400 and bad_date.json()["resourceType"] == "OperationOutcome"
    # One rule for everything unknown in a search, _sort keys included: ignored with a warning, 400 when strict.
    lenient_sort = client.get("/Task", params={"owner": owner, "_sort": "colour,-_lastUpdated"}).json()
    assert lenient_sort["total"] == 4 and "_sort=-_lastUpdated" in lenient_sort["link"][0]["url"]
    sort_outcome = [e for e in lenient_sort["entry"] if e["search"]["mode"] == "outcome"]
    assert "_sort=colour" in sort_outcome[0]["resource"]["issue"][0]["details"]["text"]
    strict_sort = client.get("/Task", params={"_sort": "colour"}, headers={"Prefer": "handling=strict"})
    assert strict_sort.status_code == 400
    forged_token = client.get("/Task", params={"owner": owner, "_page_token": "bm90LWEtdG9rZW4"})
    assert forged_token.status_code == 400 and forged_token.json()["resourceType"] == "OperationOutcome"


def test_empty_result_is_200(client: httpx.Client) -> None:
    bundle = client.get("/Task", params={"owner": f"Organization/{unique()}"}).json()
    assert bundle["total"] == 0 and "entry" not in bundle
