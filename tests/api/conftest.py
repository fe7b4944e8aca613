"""Fixtures of the in-process tests (file imports, exports, seeding): an embedded store with a fixed clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fhir_clr.app import Services, build_services
from fhir_clr.config import Settings

EMBEDDED_NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
"""Tue 24 Nov 2026, 10:00 in California."""


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    """The server's services over a fresh embedded store (dev mode, clock fixed at :data:`EMBEDDED_NOW`)."""
    built = await build_services(Settings(data_dir=tmp_path, dev=True, fixed_now=EMBEDDED_NOW))
    try:
        yield built
    finally:
        await built.store.close()
