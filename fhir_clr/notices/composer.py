"""The CLR Notice ``Communication`` of one obligation: created ``preparation`` (or ``on-hold`` when its kind is
held for review) with an identifier derived from the obligation, so a re-run after a crash finds it instead of
composing a second notice. Only a Referring Entity's notice is ``basedOn`` the referral as well (which lets that
organization see it); a Member's notice reaches the referral through ``about`` alone, so no provider sees the
Member's letters. ``payload`` is exactly what is sent; for a letter a second payload carries the
letter's fields as JSON for the print batch."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from fhir_clr.clr.codes import CodeLists
from fhir_clr.clr.config import extension_url, profile_url
from fhir_clr.notices.channels import DIGEST, EMAIL, FHIR, LETTER, Route
from fhir_clr.notices.fields import NoticeFields
from fhir_clr.notices.templates import RenderedNotice

NOTICE_ID_SYSTEM = "http://fhir-clr.org/fhir/sid/notice"
"""Identifier system of the server's notices; the value is the obligation Task's id."""
PARTICIPATION_MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
MEDIUM = {EMAIL: ("EMAILWRIT", "email"), DIGEST: ("EMAILWRIT", "email"), LETTER: ("MAILWRIT", "mail"),
          FHIR: ("ELECTRONIC", "electronic data")}
FIELDS_TITLE = "notice-fields"
PREPARATION, ON_HOLD = "preparation", "on-hold"


def payload_text(rendered: RenderedNotice) -> str:
    """The recorded text of a notice: its subject line, a blank line, its body."""
    return f"Subject: {rendered.subject}\n\n{rendered.body}"


def split_payload(text: str) -> tuple[str, str]:
    """(subject, body) of a recorded notice text."""
    first, _, rest = text.partition("\n\n")
    if first.startswith("Subject: "):
        return first.removeprefix("Subject: "), rest
    return "", text


def notice_text(communication: dict[str, Any]) -> str:
    """The recorded text of a CLR Notice (its first string payload; empty when it has none)."""
    for part in communication.get("payload", ()):
        text = part.get("contentString") if isinstance(part, dict) else None
        if isinstance(text, str):
            return text
    return ""


def notice_kind(communication: dict[str, Any]) -> str:
    """The notice kind code a CLR Notice was composed for (its ``reasonCode``)."""
    for concept in communication.get("reasonCode", ()):
        for coding in concept.get("coding", ()) if isinstance(concept, dict) else ():
            if isinstance(coding, dict) and coding.get("code"):
                return str(coding["code"])
    return ""


def obligation_of(communication: dict[str, Any]) -> str | None:
    """The ``Task/id`` of the obligation a CLR Notice satisfies."""
    for based_on in communication.get("basedOn", ()):
        reference = based_on.get("reference") if isinstance(based_on, dict) else None
        if isinstance(reference, str) and reference.startswith("Task/"):
            return reference
    return None


class NoticeComposer:
    """Builds CLR Notice Communications."""

    def __init__(self, rules: dict[str, Any], codes: CodeLists) -> None:
        self.rules = rules
        self.codes = codes
        self._channel_url = extension_url(rules, "notice-channel")
        self._profile = profile_url("clr-notice")

    def communication(self, obligation: dict[str, Any], route: Route, rendered: RenderedNotice,
                      fields: NoticeFields, *, held: bool) -> dict[str, Any]:
        """The notice ``obligation`` asks for, going by ``route``."""
        assert route.channel is not None
        kind = fields.notice_kind
        code, display = MEDIUM[route.channel]
        recipient = (obligation.get("restriction") or {}).get("recipient") or []
        focus = obligation.get("focus")
        # A Referring Entity's notice is basedOn its referral too, so the Referring Entity sees it (the FHIR
        # channel needs that); a Member's notice is linked by ``about`` only: the plan's alone.
        to_member = any(isinstance(r, dict) and str(r.get("reference", "")).startswith("Patient/") for r in recipient)
        payload: list[dict[str, Any]] = [{"contentString": payload_text(rendered)}]
        if route.channel == LETTER:
            payload.append({"contentAttachment": {
                "contentType": "application/json", "title": FIELDS_TITLE,
                "data": base64.b64encode(orjson.dumps(fields.variables())).decode()}})
        body: dict[str, Any] = {
            "resourceType": "Communication",
            "meta": {"profile": [self._profile]},
            "identifier": [{"system": NOTICE_ID_SYSTEM, "value": obligation["id"]}],
            "status": ON_HOLD if held else PREPARATION,
            "category": [{"coding": [self.codes["message-category"].coding("notice")]}],
            "medium": [{"coding": [{"system": PARTICIPATION_MODE, "code": code, "display": display}]}],
            "reasonCode": [{"coding": [self.codes["notice-kinds"].coding(kind)]}],
            "basedOn": [{"reference": f"Task/{obligation['id']}"}, *([focus] if focus and not to_member else [])],
            "recipient": recipient,
            "payload": payload,
            "extension": [{"url": self._channel_url,
                           "valueCoding": self.codes["notice-channels"].coding(route.channel)}],
        }
        if focus:
            body["about"] = [focus]
        if obligation.get("for"):
            body["subject"] = obligation["for"]
        return body
