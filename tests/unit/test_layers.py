"""The engine is domain-neutral: import-linter's contract (``pyproject.toml``) that ``fhir_clr.engine`` reaches
neither the CLR domain, the HTTP API nor the console, directly or through another module, holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_engine_imports_neither_clr_api_nor_console() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--contract", "engine-domain-neutral", "--no-cache"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout
