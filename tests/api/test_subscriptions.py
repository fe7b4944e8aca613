"""Topic-based subscriptions over HTTP with a real local webhook receiver: negotiation and its refusals,
handshake, event numbering and payloads at each content level, heartbeats, receivers that are down or keep
failing, ``$status`` / ``$events`` / ``$resend`` / ``$delivery-attempts``, and the CLR topics."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from tests.api.clr_helpers import created, member, organization, referral_body, referral_task_body, with_status
from tests.api.helpers import FHIR_JSON, issue_expressions, task
from tests.api.subscription_helpers import (
    CLOSED_TOPIC,
    DUE_TOPIC,
    OVERDUE_TOPIC,
    SR_TOPIC,
    STATUS_TOPIC,
    cli_server,
    failed_attempts,
    status_of,
    subscribe,
    subscription,
    wait_until,
    webhook_server,
)
from tests.api.webhook_receiver import Received, Receiver
from tests.conftest import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    started = webhook_server(tmp_path_factory.mktemp("webhooks"))
    yield started
    started.stop()


@pytest.fixture()
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30.0, headers={"Accept": "application/fhir+json"}) as http:
        yield http


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def active(api: httpx.Client, receiver: Receiver, body: dict) -> dict:
    """Create the Subscription and wait for its handshake to make it active."""
    made = subscribe(api, body)
    assert made["status"] == "requested"
    wait_until(lambda: status_of(api, made["id"]) == "active", what="activation")
    handshake = receiver.notifications(made["id"], "handshake")
    assert handshake and handshake[0].status["events-since-subscription-start"] == "0"
    return made


def refused(api: httpx.Client, body: dict) -> tuple[str, list[str]]:
    response = api.post("/Subscription", json=body, headers=FHIR_JSON)
    assert response.status_code == 422, response.text
    outcome = response.json()
    return outcome["issue"][0]["details"]["text"], issue_expressions(outcome)


def test_negotiation_refuses_what_cannot_be_served(api: httpx.Client, receiver: Receiver) -> None:
    url = receiver.url
    message, paths = refused(api, subscription(url, "http://example.org/topic/unknown"))
    assert "Unknown subscription topic" in message and paths == ["Subscription.criteria"]
    message, paths = refused(api, subscription(url, filters=("patient=Patient/1",)))
    assert "does not allow filtering by patient" in message and paths == ["Subscription.criteria.extension[0]"]
    message, _ = refused(api, subscription(url, filters=("Task?owner=Organization/1", "nonsense=1")))
    assert "nonsense" in message
    message, _ = refused(api, subscription(url, filters=("ServiceRequest?_id=1",)))
    assert "does not filter ServiceRequest" in message
    body = subscription(url)
    body["channel"]["type"] = "websocket"
    assert refused(api, body)[1] == ["Subscription.channel.type"]
    body = subscription(url)
    body["channel"]["payload"] = "application/fhir+xml"
    assert refused(api, body)[1] == ["Subscription.channel.payload"]
    assert "not supported" in refused(api, subscription(url, content="everything"))[0]
    assert "non-public address" in refused(api, subscription("https://10.1.2.3/hook"))[0]
    assert "https" in refused(api, subscription("ftp://8.8.8.8/hook"))[0]
    assert refused(api, subscription(url, headers=("Host: evil",)))[1] == ["Subscription.channel.header[0]"]
    assert "at least 16" in refused(api, subscription(url, secret="short"))[0]


def test_loopback_endpoints_need_the_operator_allow_list(client: httpx.Client, receiver: Receiver) -> None:
    """The shared live server has no allow-list: a webhook to 127.0.0.1 would be an SSRF into the host."""
    message, paths = refused(client, subscription(receiver.url))
    assert "non-public address (127.0.0.1)" in message and paths == ["Subscription.channel.endpoint"]


@pytest.mark.parametrize("endpoint", [
    "https://8.8.8.8:4431/\t@127.0.0.1?token=SECRET",  # urlsplit drops the tab; the HTTP client refuses the URL
    "https://8.8.8.8/hook\n?token=SECRET",
    "https://8.8.8.8\\@10.0.0.1/hook?token=SECRET",  # the HTTP client reads 10.0.0.1 as the host
    "https://[64:ff9b::7f00:1]/hook?token=SECRET",  # NAT64 form of 127.0.0.1
    "https://[2002:a00:1::1]/hook?token=SECRET",  # 6to4 form of 10.0.0.1
    "https://[::ffff:10.0.0.1]/hook?token=SECRET",  # IPv4-mapped 10.0.0.1
])
def test_endpoints_are_checked_as_the_http_client_reads_them(api: httpx.Client, endpoint: str) -> None:
    response = api.post("/Subscription", json=subscription(endpoint), headers=FHIR_JSON)
    assert response.status_code == 422, response.text
    message = response.json()["issue"][0]["details"]["text"]
    assert issue_expressions(response.json()) == ["Subscription.channel.endpoint"]
    assert "\n" not in message and "SECRET" not in message and "/hook" not in message


def test_no_log_line_holds_a_webhook_url_query(tmp_path: Path, receiver: Receiver) -> None:
    """The server as operators run it logs at INFO; neither httpx's request lines nor ours carry the
    endpoint's query (a secret), also when deliveries fail until the subscription is in error."""
    server = cli_server(tmp_path / "logged")
    try:
        with httpx.Client(base_url=server.base_url, timeout=30.0) as http:
            made = active(http, receiver, subscription(receiver.url + "?token=SECRET-IN-QUERY"))
            created(http, task())
            receiver.wait_for(lambda: bool(receiver.notifications(made["id"], "event-notification")))
            receiver.answer = 500
            created(http, task())
            wait_until(lambda: status_of(http, made["id"]) == "error", timeout=20, what="error status")
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "SECRET" not in log
    assert '"level":"INFO"' in log and "subscription delivery stopped" in log


