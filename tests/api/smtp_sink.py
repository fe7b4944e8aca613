"""A real SMTP server in the test process (aiosmtpd) that requires STARTTLS with a certificate from a CA the test
generates (trustme): records every message it accepts and refuses recipients whose address starts with
``refused`` (550). ``stop``/``start`` take it down and up again on the same port."""

from __future__ import annotations

import email
import ssl
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port


@dataclass
class Delivered:
    """One message as the relay accepted it."""

    recipients: list[str]
    message: EmailMessage
    at: float

    @property
    def text(self) -> str:
        """The message body (text)."""
        return str(self.message.get_content()).replace("\r\n", "\n")


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("refused"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not session.ssl and self.sink.starttls and not self.sink.implicit:
            return "530 5.7.0 must issue STARTTLS first"
        with self.sink.lock:
            message = email.message_from_bytes(envelope.content, policy=policy.default)
            self.sink.messages.append(Delivered(list(envelope.rcpt_tos), message, time.time()))  # type: ignore[arg-type]
        return "250 Message accepted"


class SmtpSink:
    """The relay; ``env`` points a fhir-clr server at it. With ``login`` (user, password) it requires that login
    (over TLS only); ``implicit`` makes it speak TLS from the first byte; ``starttls=False`` offers no TLS."""

    def __init__(self, directory: Path, *, login: tuple[str, str] | None = None, implicit: bool = False,
                 starttls: bool = True) -> None:
        self.port = free_port()
        self.ca = trustme.CA()
        certificate = self.ca.issue_cert("127.0.0.1", "localhost")
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(self.context)
        self.ca_file = directory / "smtp-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.messages: list[Delivered] = []
        self.lock = threading.Lock()
        self.controller: Controller | None = None
        self.login = login
        self.implicit = implicit
        self.starttls = starttls

    @property
    def env(self) -> dict[str, str]:
        """The fhir-clr settings for this relay."""
        return {"FHIR_CLR_SMTP_HOST": "127.0.0.1", "FHIR_CLR_SMTP_PORT": str(self.port),
                "FHIR_CLR_SMTP_TLS": "starttls", "FHIR_CLR_SMTP_CA_FILE": str(self.ca_file),
                "FHIR_CLR_NOTICE_FROM": "notices@plan.example.org"}

    def start(self) -> None:
        """Listen (again)."""
        options: dict[str, Any] = {"auth_require_tls": True}
        if self.login is not None:
            options.update(authenticator=self._authenticate, auth_required=True)
        if self.implicit:
            options.update(ssl_context=self.context, server_hostname="127.0.0.1")
        elif self.starttls:
            options.update(tls_context=self.context, require_starttls=True)
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert self.login is not None
        accepted = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) \
            == self.login
        return AuthResult(success=accepted, handled=False)

    def stop(self) -> None:
        """Stop listening (connections are refused)."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Delivered]:
        """The messages accepted for ``address``."""
        with self.lock:
            return [m for m in self.messages if address in m.recipients]

    def wait_for(self, address: str, timeout: float = 20.0) -> Delivered:
        """The first message for ``address``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no message for {address} within {timeout} s")
