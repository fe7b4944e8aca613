"""``fhir-clr report compliance`` end to end: referrals written through the engine into an embedded store, the
CLI run as a subprocess, the JSON numbers checked."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fhir_clr.app import build_services
from fhir_clr.config import Settings
from tests.api.clr_helpers import decided, referral_body, referral_task_body, with_status

NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


async def load(directory: Path) -> None:
    services = await build_services(Settings(data_dir=directory, dev=True, fixed_now=NOW))
    engine = services.engine

    async def write(body: dict[str, Any], resource_id: str | None = None) -> dict[str, Any]:
        result = await (engine.update(body["resourceType"], resource_id, body) if resource_id
                        else engine.create(body["resourceType"], body))
        assert result.stored is not None and result.stored.body is not None
        return orjson.loads(result.stored.body)

    try:
        clinic = await write({"resourceType": "Organization", "name": "Valley Clinic"})
        provider = await write({"resourceType": "Organization", "name": "ECM provider"})
        for n in range(3):
            member = await write({"resourceType": "Patient", "name": [{"family": f"Member{n}"}]})
            referral = await write(referral_body(f"Patient/{member['id']}", f"Organization/{clinic['id']}",
                                                 authored="2026-11-02"))
            referral = await write(decided(referral, "approved", "2026-11-04T10:00:00-08:00"), referral["id"])
            task = await write(referral_task_body(referral, f"Organization/{provider['id']}"))
            if n == 0:
                task = await write(with_status(task, "1", "2026-11-05", "accepted"), task["id"])
                await write(with_status(task, "5", "2026-11-20", "completed",
                                        statusReason={"text": "Services Received"}), task["id"])
    finally:
        await services.store.close()


def test_report_compliance_json(tmp_path: Path) -> None:
    asyncio.run(load(tmp_path))
    done = subprocess.run([sys.executable, "-m", "fhir_clr.cli", "report", "compliance", "--from", "2026-11-01",
                           "--to", "2026-11-30", "--as-of", "2026-11-25", "--format", "json", "--data",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    totals = report["totals"]
    assert (totals["referrals"], totals["authorized"], totals["medianDaysToAuthorization"]) == (3, 3, 2.0)
    assert totals["closedByReason"] == {"services-received": 1} and totals["medianDaysToClosure"] == 18.0
    [entity] = report["byReferringEntity"]
    assert entity["name"] == "Valley Clinic"
    # each approval owes the Member (due Fri 6th) and the clinic (24 h) a notice: none sent, all late now;
    # the closure notice is due two business days after it was processed (now): still pending
    assert (totals["noticesLate"], totals["noticesPending"]) == (6, 1)
    table = subprocess.run([sys.executable, "-m", "fhir_clr.cli", "report", "compliance", "--from", "2026-11-01",
                            "--to", "2026-11-30", "--data", str(tmp_path)], capture_output=True, text=True,
                           timeout=120)
    assert table.returncode == 0 and "Enhanced Care Management" in table.stdout and "Valley Clinic" in table.stdout