@pytest.mark.parametrize("content", ["empty", "id-only", "full-resource"])
def test_task_changes_arrive_numbered_with_the_payload_of_each_content_level(
        api: httpx.Client, receiver: Receiver, content: str) -> None:
    owner, other = organization(api, "cbo"), organization(api, "other")
    secret = "s3cret-shared-with-the-cbo"
    made = active(api, receiver, subscription(receiver.url, filters=(f"Task?owner={owner}",), content=content,
                                              headers=("Authorization: Bearer cbo-token",), secret=secret))
    mine = created(api, task(owner))
    created(api, task(other))  # filtered out
    created(api, {**task(owner), "intent": "plan"})  # the topic wants intent=order
    api.put(f"/Task/{mine['id']}", json={**mine, "status": "accepted"}, headers=FHIR_JSON)
    receiver.wait_for(lambda: sum(len(n.event_numbers) for n in receiver.notifications(
        made["id"], "event-notification")) >= 2)
    time.sleep(0.3)
    notes = receiver.notifications(made["id"], "event-notification")
    assert [n for note in notes for n in note.event_numbers] == [1, 2]
    last = notes[-1]
    assert last.status["events-since-subscription-start"] == "2" and last.status["status"] == "active"
    assert last.headers["content-type"] == "application/fhir+json"
    assert last.headers["authorization"] == "Bearer cbo-token"
    stamp, digest = (part.split("=", 1)[1] for part in last.headers["x-fhir-clr-signature"].split(","))
    assert digest == hmac.new(secret.encode(), f"{stamp}.".encode() + last.raw, hashlib.sha256).hexdigest()
    assert last.body["type"] == "history"
    entries = last.body["entry"]
    assert entries[0]["request"]["url"].endswith(f"/Subscription/{made['id']}/$status")
    events = [p for p in entries[0]["resource"]["parameter"] if p["name"] == "notification-event"]
    focus = [part for part in events[-1]["part"] if part["name"] == "focus"]
    if content == "empty":
        assert len(entries) == 1 and not focus and "topic" not in last.status
        return
    assert focus[0]["valueReference"]["reference"].endswith(f"/Task/{mine['id']}")
    assert entries[1]["request"] == {"method": "PUT", "url": f"Task/{mine['id']}"}
    if content == "id-only":
        assert "resource" not in entries[1]
    else:
        assert entries[1]["resource"]["status"] == "accepted" and entries[1]["resource"]["id"] == mine["id"]


