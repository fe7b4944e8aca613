"""A readable snapshot of the metrics registry for the console's quick view: per label set, the count, the
mean and an upper bound of the 95th percentile (the first histogram bucket holding 95 % of observations)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from fhir_clr.observability.metrics import REGISTRY


@dataclass(slots=True)
class TimingRow:
    """One label set of a histogram."""

    labels: dict[str, str]
    count: int
    mean_ms: float
    p95_ms: str


@dataclass(slots=True)
class Snapshot:
    """Histograms as rows, and plain counters and gauges as values, keyed by metric name."""

    timings: dict[str, list[TimingRow]] = field(default_factory=dict)
    values: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)


def _p95(buckets: list[tuple[float, float]], count: float) -> str:
    for bound, cumulative in sorted(buckets):
        if cumulative >= 0.95 * count:
            return "over 10 s" if bound == float("inf") else f"≤ {bound * 1000:g}"
    return "—"


def snapshot() -> Snapshot:
    """The registry's current values."""
    result = Snapshot()
    for family in REGISTRY.collect():
        if family.type == "histogram":
            parts: dict[tuple[tuple[str, str], ...], dict[str, Any]] = defaultdict(lambda: {"buckets": []})
            for sample in family.samples:
                labels = {k: v for k, v in sample.labels.items() if k != "le"}
                key = tuple(sorted(labels.items()))
                if sample.name.endswith("_bucket"):
                    parts[key]["buckets"].append((float(sample.labels["le"]), sample.value))
                elif sample.name.endswith("_count"):
                    parts[key]["count"] = sample.value
                elif sample.name.endswith("_sum"):
                    parts[key]["sum"] = sample.value
            rows = [TimingRow(dict(key), int(p.get("count", 0)), 1000 * p.get("sum", 0) / p["count"],
                              _p95(p["buckets"], p["count"])) for key, p in parts.items() if p.get("count")]
            result.timings[family.name] = sorted(rows, key=lambda r: -r.count)
        elif family.type in ("counter", "gauge"):
            result.values[family.name] = [(dict(s.labels), s.value) for s in family.samples
                                          if not s.name.endswith("_created")]
    return result
