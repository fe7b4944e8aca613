"""Notice delivery by FHIR subscription and by monthly digest (issue 22), on live servers.

* FHIR: a Referring Entity platform (a registered client of its Organization) subscribes to the CLR notice topic;
  the plan's decision makes the server notify its endpoint with the CLR Notice, and the endpoint's 2xx is the
  notice sent (the Communication completed, its obligation with it).
* Digest: a Referring Entity configured for a monthly digest gets no loop-closure notice on the day its loops
  close (the obligations are due on the digest day); on the digest day one message carries both closures, each
  its own completed Communication.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.clr_helpers import (
    BASE,
    created,
    decided,
    referral_body,
    referral_task_body,
    updated,
    with_status,
)
from tests.api.helpers import FHIR_JSON, unique
from tests.api.security_client import access_token, http_for, new_client, register
from tests.api.smtp_sink import SmtpSink
from tests.api.subscription_helpers import FAST_RETRIES, subscribe, subscription, wait_until
from tests.api.webhook_receiver import Receiver
from tests.conftest import LiveServer

NOTICE_TOPIC = f"{BASE}/SubscriptionTopic/clr-notice"
NOTICE_PROFILE = f"{BASE}/StructureDefinition/clr-notice"
OBLIGATION_PROFILE = f"{BASE}/StructureDefinition/clr-notice-obligation"
PREFERENCE = f"{BASE}/StructureDefinition/notice-channel-preference"
PLAN = new_client("notice-plan", "Organization/plan", "plan", ["system/*.cruds"])
PLATFORM = new_client("notice-platform", "Organization/re-platform", "referring-entity", ["system/*.cruds"])
FAST = {"FHIR_CLR_NOTICE_DELIVERY": "true", "FHIR_CLR_NOTICE_POLL_SECONDS": "0.3"}


def _notices(client: httpx.Client, referral: dict[str, Any]) -> list[dict[str, Any]]:
    found = client.get("/Communication", params={
        "_profile": NOTICE_PROFILE, "based-on": f"ServiceRequest/{referral['id']}", "_count": "50"}).json()
    return [e["resource"] for e in found.get("entry", [])]


def _kind(notice: dict[str, Any]) -> str:
    return str(notice["reasonCode"][0]["coding"][0]["code"])


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    endpoint.start()
    yield endpoint
    endpoint.stop()


def test_fhir_notice_to_a_subscribing_platform_is_sent_when_acknowledged(tmp_path: Path, receiver: Receiver) -> None:
    for client in (PLAN, PLATFORM):
        register(tmp_path, client)
    server = LiveServer(tmp_path, {**FAST_RETRIES, **FAST}, dev=False)
    server.start()
    try:
        plan = http_for(server.base_url, access_token(server.base_url, PLAN))
        platform = http_for(server.base_url, access_token(server.base_url, PLATFORM))
        response = plan.put("/Organization/re-platform", json={"resourceType": "Organization", "id": "re-platform",
                                                              "name": "Referral Platform"}, headers=FHIR_JSON)
        assert response.status_code in (200, 201), response.text
        sub = subscribe(platform, subscription(receiver.url, NOTICE_TOPIC,
                                               ("Communication?recipient=Organization/re-platform",),
                                               content="full-resource"))
        wait_until(lambda: platform.get(f"/Subscription/{sub['id']}").json()["status"] == "active",
                   what="subscription handshake")
        member = created(plan, {"resourceType": "Patient", "name": [{"family": unique("m")}],
                                "address": [{"city": "Fresno"}]})
        referral = created(plan, referral_body(f"Patient/{member['id']}", "Organization/re-platform"))
        updated(plan, decided(referral, "approved", "2026-12-01T10:00:00-08:00"))

        def delivered() -> list[dict[str, Any]]:
            found = [r for r in receiver.received if r.kind == "event-notification"]
            resources = [e["resource"] for r in found for e in r.body.get("entry", [])[1:] if "resource" in e]
            return [c for c in resources if c.get("resourceType") == "Communication"]
        wait_until(lambda: bool(delivered()), timeout=20, what="the FHIR notice")
        (sent,) = delivered()
        assert _kind(sent) == "authorization-decision-referring-entity" and sent["status"] == "preparation"
        assert "Enhanced Care Management" in sent["payload"][0]["contentString"]

        def completed() -> bool:
            notice = next(n for n in _notices(plan, referral) if _kind(n) == _kind(sent))
            return notice["status"] == "completed" and "sent" in notice
        wait_until(completed, timeout=20, what="the notice recorded as sent")
        found = plan.get("/Task", params={"_profile": OBLIGATION_PROFILE, "focus": f"ServiceRequest/{referral['id']}",
                                          "code": "authorization-decision-referring-entity"}).json()
        assert found["entry"][0]["resource"]["status"] == "completed"
        # the platform sees its own notice; the Member's letter is the plan's alone
        assert {_kind(n) for n in _notices(platform, referral)} == {"authorization-decision-referring-entity"}
        letters = plan.get("/Communication", params={"_profile": NOTICE_PROFILE,
                                                     "recipient": f"Patient/{member['id']}"})
        (letter,) = [e["resource"] for e in letters.json()["entry"]]
        assert platform.get(f"/Communication/{letter['id']}").status_code == 404
    finally:
        server.stop()


def _close_loop(client: httpx.Client, subject: str, requester: str, provider: str) -> dict[str, Any]:
    referral = created(client, referral_body(subject, requester))
    task = created(client, referral_task_body(referral, provider))
    task = updated(client, with_status(task, "1", "2026-11-20", "accepted"))
    updated(client, with_status(task, "5", "2026-12-02", "completed", statusReason={"text": "Services Received"}))
    return referral


def test_monthly_digest_goes_on_its_day_with_each_closure_its_own_notice(tmp_path: Path) -> None:
    sink = SmtpSink(tmp_path)
    sink.start()
    server = LiveServer(tmp_path / "data", {**sink.env, **FAST, "FHIR_CLR_FIXED_NOW": "2026-12-03T18:00:00Z"})
    server.start()
    address = f"{unique('digest')}@cbo.example.org"
    try:
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            cbo = created(client, {"resourceType": "Organization", "name": "Busy CBO",
                                   "telecom": [{"system": "email", "value": address}],
                                   "extension": [{"url": PREFERENCE, "valueCode": "digest"}]})
            provider = created(client, {"resourceType": "Organization", "name": "Provider"})
            member = created(client, {"resourceType": "Patient", "name": [{"family": unique("m")}]})
            referrals = [_close_loop(client, f"Patient/{member['id']}", f"Organization/{cbo['id']}",
                                     f"Organization/{provider['id']}") for _ in range(2)]

            def queued() -> list[dict[str, Any]]:
                notices = [n for r in referrals for n in _notices(client, r)
                           if _kind(n) == "loop-closure-referring-entity"]
                assert len(notices) == 2 and {n["status"] for n in notices} == {"preparation"}
                return notices
            wait_until(lambda: _ok(queued), timeout=20, what="digest entries composed")

            def redated() -> bool:
                # the worker re-dates each obligation just after it queues that obligation's digest entry
                dues = client.get("/Task", params={"_profile": OBLIGATION_PROFILE, "status": "requested",
                                                   "code": "loop-closure-referring-entity", "_count": "10"}).json()
                return {e["resource"]["restriction"]["period"]["end"] for e in dues["entry"]} == {"2026-12-05"}
            wait_until(redated, timeout=20, what="both obligations due on the digest day")
            time.sleep(1.5)
            assert sink.to(address) == []  # not before its day
        server.stop()
        server.env["FHIR_CLR_FIXED_NOW"] = "2026-12-05T18:00:00Z"
        server.start()
        message = sink.wait_for(address, timeout=20)
        assert all(r["id"] in message.text for r in referrals) and "Services Received" in message.text
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            def sent() -> bool:
                notices = [n for r in referrals for n in _notices(client, r)
                           if _kind(n) == "loop-closure-referring-entity"]
                return len(notices) == 2 and all(n["status"] == "completed" for n in notices) and \
                    len({n["id"] for n in notices}) == 2
            wait_until(sent, timeout=20, what="digest entries recorded as sent")
        time.sleep(1)
        assert len(sink.to(address)) == 1
    finally:
        server.stop()
        sink.stop()


def _ok(check: Any) -> bool:
    try:
        check()
    except (AssertionError, KeyError):
        return False
    return True