def test_changes_right_after_subscribing_are_events_too(api: httpx.Client, receiver: Receiver) -> None:
    """The generator sees each Subscription as of its place in the outbox: a change committed right after the
    Subscription (before its handshake, before any book refresh) is event 1."""
    owner = organization(api, "cbo")
    made = subscribe(api, subscription(receiver.url, filters=(f"owner={owner}",)))
    first = created(api, task(owner))
    wait_until(lambda: status_of(api, made["id"]) == "active", what="activation")
    receiver.wait_for(lambda: [n for note in receiver.notifications(made["id"], "event-notification")
                               for n in note.event_numbers] == [1])
    note = receiver.notifications(made["id"], "event-notification")[0]
    assert note.body["entry"][1]["request"] == {"method": "POST", "url": f"Task/{first['id']}"}


def test_receiver_down_for_a_while_then_up_gets_everything_in_order(api: httpx.Client, receiver: Receiver) -> None:
    owner = organization(api, "cbo")
    made = active(api, receiver, subscription(receiver.url, filters=(f"owner={owner}",)))
    receiver.stop()
    tasks = [created(api, task(owner)) for _ in range(5)]
    # down until the server has tried and failed, not for a fixed time: on a slow machine a fixed second could
    # outlast the retries (FAST_RETRIES: 12 attempts within 1.2-2.4 s) and put the subscription in error
    wait_until(lambda: failed_attempts(api, made["id"]) >= 2, what="deliveries failing while the receiver is down")
    receiver.start()
    receiver.wait_for(lambda: {n for note in receiver.notifications(made["id"], "event-notification")
                               for n in note.event_numbers} == {1, 2, 3, 4, 5})
    arrived = [n for note in receiver.notifications(made["id"], "event-notification") for n in note.event_numbers]
    assert arrived == sorted(arrived) and len(tasks) == 5
    assert status_of(api, made["id"]) == "active"


def test_failing_receiver_puts_the_subscription_in_error_and_resend_recovers(api: httpx.Client,
                                                                             receiver: Receiver) -> None:
    owner = organization(api, "cbo")
    made = active(api, receiver, subscription(receiver.url, filters=(f"owner={owner}",)))
    receiver.answer = 500
    created(api, task(owner))
    wait_until(lambda: status_of(api, made["id"]) == "error", timeout=20, what="error status")
    failures = receiver.notifications(made["id"], "event-notification")
    assert len(failures) == 12 and {n for f in failures for n in f.event_numbers} == {1}
    status = api.get(f"/Subscription/{made['id']}/$status").json()
    parameters = {p["name"]: p for p in status["entry"][0]["resource"]["parameter"]}
    assert status["type"] == "searchset" and parameters["status"]["valueCode"] == "error"
    assert parameters["type"]["valueCode"] == "query-status"
    assert "answered 500" in parameters["error"]["valueCodeableConcept"]["text"]
    attempts = api.get(f"/Subscription/{made['id']}/$delivery-attempts").json()["parameter"]
    summary = {p["name"]: p.get("valueInteger") for p in attempts if "part" not in p}
    assert summary["queue-depth"] == 1 and summary["consecutive-failures"] == 12
    tried = [{q["name"]: next(v for k, v in q.items() if k.startswith("value")) for q in p["part"]}
             for p in attempts if p["name"] == "attempt"]
    assert tried[0]["status-code"] == 500 and tried[0]["events"] == "1-1"

    receiver.answer = 200
    created(api, task(owner))  # event 2 is generated while in error and kept
    resent = api.post(f"/Subscription/{made['id']}/$resend")
    assert resent.status_code == 200, resent.text
    wait_until(lambda: status_of(api, made["id"]) == "active", what="re-activation")
    receiver.wait_for(lambda: {n for note in receiver.notifications(made["id"], "event-notification")
                               if note.headers and note.status["status"] == "active"
                               for n in note.event_numbers} >= {1, 2})


