"""Derived figures (rates, CPU per delivery, shares), the human table and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

NCPU = os.cpu_count() or 1
PACKAGES = (
    "tornado",
    "python-socketio",
    "python-engineio",
    "uvloop",
    "aiohttp",
    "redis",
    "pymongo",
)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def host() -> dict[str, Any]:
    return {"cpus": NCPU, "loadavg": os.getloadavg(), "kernel": platform.release()}


def derive(phase: dict[str, Any], offered_msgs: float, offered_deliveries: float) -> None:
    """Add per-second rates, CPU per delivery and CPU shares to a merged phase, in place."""
    secs = phase["window_secs"]
    delivered = phase["delivered_window"]
    phase["offered_msgs_per_s"] = offered_msgs
    phase["offered_deliveries_per_s"] = offered_deliveries
    phase["sent_per_s"] = phase["sent_window"] / secs
    phase["acked_per_s"] = phase["acked_window"] / secs
    phase["deliveries_per_s"] = delivered / secs
    for who in ("server", "gen", "services"):
        cpu = phase[f"{who}_cpu_secs"]
        phase[f"{who}_us_per_delivery"] = cpu * 1e6 / delivered if delivered else None
        phase[f"{who}_cpu_share"] = cpu / (secs * NCPU)
    acked = phase["acked_window"]
    phase["server_us_per_acked_msg"] = phase["server_cpu_secs"] * 1e6 / acked if acked else None
    phase["services_us_per_acked_msg"] = phase["services_cpu_secs"] * 1e6 / acked if acked else None
    # Every acked send is expected at each member of its room; losses are what never came.
    phase["loss_ratio"] = phase["lost"] / phase["expected"] if phase["expected"] else 0.0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


HEADER = (
    f"{'phase':<12}{'offer d/s':>10}{'deliv/s':>9}{'acked/s':>9}{'p50':>9}{'p90':>9}"
    f"{'p99':>9}{'max':>9}{'ack99':>9}{'lost':>6}{'dup':>5}{'ooo':>5}{'err':>5}{'disc':>5}"
    f"{'srv µs/d':>9}{'gen µs/d':>9}{'gen%':>6}{'srv%':>6}"
)


def line(phase: dict[str, Any]) -> str:
    lat, ack = phase["latency_ms"], phase["ack_latency_ms"]
    return (
        f"{phase['phase']:<12}{phase['offered_deliveries_per_s']:>10.0f}"
        f"{phase['deliveries_per_s']:>9.0f}{phase['acked_per_s']:>9.1f}"
        f" {_ms(lat['p50']):>8} {_ms(lat['p90']):>8} {_ms(lat['p99']):>8} {_ms(lat['max']):>8}"
        f" {_ms(ack['p99']):>8}{phase['lost']:>6}{phase['duplicates']:>5}"
        f"{phase['out_of_order']:>5}{phase['errors']:>5}{phase['disconnects']:>5}"
        f"{_us(phase['server_us_per_delivery']):>9}{_us(phase['gen_us_per_delivery']):>9}"
        f"{phase['gen_cpu_share'] * 100:>6.0f}{phase['server_cpu_share'] * 100:>6.0f}"
    )


def print_table(phases: list[dict[str, Any]]) -> None:
    print(HEADER)
    for phase in phases:
        print(line(phase))
    print(
        "latency ms: send -> delivery at each member (p50/p90/p99/max); ack99: send -> ack p99;"
        " µs/d: CPU µs per delivery; %: share of all cores over the window"
    )


def _public(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [_public(v) for v in value]
    return value


def write_json(path: str, report: dict[str, Any]) -> None:
    report = {"command": sys.argv, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **report}
    Path(path).write_text(json.dumps(_public(report), indent=2, default=str) + "\n")
