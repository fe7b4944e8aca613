"""Member letters as FHIR data: what marks a CLR Notice as a written letter to print, and a Member who opted out
of written communication.

* A letter is a CLR Notice ``Communication`` whose ``medium`` is v3-ParticipationMode ``MAILWRIT`` (written,
  mailed); it waits to be printed while ``status`` is ``preparation`` and is sent once its print batch is mailed.
* A Member who opted out of written communication carries the ``written-communication-opt-out`` extension with
  ``valueBoolean`` true on their Patient; no letter is printed for them.
* A print batch is a ``List`` identified ``PRINT_BATCH_SYSTEM|{day}`` whose entries are the letters it prints.
"""

from __future__ import annotations

from typing import Any

from fhir_clr.clr.config import extension_of, profile_url, value_of

PARTICIPATION_MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
MAILED_WRITING = "MAILWRIT"
LETTER_MEDIUM = f"{PARTICIPATION_MODE}|{MAILED_WRITING}"
"""The ``medium`` search token of a mailed letter."""
WAITING_STATUS = "preparation"
SENT_STATUS = "completed"
OPT_OUT_URL = profile_url("written-communication-opt-out")
OPT_OUT_PARAM = "written-communication-opt-out"
"""The Patient search parameter of the opt-out extension."""
PRINT_BATCH_SYSTEM = "http://fhir-clr.org/fhir/sid/print-batch"


def opted_out_of_letters(patient: dict[str, Any]) -> bool:
    """True when the Member opted out of written communication."""
    return value_of(extension_of(patient, OPT_OUT_URL)) is True