def test_other_client_errors_are_not_retried(api: httpx.Client, receiver: Receiver) -> None:
    owner = organization(api, "cbo")
    made = active(api, receiver, subscription(receiver.url, filters=(f"owner={owner}",)))
    receiver.answer = 404
    created(api, task(owner))
    wait_until(lambda: status_of(api, made["id"]) == "error", what="error status")
    assert len(receiver.notifications(made["id"], "event-notification")) == 1
    assert "not retried" in api.get(f"/Subscription/{made['id']}").json()["error"]


def test_events_operation_and_heartbeats(api: httpx.Client, receiver: Receiver) -> None:
    owner = organization(api, "cbo")
    made = active(api, receiver, subscription(receiver.url, filters=(f"owner={owner}",), heartbeat=1))
    first = created(api, task(owner))
    created(api, task(owner))
    receiver.wait_for(lambda: {n for note in receiver.notifications(made["id"], "event-notification")
                               for n in note.event_numbers} == {1, 2})

    def beats_after_the_events() -> list[Received]:
        # a heartbeat falls due a second after the last notification: one may come between the handshake and
        # the events when the two creates are slow, and that one counts fewer events
        notes = receiver.notifications(made["id"])
        last_event = max(i for i, note in enumerate(notes) if note.kind == "event-notification")
        return [note for note in notes[last_event:] if note.kind == "heartbeat"]
    receiver.wait_for(lambda: bool(beats_after_the_events()), timeout=10)
    beat = beats_after_the_events()[0]
    assert beat.event_numbers == [] and beat.status["events-since-subscription-start"] == "2"
    events = api.get(f"/Subscription/{made['id']}/$events",
                     params={"eventsSinceNumber": "1", "eventsUntilNumber": "1", "content": "full-resource"}).json()
    assert events["type"] == "history" and len(events["entry"]) == 2
    assert {p["name"]: p.get("valueCode") for p in events["entry"][0]["resource"]["parameter"]}["type"] == \
        "query-event"
    assert events["entry"][1]["resource"]["id"] == first["id"]
    many = api.get("/Subscription/$status", params={"id": made["id"]}).json()
    assert many["total"] == 1


def test_off_pauses_and_a_client_cannot_fake_active(api: httpx.Client, receiver: Receiver) -> None:
    owner = organization(api, "cbo")
    made = active(api, receiver, subscription(receiver.url, filters=(f"owner={owner}",)))
    current = api.get(f"/Subscription/{made['id']}").json()
    paused = api.put(f"/Subscription/{made['id']}", json={**current, "status": "off"}, headers=FHIR_JSON).json()
    assert paused["status"] == "off"
    created(api, task(owner))
    time.sleep(0.5)
    assert receiver.notifications(made["id"], "event-notification") == []
    faked = api.put(f"/Subscription/{made['id']}", json={**paused, "status": "error"}, headers=FHIR_JSON).json()
    assert faked["status"] == "off"
    back = api.put(f"/Subscription/{made['id']}", json={**faked, "status": "active"}, headers=FHIR_JSON).json()
    assert back["status"] == "requested"
    wait_until(lambda: status_of(api, made["id"]) == "active", what="re-activation")


def test_clr_topics_report_status_changes_closures_and_new_obligations(api: httpx.Client,
                                                                       receiver: Receiver) -> None:
    provider, clinic = organization(api, "ecm"), organization(api, "clinic")
    changed = active(api, receiver, subscription(receiver.url, STATUS_TOPIC, (f"owner={provider}",),
                                                 "full-resource"))
    closed = active(api, receiver, subscription(receiver.url, CLOSED_TOPIC, (f"owner={provider}",)))
    due = active(api, receiver, subscription(receiver.url, DUE_TOPIC, ("code=authorization-decision",)))
    requests = active(api, receiver, subscription(receiver.url, SR_TOPIC))
    referral = created(api, referral_body(member(api), clinic))
    referral_task = created(api, referral_task_body(referral, provider))
    accepted = api.put(f"/Task/{referral_task['id']}", headers=FHIR_JSON,
                       json=with_status(referral_task, "Accepted", "2026-11-20", "accepted")).json()
    closing = api.put(f"/Task/{accepted['id']}", headers=FHIR_JSON, json=with_status(
        accepted, "5", "2026-11-21", "completed", statusReason={"text": "Services Received"}))
    assert closing.status_code == 200, closing.text

    def numbers(made: dict) -> list[int]:
        return [n for note in receiver.notifications(made["id"], "event-notification") for n in note.event_numbers]

    receiver.wait_for(lambda: len(numbers(changed)) == 3 and len(numbers(closed)) == 1 and len(numbers(due)) == 1
                      and len(numbers(requests)) == 1)
    time.sleep(0.3)
    statuses = [e["resource"]["businessStatus"]["coding"][0]["code"]
                for note in receiver.notifications(changed["id"], "event-notification")
                for e in note.body["entry"][1:]]
    assert statuses == ["3", "1", "5"]
    assert (numbers(changed), numbers(closed), numbers(due), numbers(requests)) == ([1, 2, 3], [1], [1], [1])


