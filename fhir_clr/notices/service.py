"""Building the notice worker of a server process from its settings and services."""

from __future__ import annotations

from typing import Any

from fhir_clr.config import ConfigurationError, Settings
from fhir_clr.engine.engine import Engine
from fhir_clr.notices.smtp import SmtpConfig, SmtpSender
from fhir_clr.notices.templates import NoticeTemplates
from fhir_clr.notices.worker import NoticeWorker, RetryPolicy
from fhir_clr.store.signalling import SignallingStore


def notice_templates(settings: Settings) -> NoticeTemplates:
    """The configured notice templates, checked (TemplateError names a template reaching beyond its fields;
    ConfigurationError when the directory does not exist)."""
    if not settings.notices_dir.is_dir():
        raise ConfigurationError("FHIR_CLR_NOTICES_DIR must name a directory of notice templates")
    templates = NoticeTemplates(settings.notices_dir)
    templates.check()
    return templates


def notice_worker(settings: Settings, engine: Engine, store: SignallingStore[Any]) -> NoticeWorker | None:
    """The notice worker when ``FHIR_CLR_NOTICE_DELIVERY`` is on (None otherwise); every commit ``store``
    announces starts its next pass at once (it polls for other processes' commits)."""
    templates = notice_templates(settings)
    if not settings.notice_delivery:
        return None
    config = SmtpConfig.from_settings(settings)
    return NoticeWorker(engine, store, templates, SmtpSender(config) if config else None,
                        RetryPolicy(settings.notice_retry_base_seconds, settings.notice_retry_max_seconds),
                        poll_seconds=settings.notice_poll_seconds,
                        lease_seconds=settings.subscription_lease_seconds, woken=store.listener())
