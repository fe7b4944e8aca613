"""What every command shares: the ``--data`` flag and the settings built from its flags (flags over the
environment over the defaults, all through :class:`~fhir_clr.config.Settings`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fhir_clr.config import Settings
from fhir_clr.logging_setup import configure_logging


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--data`` flag every command shares (its default comes from Settings, never from here)."""
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="data directory of the embedded store, files and keys (default $FHIR_CLR_DATA_DIR, "
                             "else ./data); FHIR_CLR_STORE_URL selects another store")


def command_settings(args: argparse.Namespace, **flags: Any) -> Settings:
    """The settings of a command: its ``--data`` and other given ``flags`` over the environment and defaults.
    Logging is configured from them (batch commands log warnings only unless FHIR_CLR_LOG_LEVEL says more)."""
    settings = Settings.from_flags(data_dir=args.data, **flags)
    batch = args.command != "serve" and "log_level" not in settings.model_fields_set
    configure_logging("WARNING" if batch else settings.log_level)
    return settings


def read_only_settings(args: argparse.Namespace) -> Settings | None:
    """Settings for a command that only reads the store; None (after saying why) when the embedded store's
    data directory does not exist, so a mistyped path is not answered from a new empty store."""
    settings = command_settings(args)
    if settings.embedded_store_missing():
        print(f"fhir-clr {args.command}: no data directory at {settings.data_dir.resolve()} (set --data or "
              "FHIR_CLR_DATA_DIR to the server's data directory)", file=sys.stderr)
        return None
    return settings
