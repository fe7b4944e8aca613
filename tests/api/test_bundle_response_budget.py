"""A batch or transaction of many wide read entries stops at the response budget (found by an outside review:
5,000 identical searches answered with 226 MB and raised the server's memory by 380 MB)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import FHIR_JSON, patient
from tests.conftest import LiveServer

BUDGET = 64 * 1024


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = LiveServer(Path(tmp_path_factory.mktemp("budget-server")),
                        {"FHIR_CLR_MAX_BUNDLE_RESPONSE_BYTES": str(BUDGET)})
    server.start()
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        for _ in range(40):
            created = http.post("/Patient", json=patient(family="Budget" + "x" * 500), headers=FHIR_JSON)
            assert created.status_code == 201
        yield http
    server.stop()


def _bundle(kind: str, entries: int) -> dict[str, object]:
    return {"resourceType": "Bundle", "type": kind,
            "entry": [{"request": {"method": "GET", "url": "Patient?_count=100"}} for _ in range(entries)]}


def test_batch_read_entries_past_the_budget_answer_too_costly(client: httpx.Client) -> None:
    response = client.post("/", json=_bundle("batch", 200), headers=FHIR_JSON)
    assert response.status_code == 200
    assert len(response.content) < 2 * BUDGET + 200 * 1024
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0] == "200 OK"
    assert statuses[-1] == "422"
    refused = response.json()["entry"][-1]["response"]["outcome"]["issue"][0]
    assert refused["code"] == "too-costly" and str(BUDGET) in str(refused)


def test_a_transaction_past_the_budget_is_refused_whole(client: httpx.Client) -> None:
    response = client.post("/", json=_bundle("transaction", 200), headers=FHIR_JSON)
    assert response.status_code == 422
    assert response.json()["issue"][0]["code"] == "too-costly"


def test_a_bundle_within_the_budget_answers_every_entry(client: httpx.Client) -> None:
    response = client.post("/", json=_bundle("batch", 1), headers=FHIR_JSON)
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["200 OK"]
