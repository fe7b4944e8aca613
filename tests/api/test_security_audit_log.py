"""The audit log across server stops, on a live secured server: a graceful stop (SIGTERM) drains the queue, so
every interaction is found after a restart; a hard crash (SIGKILL) loses at most what was still queued (the
queue is appended in the background every ``AuditTrail.interval``, 0.2 s): interactions appended before the crash
are all found. Also: a plan's AuditEvent read and search answer from the log, and another client's answer is the
one for a type it cannot see."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.api.security_client import access_token, http_for, new_client, start_secured
from tests.api.subscription_helpers import wait_until
from tests.conftest import LiveServer

PLAN = new_client("audit-plan", "Organization/plan", "plan", ["system/*.cruds"])
CBO = new_client("audit-cbo", "Organization/cbo", "servicing-provider", ["system/*.cruds"])


def _reads(server: LiveServer, client_id: str, count: int) -> None:
    """``count`` reads of unknown Tasks (each one an audited interaction)."""
    with http_for(server.base_url, access_token(server.base_url, PLAN if client_id == PLAN.client_id else CBO)
                  ) as http:
        for n in range(count):
            assert http.get(f"/Task/{client_id}-{n}").status_code == 404


def _restarted(server: LiveServer) -> LiveServer:
    again = LiveServer(server.data_dir, dev=False)
    again.start()
    return again


def _logged(plan: httpx.Client, client_id: str) -> list[str]:
    """What the client's logged interactions were about, oldest first (as the plan searches the log)."""
    bundle = plan.get("/AuditEvent", params={"altid": client_id, "_count": 1000}).json()
    return [e["resource"]["entity"][0]["what"]["reference"] for e in bundle.get("entry", [])]


def _audited(server: LiveServer, client_id: str) -> list[str]:
    with http_for(server.base_url, access_token(server.base_url, PLAN)) as plan:
        return _logged(plan, client_id)


def test_a_graceful_stop_writes_every_queued_entry(tmp_path: Path) -> None:
    server = start_secured(tmp_path, PLAN, CBO)
    try:
        _reads(server, CBO.client_id, 50)
    finally:
        server.stop()  # SIGTERM straight after the last response: the queue is drained on shutdown
    again = _restarted(server)
    try:
        assert _audited(again, CBO.client_id) == [f"Task/{CBO.client_id}-{n}" for n in range(50)]
    finally:
        again.stop()


def test_a_crash_loses_at_most_the_last_flush_window(tmp_path: Path) -> None:
    server = start_secured(tmp_path, PLAN, CBO)
    try:
        _reads(server, CBO.client_id, 50)
        with http_for(server.base_url, access_token(server.base_url, PLAN)) as plan:
            # appended in the background: crash once all 50 are in the log, not after a guessed number of flush
            # intervals (a loaded machine can delay the writer past any of them)
            wait_until(lambda: len(_logged(plan, CBO.client_id)) == 50, what="the 50 reads appended to the log")
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    finally:
        server.stop()
    again = _restarted(server)
    try:
        assert _audited(again, CBO.client_id) == [f"Task/{CBO.client_id}-{n}" for n in range(50)]
    finally:
        again.stop()


def test_the_log_answers_the_plan_only(tmp_path: Path) -> None:
    server = start_secured(tmp_path, PLAN, CBO)
    try:
        _reads(server, CBO.client_id, 3)
        with http_for(server.base_url, access_token(server.base_url, PLAN)) as plan, \
                http_for(server.base_url, access_token(server.base_url, CBO)) as cbo:
            # the trail is appended in the background (every 0.2 s): wait for the three reads, not a fixed time
            wait_until(lambda: len(_logged(plan, CBO.client_id)) >= 3, what="the three reads appended to the log")
            bundle = plan.get("/AuditEvent", params={"entity": f"Task/{CBO.client_id}-1"}).json()
            [event] = [e["resource"] for e in bundle["entry"]]
            assert event["agent"][0]["who"]["reference"] == "Organization/cbo"
            read = plan.get(f"/AuditEvent/{event['id']}")
            assert read.status_code == 200 and read.json() == event
            assert read.headers["etag"] == 'W/"1"'
            searched = plan.post("/AuditEvent/_search", data={"altid": CBO.client_id})
            assert len(searched.json()["entry"]) == 3
            ignored = plan.get("/AuditEvent", params={"family": "x", "altid": CBO.client_id}).json()
            assert [e["search"]["mode"] for e in ignored["entry"]] == ["match"] * 3 + ["outcome"]
            strict = plan.get("/AuditEvent", params={"family": "x"}, headers={"Prefer": "handling=strict"})
            assert strict.status_code == 400
            # another client: exactly what an id or a search of a type it cannot see answers
            hidden = cbo.get(f"/AuditEvent/{event['id']}")
            unknown = cbo.get("/AuditEvent/00000000000000-00000000-0")
            assert hidden.status_code == unknown.status_code == 404
            assert hidden.content.replace(event["id"].encode(), b"<id>") == \
                unknown.content.replace(b"00000000000000-00000000-0", b"<id>")
            assert "entry" not in cbo.get("/AuditEvent").json()
            assert all(e["search"]["mode"] == "outcome"
                       for e in cbo.get("/AuditEvent", params={"family": "x"}).json()["entry"])
            assert plan.post("/AuditEvent", json=event).status_code == 403
    finally:
        server.stop()
