"""Request rate limits: a token bucket per key (a client id, a remote address), in process memory (each
replica limits on its own; put a shared limiter in front for a global cap)."""

from __future__ import annotations

import math
import time


class RateLimiter:
    """``rate`` requests per second on average, bursts up to ``burst``; ``rate`` 0 disables the limit."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    @classmethod
    def per_minute(cls, per_minute: float, burst: int) -> RateLimiter:
        """A limiter allowing ``per_minute`` requests a minute on average."""
        return cls(per_minute / 60.0, burst)

    def acquire(self, key: str) -> float:
        """Take one token for ``key``: 0 when allowed, else the seconds until a token is available."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._forget_full(now)
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled completely (they behave like new ones), so that many distinct
        keys (e.g. remote addresses) cannot grow the table without bound."""
        refill = self.burst / self.rate
        self._buckets = {key: bucket for key, bucket in self._buckets.items() if now - bucket[1] < refill}


def retry_after(seconds: float) -> str:
    """``Retry-After`` header value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))
