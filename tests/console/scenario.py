"""The console tests' scenario, written over HTTP the way a plan system and a provider would: an ECM referral
made on 2026-11-02 whose authorization decision nobody recorded, a second one approved the next day whose notice
to the clinic went out on time while the Member's never did, a third made on 2026-11-13 whose decision is due on
2026-11-20, then a provider's RTF file received on
2026-11-20 that accepts the first referral and carries two bad rows. The server's business clock is fixed,
and moves forward between the two days by restarting the server on the same data."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx

from fhir_clr.clr.config import bundled_rules
from fhir_clr.mapping.writers import write_table
from tests.api.clr_helpers import created, decided, obligation, referral_body, referral_task_body, updated
from tests.api.subscription_helpers import FAST_RETRIES
from tests.api.test_clr_noticing_scenarios import notice
from tests.api.test_rtf_import import row, valid_npi
from tests.bundled import find_spec
from tests.conftest import LiveServer

SYSTEMS = bundled_rules()["identifier_systems"]
REFERRED, TODAY = "2026-11-02T18:00:00Z", "2026-11-20T18:00:00Z"
MEMBER_NAME, MEMBER_CIN = "Rosa Testmember", "71234567A"
CLINIC = "Browser Test Clinic"
DUE_TODAY_NAME = "Dana Duetoday"


@dataclass(frozen=True, slots=True)
class Scenario:
    """The running server and what the scenario created."""

    server: LiveServer
    referral_id: str
    task_id: str
    rtf_document_id: str


def _client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30.0, headers={"Accept": "application/fhir+json"})


def _referral_day(server: LiveServer) -> tuple[str, str, str]:
    """The Member, the ECM provider, the clinic, the referral and its Pending Task; (referral, task, npi)."""
    npi = valid_npi("712345678")
    with _client(server) as http:
        member = created(http, {"resourceType": "Patient", "name": [{"text": MEMBER_NAME}],
                                "identifier": [{"system": SYSTEMS["cin"], "value": MEMBER_CIN}]})
        provider = created(http, {"resourceType": "Organization", "name": "Browser ECM Provider",
                                  "identifier": [{"system": SYSTEMS["npi"], "value": npi}]})
        clinic = created(http, {"resourceType": "Organization", "name": CLINIC})
        referral = created(http, referral_body(f"Patient/{member['id']}", f"Organization/{clinic['id']}",
                                               authored="2026-11-02",
                                               performer=[{"reference": f"Organization/{provider['id']}"}]))
        task = created(http, referral_task_body(referral, f"Organization/{provider['id']}", since="2026-11-02"))
        _decided_referral(http, f"Organization/{clinic['id']}")
        other = created(http, {"resourceType": "Organization", "name": "Other Test Clinic"})
        due_today = created(http, {"resourceType": "Patient", "name": [{"text": DUE_TODAY_NAME}]})
        # Friday 13th + 5 business days: the decision is due on Friday 20th, the day of the RTF
        created(http, referral_body(f"Patient/{due_today['id']}", f"Organization/{other['id']}",
                                    authored="2026-11-13"))
    return referral["id"], task["id"], npi


def _decided_referral(http: httpx.Client, clinic: str) -> None:
    """A referral approved on 2026-11-03: the clinic notified the same day, the Member not at all."""
    member = created(http, {"resourceType": "Patient", "name": [{"text": "Sam Decided"}]})
    referral = created(http, referral_body(f"Patient/{member['id']}", clinic, authored="2026-11-02"))
    referral = updated(http, decided(referral, "approved", "2026-11-03T10:00:00-08:00"))
    to_clinic = obligation(http, "authorization-decision-referring-entity", focus=f"ServiceRequest/{referral['id']}")
    created(http, notice(to_clinic, "2026-11-03T15:00:00-08:00"))


def _rtf_day(server: LiveServer, npi: str) -> str:
    """Import the provider's RTF (one good row, an unknown CIN, an unknown status); the file's id."""
    out = io.BytesIO()
    write_table(find_spec("rtf", "ecm"), [row(MEMBER_CIN, npi, "Accepted", date(2026, 11, 18)),
                                          row("00000000Z", npi, "Accepted", date(2026, 11, 18)),
                                          row(MEMBER_CIN, npi, "Teleported", date(2026, 11, 19))], "csv", out)
    with _client(server) as http:
        started = http.post("/$import", params={"kind": "rtf", "program": "ecm", "filename": "rtf-november.csv"},
                            content=out.getvalue(), headers={"Content-Type": "text/csv"})
        assert started.status_code == 202, started.text
        for _ in range(400):
            status = http.get(started.headers["Content-Location"])
            if status.status_code != 202:
                break
            time.sleep(0.05)
        assert status.status_code == 200, status.text
        report = status.json()
        assert (report["applied"], report["rejected"]) == (1, 2), report
        return str(report["documentReference"]).removeprefix("DocumentReference/")


def start_scenario(data_dir: Path) -> Scenario:
    """Play the referral day, restart the server 18 days later, play the RTF day; the server stays up."""
    first = LiveServer(data_dir, {"FHIR_CLR_FIXED_NOW": REFERRED})
    first.start()
    try:
        referral_id, task_id, npi = _referral_day(first)
    finally:
        first.stop()
    later = LiveServer(data_dir, {"FHIR_CLR_FIXED_NOW": TODAY, **FAST_RETRIES})
    later.env["FHIR_CLR_LISTEN_URL"] = later.base_url
    later.start()
    return Scenario(later, referral_id, task_id, _rtf_day(later, npi))
