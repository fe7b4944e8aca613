"""Secure email through an SMTP relay (stdlib ``smtplib`` in a worker thread): TLS always (STARTTLS required,
or implicit TLS), certificate and host name verified (optionally against a private CA), login when configured.

A send either succeeds, fails for a passing reason (connection refused, timeout, a 4xx reply, and the relay
refusing the server's own login or sender address, which the plan must fix: try again later) or fails for good
(a 5xx reply to the recipient or the message, such as 550 recipient refused). Error texts name the SMTP code
and the step, never the message or an address.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from fhir_clr.config import ConfigurationError, Settings

DEFAULT_PORTS = {"starttls": 587, "implicit": 465}
ENCRYPTED_SUBJECT = "Encrypted referral notice"
"""The outer subject of an S/MIME-encrypted notice (its own subject is inside the encrypted part)."""


class DeliveryFailure(Exception):
    """A notice that could not be delivered; ``permanent`` when trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One message: where to, the subject and text, and its stable Message-ID (``<…@…>``)."""

    to: str
    subject: str
    body: str
    message_id: str
    sent_at: datetime
    certificate_pem: bytes | None = None
    """The recipient's S/MIME certificate (PEM or DER): when given the message is encrypted for it."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """The SMTP settings of the server (see the README's Configuration table)."""

    host: str
    port: int
    tls: str
    sender: str
    username: str | None
    password: str | None = field(repr=False)
    ca_file: Path | None
    timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig | None:
        """The relay configured in ``settings`` (None when no ``FHIR_CLR_SMTP_HOST``); ConfigurationError for an
        incomplete one."""
        if not settings.smtp_host:
            return None
        if not settings.notice_from:
            raise ConfigurationError("FHIR_CLR_NOTICE_FROM must be set when FHIR_CLR_SMTP_HOST is")
        password = settings.smtp_password.get_secret_value() if settings.smtp_password is not None else None
        if settings.smtp_password_file is not None:
            password = settings.smtp_password_file.read_text().strip()
        return cls(settings.smtp_host, settings.smtp_port or DEFAULT_PORTS[settings.smtp_tls], settings.smtp_tls,
                   settings.notice_from, settings.smtp_username, password, settings.smtp_ca_file,
                   settings.smtp_timeout_seconds)

    @property
    def domain(self) -> str:
        """The sender's domain (the right-hand side of every Message-ID)."""
        return self.sender.rsplit("@", 1)[-1].strip(">") or "fhir-clr.invalid"


def message_id(key: str, domain: str) -> str:
    """The stable Message-ID of the notice (or digest) identified by ``key``."""
    return f"<{key}@{domain}>"


def build_message(config: SmtpConfig, email: OutgoingEmail) -> EmailMessage:
    """The RFC 5322 message of ``email`` (S/MIME enveloped for the recipient's certificate when it has one)."""
    inner = EmailMessage()
    inner.set_content(email.body)
    subject = email.subject
    if email.certificate_pem is not None:
        inner["Subject"] = subject  # headers travel in clear: the real subject goes inside the envelope
        subject = ENCRYPTED_SUBJECT
        pem = email.certificate_pem.lstrip().startswith(b"-----BEGIN")
        certificate = (x509.load_pem_x509_certificate if pem else x509.load_der_x509_certificate)(email.certificate_pem)
        enveloped = pkcs7.PKCS7EnvelopeBuilder().set_data(inner.as_bytes()).add_recipient(certificate) \
            .set_content_encryption_algorithm(algorithms.AES256).encrypt(Encoding.DER, [])
        message = EmailMessage()
        message.set_content(enveloped, maintype="application", subtype="pkcs7-mime",
                            params={"smime-type": "enveloped-data", "name": "smime.p7m"},
                            disposition="attachment", filename="smime.p7m")
    else:
        message = inner
    message["From"] = config.sender
    message["To"] = email.to
    message["Subject"] = subject
    message["Date"] = format_datetime(email.sent_at)
    message["Message-ID"] = email.message_id
    return message


class SmtpSender:
    """Sends notices through the configured relay."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._client: smtplib.SMTP | None = None

    async def send(self, email: OutgoingEmail) -> None:
        """Deliver ``email`` to the relay (DeliveryFailure when it is not accepted). The connection stays open
        for the next message until :meth:`close` (the worker closes it after each pass)."""
        try:
            message = build_message(self.config, email)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise DeliveryFailure("The recipient's S/MIME certificate cannot be used (an RSA X.509 certificate "
                                  "is needed)", permanent=True) from None
        await asyncio.to_thread(self._send, message)

    async def close(self) -> None:
        """Close the connection kept open between messages (if any)."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        if config.tls == "implicit":
            client: smtplib.SMTP = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                                    context=self.context)
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        try:
            if config.tls == "starttls":
                client.ehlo()
                if not client.has_extn("starttls"):
                    raise DeliveryFailure("The SMTP relay does not offer STARTTLS; notices are never sent in "
                                          "plain text", permanent=False)
                client.starttls(context=self.context)
                client.ehlo()
            if config.username:
                client.login(config.username, config.password or "")
        except BaseException:
            client.close()
            raise
        return client

    def _send(self, message: EmailMessage) -> None:
        try:
            if self._client is not None:
                try:
                    self._client.send_message(message)
                    return
                except smtplib.SMTPServerDisconnected:
                    self._client = None  # the relay closed the kept connection: open a new one below
            self._client = self._connect()
            self._client.send_message(message)
        except DeliveryFailure:
            self._drop()
            raise
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            raise DeliveryFailure(f"SMTP {codes[0] if codes else '5xx'}: the relay refused the recipient",
                                  permanent=all(c >= 500 for c in codes)) from None
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPSenderRefused) as error:
            # the relay refuses the server's login or sender address: a configuration to fix, not the notice's
            # fault, so the notice waits (retried) instead of failing
            self._drop()
            what = "login" if isinstance(error, smtplib.SMTPAuthenticationError) else "sender address"
            raise DeliveryFailure(f"SMTP {error.smtp_code}: the relay refused the {what} (check the SMTP "
                                  "settings)", permanent=False) from None
        except smtplib.SMTPResponseException as error:
            if error.smtp_code in (421, 530):  # the relay is closing or refuses the session itself
                self._drop()
            raise DeliveryFailure(f"SMTP {error.smtp_code}: the relay refused the message",
                                  permanent=error.smtp_code >= 500 and error.smtp_code != 530) from None
        except ssl.SSLCertVerificationError:
            self._drop()
            raise DeliveryFailure("TLS: the SMTP relay's certificate did not verify", permanent=False) from None
        except (OSError, smtplib.SMTPException) as error:
            self._drop()
            raise DeliveryFailure(f"SMTP relay unreachable ({type(error).__name__})", permanent=False) from None

    def _drop(self) -> None:
        """Forget a connection that failed (closed without a goodbye)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.close()
