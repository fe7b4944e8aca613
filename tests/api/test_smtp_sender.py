"""The SMTP sender against a real relay in the test process: STARTTLS with a verified certificate, login (from a
password file) only over TLS, implicit TLS, and the refusals that keep notices safe — a relay whose certificate
does not verify, or one that offers no STARTTLS, gets nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from fhir_clr.config import Settings
from fhir_clr.notices.smtp import DeliveryFailure, OutgoingEmail, SmtpConfig, SmtpSender
from tests.api.smtp_sink import SmtpSink

TO = "intake@clinic.example.org"


def _email(n: int = 1) -> OutgoingEmail:
    return OutgoingEmail(TO, "Referral 1: authorization decision", "Authorization decision: Approved\n",
                         f"<notice-{n}@plan.example.org>", datetime(2026, 12, 2, tzinfo=UTC))


def _sender(sink: SmtpSink, **settings: object) -> SmtpSender:
    values: dict[str, object] = {"smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_ca_file": sink.ca_file,
                                 "notice_from": "notices@plan.example.org", "smtp_timeout_seconds": 5.0, **settings}
    config = SmtpConfig.from_settings(Settings(**values))  # type: ignore[arg-type]
    assert config is not None
    return SmtpSender(config)


async def _send(sender: SmtpSender, *emails: OutgoingEmail) -> None:
    try:
        for email in emails:
            await sender.send(email)
    finally:
        await sender.close()


@pytest.fixture()
def relay(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    sink = SmtpSink(tmp_path, **getattr(request, "param", {}))
    sink.start()
    yield sink
    sink.stop()


@pytest.mark.parametrize("relay", [{"login": ("notices", "s3cret")}], indirect=True)
def test_starttls_then_login_from_a_password_file(relay: SmtpSink, tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    asyncio.run(_send(_sender(relay, smtp_username="notices", smtp_password_file=secret), _email(1), _email(2)))
    messages = relay.to(TO)
    assert [m.message["Message-ID"] for m in messages] == ["<notice-1@plan.example.org>", "<notice-2@plan.example.org>"]
    assert messages[0].message["From"] == "notices@plan.example.org"


@pytest.mark.parametrize("relay", [{"login": ("notices", "s3cret")}], indirect=True)
def test_a_wrong_password_is_a_clear_error_and_the_notice_waits(relay: SmtpSink) -> None:
    with pytest.raises(DeliveryFailure, match="SMTP 535: the relay refused the login") as failure:
        asyncio.run(_send(_sender(relay, smtp_username="notices", smtp_password="wrong"), _email()))
    assert "wrong" not in str(failure.value) and not failure.value.permanent


@pytest.mark.parametrize("relay", [{"implicit": True}], indirect=True)
def test_implicit_tls(relay: SmtpSink) -> None:
    asyncio.run(_send(_sender(relay, smtp_tls="implicit"), _email()))
    assert len(relay.to(TO)) == 1


def test_a_relay_whose_certificate_does_not_verify_gets_nothing(relay: SmtpSink, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    with pytest.raises(DeliveryFailure, match="certificate") as failure:
        asyncio.run(_send(_sender(relay, smtp_ca_file=other_ca), _email()))
    assert not failure.value.permanent and relay.to(TO) == []


@pytest.mark.parametrize("relay", [{"starttls": False}], indirect=True)
def test_a_relay_without_starttls_gets_nothing(relay: SmtpSink) -> None:
    with pytest.raises(DeliveryFailure, match="STARTTLS"):
        asyncio.run(_send(_sender(relay), _email()))
    assert relay.to(TO) == []


def test_a_refused_recipient_is_permanent_and_names_no_address(relay: SmtpSink) -> None:
    email = OutgoingEmail("refused-x@clinic.example.org", "s", "b\n", "<notice-9@plan.example.org>",
                          datetime(2026, 12, 2, tzinfo=UTC))
    with pytest.raises(DeliveryFailure, match="SMTP 550") as failure:
        asyncio.run(_send(_sender(relay), email))
    assert failure.value.permanent and "refused-x" not in str(failure.value)