def test_an_overdue_obligation_is_announced_once(api: httpx.Client, receiver: Receiver) -> None:
    provider, clinic = organization(api, "ecm"), organization(api, "clinic")
    # received yesterday, so none of its obligations is overdue before the test makes one late
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    referral = created(api, referral_body(member(api), clinic, authored=yesterday))
    made = active(api, receiver, subscription(receiver.url, OVERDUE_TOPIC, (f"focus=ServiceRequest/{referral['id']}",),
                                              "full-resource"))
    created(api, referral_task_body(referral, provider))
    found = api.get("/Task", params={"focus": f"ServiceRequest/{referral['id']}",
                                     "code": "authorization-decision"}).json()["entry"][0]["resource"]
    late = {**found, "restriction": {**found["restriction"], "period": {"end": "2026-11-02"}}}
    assert api.put(f"/Task/{found['id']}", json=late, headers=FHIR_JSON).status_code == 200
    receiver.wait_for(lambda: len(receiver.notifications(made["id"], "event-notification")) >= 1)
    time.sleep(0.8)  # several sweeps later: still one announcement
    [note] = receiver.notifications(made["id"], "event-notification")
    assert note.event_numbers == [1] and note.body["entry"][1]["resource"]["id"] == found["id"]
    assert note.body["entry"][1]["request"]["method"] == "GET"


def test_a_kill_between_commit_and_delivery_still_delivers_after_restart(tmp_path: Path) -> None:
    receiver = Receiver().start()
    first = webhook_server(tmp_path / "data")
    try:
        with httpx.Client(base_url=first.base_url, timeout=30.0) as api:
            owner = organization(api, "cbo")
            made = active(api, receiver, subscription(receiver.url, filters=(f"owner={owner}",)))
            receiver.stop()
            created(api, task(owner))
        assert first.process is not None
        first.process.kill()  # SIGKILL: no shutdown hooks
        first.process.wait()
        receiver.start()
        second = webhook_server(tmp_path / "data")
        try:
            receiver.wait_for(lambda: any(n.event_numbers == [1] for n in receiver.notifications(
                made["id"], "event-notification")), timeout=20)
        finally:
            second.stop()
    finally:
        first.stop()
        receiver.stop()


def test_two_server_processes_on_one_store_deliver_each_event_number_once(tmp_path: Path) -> None:
    receiver = Receiver().start()
    servers = [webhook_server(tmp_path / "shared"), webhook_server(tmp_path / "shared")]
    try:
        clients = [httpx.Client(base_url=s.base_url, timeout=30.0) for s in servers]
        owner = organization(clients[0], "cbo")
        made = active(clients[0], receiver, subscription(receiver.url, filters=(f"owner={owner}",)))
        for n in range(20):
            created(clients[n % 2], task(owner))
        receiver.wait_for(lambda: {n for note in receiver.notifications(made["id"], "event-notification")
                                   for n in note.event_numbers} == set(range(1, 21)), timeout=30)
        time.sleep(1.0)
        delivered = [n for note in receiver.notifications(made["id"], "event-notification")
                     for n in note.event_numbers]
        assert sorted(delivered) == list(range(1, 21)), delivered
        for http in clients:
            http.close()
    finally:
        for started in servers:
            started.stop()
        receiver.stop()
