"""Operational telemetry: Prometheus metrics (``/metrics``) and the timing wrappers that feed them."""
