"""Which channel a notice goes by, chosen per recipient from FHIR data (documented in the README, "Notices"):

* a preference extension on the recipient (Organization, PractitionerRole, Practitioner or Patient; url in the
  rules' ``notices.preference_urls``) with one of ``email``, ``fhir``, ``digest``, ``letter``, ``phone``;
* addresses from ``telecom`` (``email``; a PractitionerRole without one falls back to its Organization's);
* for ``fhir``, a live Subscription on the CLR notice topic whose subscriber is the recipient's Organization;
* without a preference: a Member gets the rules' ``member_default_channel`` (a letter), anyone else email when
  they have an address, else FHIR when they subscribe;
* an S/MIME certificate the recipient registered (``notices.smime_certificate_url``, a valueAttachment) makes
  its email encrypted for it;
* a Member who opted out of written communication (``notices.written_opt_out_urls``, valueBoolean true) gets
  email when they have an address, otherwise a person must call them ("needs contact");
* ``digest`` applies to the rules' digest kinds (loop closures); the recipient's other notices go by email.
No usable channel gives a route without a channel and the reason (never any address or other content).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fhir_clr.clr.config import value_of

NO_CHANNEL, NEEDS_CONTACT = "no-channel", "needs-contact"
EMAIL, FHIR, DIGEST, LETTER, PHONE = "email", "fhir", "digest", "letter", "phone"
NOTICE_TOPIC = "http://fhir-clr.org/fhir/SubscriptionTopic/clr-notice"
"""The SubscriptionTopic a Referring Entity platform subscribes to for its notices."""

Reader = Callable[[str], Awaitable[dict[str, Any] | None]]
"""Reads a resource by ``Type/id`` (None when absent)."""
SubscriptionFinder = Callable[[str], Awaitable[str | None]]
"""The id of a live notice-topic Subscription of an Organization reference (None when it has none)."""


@dataclass(frozen=True, slots=True)
class Route:
    """How one notice goes: a channel with its address, or no channel with the worklist status and reason."""

    channel: str | None
    address: str | None = None
    """The email address (email and digest), or the Subscription id (fhir)."""
    name: str = ""
    """The recipient's name as the notice addresses it."""
    status: str | None = None
    """``no-channel`` or ``needs-contact`` when ``channel`` is None (or ``phone``)."""
    reason: str = ""
    certificate: bytes | None = None
    """The recipient's S/MIME certificate (DER or PEM) when it registered one: its email is encrypted for it."""

    @property
    def deliverable(self) -> bool:
        """True when the server itself delivers or queues the notice."""
        return self.channel in (EMAIL, FHIR, DIGEST, LETTER)


def _telecom(resource: dict[str, Any], system: str) -> str | None:
    for point in resource.get("telecom", ()):
        if isinstance(point, dict) and point.get("system") == system and point.get("value") \
                and point.get("use") != "old":
            return str(point["value"])
    return None


def _name(resource: dict[str, Any]) -> str:
    name = resource.get("name")
    if isinstance(name, str):
        return name
    names = name if isinstance(name, list) else []
    first = names[0] if names and isinstance(names[0], dict) else {}
    if first.get("text"):
        return str(first["text"])
    return " ".join([*map(str, first.get("given", [])), str(first.get("family", ""))]).strip()


