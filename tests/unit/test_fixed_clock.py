"""The fixed business-rule clock (``FHIR_CLR_FIXED_NOW``) exists for development mode only."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fhir_clr.app import fixed_clock
from fhir_clr.config import Settings

MOMENT = datetime(2026, 11, 24, 18, tzinfo=UTC)


def test_fixed_clock_in_development_mode(tmp_path: Path) -> None:
    clock = fixed_clock(Settings(data_dir=tmp_path, dev=True, fixed_now=MOMENT))
    assert clock is not None and clock() == MOMENT
    assert fixed_clock(Settings(data_dir=tmp_path, dev=True)) is None


def test_fixed_clock_refused_outside_development_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="development mode"):
        fixed_clock(Settings(data_dir=tmp_path, dev=False, fixed_now=MOMENT))
