"""``fhir-clr letters batch`` and ``fhir-clr letters mailed`` on the data directory of a server that queued the
letters (seeded over HTTP as the notice worker would, then stopped): the PDF the command writes opens with a
letter and its enclosure, a second cut writes the same batch, and marking it mailed completes the Member's
obligation once."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from pypdf import PdfReader

from tests.api.clr_helpers import obligation
from tests.api.letters_helpers import CLINICAL, decided_referral, member_with_address, queued_letter
from tests.conftest import LiveServer

REPO = Path(__file__).resolve().parents[2]
TODAY = datetime.now(ZoneInfo("America/Los_Angeles")).date().isoformat()


def letters_cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_CLR_")}
    return subprocess.run([sys.executable, "-m", "fhir_clr.cli", "letters", *args, "--data", str(data)],
                          capture_output=True, text=True, env={**env, "PYTHONPATH": str(REPO)}, cwd=REPO,
                          timeout=120)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A data directory holding one queued letter; its referral's and its obligation's ids."""
    data = Path(tmp_path_factory.mktemp("letters-cli"))
    server = LiveServer(data)
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            decided_at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
            referral = decided_referral(client, member_with_address(client), "approved", decided_at)
            queued_letter(client, referral, ["Your request for Enhanced Care Management was approved."])
            owed = obligation(client, "authorization-decision-member", focus=f"ServiceRequest/{referral['id']}")
    finally:
        server.stop()
    return data, referral["id"], owed["id"]


def test_batch_writes_the_pdf_and_mailed_completes_the_obligation(seeded: tuple[Path, str, str],
                                                                 tmp_path: Path) -> None:
    data, _, obligation_id = seeded
    out = tmp_path / "batch.pdf"
    done = letters_cli(data, "batch", "--date", TODAY, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"batch {TODAY} (cut now): 1 letter written to {out}"
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(out.read_bytes())).pages]
    assert len(pages) == 2 and "Notice of Action: Enhanced Care Management" in pages[0]
    assert "Your Rights" in pages[1] and not any(secret in "".join(pages) for secret in CLINICAL)

    again = letters_cli(data, "batch", "--date", TODAY, "--out", str(tmp_path / "again.pdf"))
    assert again.returncode == 0 and "(cut before): 1 letter" in again.stdout
    assert (tmp_path / "again.pdf").read_bytes() == out.read_bytes()

    mailed = letters_cli(data, "mailed", TODAY, "--date", TODAY)
    assert mailed.returncode == 0, mailed.stderr
    assert mailed.stdout.strip() == (f"batch {TODAY}: 1 letter recorded as sent, 0 already sent, 0 neither "
                                     "waiting nor sent, 0 not printed (both left unchanged)")

    server = LiveServer(data)
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            owed = client.get(f"/Task/{obligation_id}").json()
    finally:
        server.stop()
    assert owed["status"] == "completed" and owed["executionPeriod"]["end"] == TODAY


def test_unknown_batch_and_missing_data_directory_are_one_line(seeded: tuple[Path, str, str],
                                                               tmp_path: Path) -> None:
    data, _, _ = seeded
    done = letters_cli(data, "mailed", "2020-01-02", "--date", "2020-01-03")
    assert done.returncode == 2
    assert done.stderr.strip() == "fhir-clr letters mailed: No print batch was cut for 2020-01-02"
    missing = letters_cli(tmp_path / "nowhere", "batch", "--out", str(tmp_path / "x.pdf"))
    assert missing.returncode == 2 and "no data directory" in missing.stderr and len(missing.stderr.splitlines()) == 1
