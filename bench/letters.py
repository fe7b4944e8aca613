"""Member letters benchmark: cut, print and mark mailed one daily print batch of ``--letters`` letters.

Writes the Members, their decided CLR Referrals and the queued letters (MAILWRIT Communications in preparation,
``basedOn`` each Member's decision obligation, as the notice worker leaves them) through the engine into a fresh
embedded store, then times each step of the batch through the same code the HTTP operations and the CLI use,
and prints letters/s and PDF pages/s.

    python bench/letters.py                  # 1,000 letters
    python bench/letters.py --letters 200    # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BASE = "http://fhir-clr.org/fhir"
MAILWRIT = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode", "code": "MAILWRIT"}]}


async def _created(engine: Any, body: dict[str, Any]) -> dict[str, Any]:
    result = await engine.create(body["resourceType"], body)
    return orjson.loads(result.stored.body)


async def _queue(engine: Any, n: int, decided: str) -> None:
    """Member ``n``, a decided referral and the letter the notice worker queues for it."""
    patient = await _created(engine, {"resourceType": "Patient", "name": [{"family": f"Member{n}", "given": ["A"]}],
                                      "address": [{"line": [f"{n} Main Street"], "city": "Fresno", "state": "CA",
                                                   "postalCode": f"93{n % 1000:03d}"}]})
    subject = {"reference": f"Patient/{patient['id']}"}
    status = "denied" if n % 3 == 0 else "approved"
    referral = await _created(engine, {
        "resourceType": "ServiceRequest", "meta": {"profile": [f"{BASE}/StructureDefinition/clr-referral"]},
        "status": "active", "intent": "order", "code": {"text": "ECM"}, "subject": subject,
        "requester": {"reference": "Organization/clinic"}, "authoredOn": decided[:10],
        "extension": [{"url": f"{BASE}/StructureDefinition/referral-type", "valueCoding": {"code": "1"}}]})
    referral["extension"].append({"url": f"{BASE}/StructureDefinition/authorization-decision", "extension": [
        {"url": "status", "valueCoding": {"code": status}}, {"url": "date", "valueDateTime": decided}]})
    await engine.update("ServiceRequest", referral["id"], referral)
    found = await engine.search("Task", [("focus", f"ServiceRequest/{referral['id']}"),
                                         ("code", "authorization-decision-member")])
    owed = orjson.loads(found.matches[0].body)
    await _created(engine, {
        "resourceType": "Communication", "status": "preparation", "basedOn": [{"reference": f"Task/{owed['id']}"}],
        "about": [{"reference": f"ServiceRequest/{referral['id']}"}], "subject": subject, "recipient": [subject],
        "medium": [MAILWRIT], "payload": [{"contentString": f"We made a decision about your request ({status})."}]})


async def main(letters: int) -> None:
    from pypdf import PdfReader

    from fhir_clr.app import build_services
    from fhir_clr.config import Settings
    from fhir_clr.letters.batch import build_print_batches

    with tempfile.TemporaryDirectory() as data:
        services = await build_services(Settings(data_dir=Path(data), dev=True))
        try:
            engine = services.engine
            await engine.update("Organization", "clinic", {"resourceType": "Organization", "id": "clinic",
                                                           "name": "Clinic"})
            decided = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
            started = time.perf_counter()
            for n in range(letters):
                await _queue(engine, n, decided)
            print(f"queued {letters} letters (Member, referral, decision, letter) in "
                  f"{time.perf_counter() - started:.1f} s")
            batches = build_print_batches(engine, services.settings.letters_dir)
            day = batches.today()
            timings: list[tuple[str, float, str]] = []
            started = time.perf_counter()
            cut = await batches.cut(day)
            timings.append(("cut", time.perf_counter() - started, f"{len(cut.batch.get('entry', []))} letters"))
            started = time.perf_counter()
            await batches.letters(cut.batch, day)
            timings.append(("read letters", time.perf_counter() - started, "the FHIR data of every letter"))
            started = time.perf_counter()
            pdf, count = await batches.print_file(cut.batch, day)
            pages = len(PdfReader(io.BytesIO(pdf)).pages)
            elapsed = time.perf_counter() - started
            timings.append(("print file", elapsed, f"{count} letters, {pages} pages ({pages / elapsed:.0f} pages/s), "
                                                  f"{len(pdf) / 1e6:.1f} MB"))
            started = time.perf_counter()
            again, _ = await batches.print_file(cut.batch, day)
            timings.append(("download again", time.perf_counter() - started,
                            "unchanged letters: " + ("the same bytes" if again == pdf else "DIFFERENT BYTES")))
            started = time.perf_counter()
            done = await batches.mark_mailed(day, day)
            timings.append(("mark mailed", time.perf_counter() - started, f"{done.marked} letters sent"))
            for step, seconds, what in timings:
                print(f"  {step:<14} {seconds:7.2f} s  {letters / seconds:7.0f} letters/s   {what}")
        finally:
            await services.store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=1000, help="letters in the batch (default 1000)")
    asyncio.run(main(parser.parse_args().letters))
