"""A real local HTTP endpoint for webhook tests: records every POST and PUT (method, path, headers, parsed body;
an empty body is ``{}``) and answers as told — 200, an error status, or not at all (stopped: connection
refused)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conftest import free_port


@dataclass
class Received:
    """One notification as the receiver got it."""

    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes
    at: float
    method: str = "POST"
    path: str = "/hook"

    @property
    def status(self) -> dict[str, str]:
        """The status Parameters' simple values by name (type, status, events-since-subscription-start…)."""
        parameters = self.body["entry"][0]["resource"]["parameter"]
        return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in parameters
                if "part" not in p}

    @property
    def kind(self) -> str:
        """handshake | heartbeat | event-notification."""
        return self.status["type"]

    @property
    def event_numbers(self) -> list[int]:
        """The event numbers this notification carries."""
        parameters = self.body["entry"][0]["resource"]["parameter"]
        return [int(part["valueString"]) for p in parameters if p["name"] == "notification-event"
                for part in p["part"] if part["name"] == "event-number"]

    @property
    def subscription(self) -> str:
        """The Subscription id the notification is for ("" for an R4 criteria notification, which names none)."""
        if self.body.get("resourceType") != "Bundle":
            return ""
        return self.status["subscription"]["reference"].rsplit("/", 1)[-1]  # type: ignore[index]


class Receiver:
    """The endpoint; ``answer`` (status code) can change while tests run; ``stop``/``start`` take it down/up."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.answer = 200
        self.delay = 0.0
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        """Listen (again) on the same port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()},
                                                      json.loads(raw) if raw else {}, raw, time.monotonic(),
                                                      self.command, self.path))
                    answer = receiver.answer
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST

            def log_message(self, *args: Any) -> None:
                return

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: deliveries now fail to connect."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def notifications(self, subscription_id: str, kind: str | None = None) -> list[Received]:
        """What arrived for one subscription (optionally of one kind), in arrival order."""
        with self.lock:
            return [r for r in self.received if r.subscription == subscription_id and (kind is None or r.kind == kind)]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        """Poll ``condition`` until true; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.02)
        raise AssertionError("the expected notifications did not arrive in time")
