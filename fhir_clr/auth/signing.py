"""The server's own signing key for access tokens: configured (a private JWK file), or generated on first start
in the data directory (mode 0600). Replicas must share it (same data directory or the same configured file)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from joserfc.jwk import ECKey

SIGNING_ALG = "ES384"


def load_or_create_key(path: Path) -> ECKey:
    """The P-384 private key stored at ``path``; created atomically (no second replica overwrites it) when
    missing."""
    if not path.exists():
        key = ECKey.generate_key("P-384", auto_kid=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(orjson.dumps(key.as_dict(private=True)))
            return key
    return ECKey.import_key(orjson.loads(path.read_bytes()))
