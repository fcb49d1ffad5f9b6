"""Merging the load processes' phase results into one set of figures."""

from __future__ import annotations

from array import array
from collections import Counter
from typing import Any

SUMMED = (
    "sent",
    "acked",
    "delivered",
    "sent_window",
    "acked_window",
    "delivered_window",
    "expected",
    "lost",
    "members_with_loss",
    "members",
    "duplicates",
    "out_of_order",
    "late_sends",
    "gen_cpu_secs",
    "disconnects",
    "reconnects",
    "replayed",
)


def percentiles(samples: array, unit: float = 1000.0) -> dict[str, float | None]:
    """p50/p90/p99/max of µs samples, in ms (nearest-rank)."""
    if not samples:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(samples)
    count = len(ordered)

    def rank(q: float) -> float:
        return ordered[min(count - 1, max(0, int(q * count + 0.999999) - 1))] / unit

    return {
        "count": count,
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": ordered[-1] / unit,
    }


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {key: sum(r[key] for r in results) for key in SUMMED}
    errors: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    reconnect_errors: Counter[str] = Counter()
    latency, acks = array("q"), array("q")
    for r in results:
        errors.update(r["error_codes"])
        reasons.update(r["disconnect_reasons"])
        reconnect_errors.update(r["reconnect_errors"])
        latency.frombytes(r["latency_us"])
        acks.frombytes(r["ack_us"])
    merged["error_codes"] = dict(errors)
    merged["errors"] = sum(errors.values())
    merged["disconnect_reasons"] = dict(reasons)
    merged["reconnect_errors"] = dict(reconnect_errors)
    merged["max_send_lag_ms"] = max(r["max_send_lag_ms"] for r in results)
    merged["latency_ms"] = percentiles(latency)
    merged["ack_latency_ms"] = percentiles(acks)
    return merged