class ChannelChooser:
    """Chooses the route of each notice from the recipient's FHIR data."""

    def __init__(self, rules: dict[str, Any], read: Reader, subscription_of: SubscriptionFinder) -> None:
        conf = rules.get("notices", {})
        self.preference_urls = tuple(conf.get("preference_urls", ()))
        self.opt_out_urls = tuple(conf.get("written_opt_out_urls", ()))
        self.member_default = conf.get("member_default_channel", LETTER)
        self.certificate_url = conf.get("smime_certificate_url")
        self.digest_kinds = frozenset(conf.get("digest", {}).get("kinds", ()))
        self.read = read
        self.subscription_of = subscription_of

    def _extension(self, resource: dict[str, Any], urls: tuple[str, ...]) -> Any:
        for extension in resource.get("extension", ()):
            if isinstance(extension, dict) and extension.get("url") in urls:
                value = value_of(extension)
                return value.get("code") if isinstance(value, dict) else value
        return None

    async def route(self, recipient: str | None, kind: str) -> Route:
        """The route of a notice of ``kind`` to ``recipient`` (a ``Type/id`` reference)."""
        if not recipient or "/" not in recipient:
            return Route(None, status=NO_CHANNEL, reason="The obligation names no recipient")
        resource = await self.read(recipient)
        if resource is None:
            return Route(None, status=NO_CHANNEL, reason="The recipient does not exist")
        kind_of_recipient = recipient.split("/", 1)[0]
        if kind_of_recipient == "Patient":
            return self._member(resource)
        return await self._entity(resource, recipient, kind)

    def _certificate(self, *resources: dict[str, Any] | None) -> bytes | None:
        """The first registered S/MIME certificate among ``resources`` (decoded attachment data)."""
        for resource in resources:
            for extension in (resource or {}).get("extension", ()):
                if isinstance(extension, dict) and extension.get("url") == self.certificate_url:
                    data = (extension.get("valueAttachment") or {}).get("data")
                    with contextlib.suppress(ValueError, TypeError):
                        return base64.b64decode(data, validate=True) if data else None
        return None

    def _member(self, patient: dict[str, Any]) -> Route:
        name = _name(patient)
        preference = self._extension(patient, self.preference_urls) or self.member_default
        email = _telecom(patient, "email")
        opted_out = self._extension(patient, self.opt_out_urls) is True
        if opted_out or preference in (EMAIL, PHONE):
            if email and preference != PHONE:
                return Route(EMAIL, email, name, certificate=self._certificate(patient))
            why = "The Member opted out of written notices" if opted_out else "The Member asked to be called"
            if _telecom(patient, "phone") or _telecom(patient, "sms"):
                return Route(PHONE, None, name, NEEDS_CONTACT, f"{why}: call them (no email address on file)")
            return Route(None, None, name, NEEDS_CONTACT, f"{why} and has no email address or phone number")
        if preference == LETTER:
            if not patient.get("address"):
                return Route(None, None, name, NO_CHANNEL, "The Member has no mailing address for the letter")
            return Route(LETTER, None, name)
        return Route(None, None, name, NO_CHANNEL, f"A Member cannot receive notices by {preference}")

    async def _entity(self, resource: dict[str, Any], reference: str, kind: str) -> Route:
        name = _name(resource)
        organization = reference if reference.startswith("Organization/") else None
        email = _telecom(resource, "email")
        owner: dict[str, Any] | None = None
        if reference.startswith("PractitionerRole/"):
            org_ref = (resource.get("organization") or {}).get("reference")
            organization = org_ref if isinstance(org_ref, str) else None
            owner = await self.read(organization) if organization else None
            if owner is not None:
                email = email or _telecom(owner, "email")
                name = name or _name(owner)
        certificate = self._certificate(resource, owner)
        preference = self._extension(resource, self.preference_urls)
        if preference == DIGEST:
            if not email:
                return Route(None, None, name, NO_CHANNEL, "The recipient asked for a digest but has no email address")
            return Route(DIGEST if kind in self.digest_kinds else EMAIL, email, name, certificate=certificate)
        if preference == EMAIL or (preference is None and email):
            if not email:
                return Route(None, None, name, NO_CHANNEL, "The recipient asked for email but has no email address")
            return Route(EMAIL, email, name, certificate=certificate)
        if preference in (FHIR, None):
            subscription = await self.subscription_of(organization) if organization else None
            if subscription:
                return Route(FHIR, subscription, name)
            if preference == FHIR:
                return Route(None, None, name, NO_CHANNEL, "The recipient asked for FHIR notices but its "
                             "organization has no active Subscription to the notice topic")
            return Route(None, None, name, NO_CHANNEL, "The recipient has no email address, no stated channel and "
                         "no Subscription to the notice topic")
        if preference == PHONE:
            return Route(PHONE, None, name, NEEDS_CONTACT, "The recipient asked to be called")
        return Route(None, None, name, NO_CHANNEL, f"Notices to a Referring Entity go by a secure electronic "
                     f"method; the stated channel {preference!r} is not one")
