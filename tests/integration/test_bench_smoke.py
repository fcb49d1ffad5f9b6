"""scripts/bench smoke against two real workers: the load generator speaks the protocol, sees
every broadcast cross workers, and reports exact loss, duplicates and order. No speed bar."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from benchlib import spread

from tests.conftest import ROOT, Worker
from tests.integration.test_fleet import CLUSTER_PORT, namespaces_work, needs

BENCH = ROOT / "scripts" / "bench"
# The per-connection message limit (default burst 20, 120/min) is raised as the bench's
# --help tells users to, so the smoke load measures delivery, not the rate limiter.
BENCH_LIMITS = {"CHATD_LIMITS_RATE_PER_MINUTE": "60000", "CHATD_LIMITS_RATE_BURST": "1000"}


def run_bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BENCH), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.bench
def test_bench_smoke_delivers_everything_across_two_workers(
    start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    one = start_worker(worker_id=1, **BENCH_LIMITS)
    two = start_worker(worker_id=2, **BENCH_LIMITS)
    out = tmp_path / "smoke.json"

    result = run_bench("smoke", "--target", f"{one.url},{two.url}", "--json", str(out))

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    summary = report["summary"]
    assert summary["delivered"] > 0
    assert summary["expected"] == summary["delivered"]
    assert summary["lost"] == 0
    assert summary["duplicates"] == 0
    assert summary["out_of_order"] == 0
    assert summary["errors"] == 0
    assert summary["disconnects"] == 0
    assert report["setup"]["connected"] == 20
    # Both workers' processes were found by their listening port and measured.
    assert report["phases"][0]["server_cpu_secs"] > 0


@pytest.mark.bench
def test_bench_refuses_a_non_loopback_target() -> None:
    result = run_bench("smoke", "--target", "http://192.0.2.1:3001", timeout=30)

    assert result.returncode == 2
    assert "non-loopback" in result.stderr


@pytest.mark.bench
def test_bench_bigroom_fills_a_room_and_times_its_joins(
    start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    worker = start_worker(**BENCH_LIMITS)
    out = tmp_path / "bigroom.json"

    result = run_bench(
        "bigroom",
        "--target",
        worker.url,
        "--messages",
        "30",
        "--every",
        "10",
        "--joins",
        "3",
        "--json",
        str(out),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert [row["messages"] for row in report["fill"]] == [10, 20, 30]
    assert all(row["count"] == 10 and not row["errors"] for row in report["fill"])
    assert report["joins"]["single_outcomes"] == ["ok", "ok", "ok"]
    assert report["joins"]["together_outcomes"] == {"ok": 3}


@pytest.mark.bench
def test_bench_storm_joins_every_client_through_the_front_door(
    start_worker: Callable[..., Worker], start_front_door: Callable[..., Any], tmp_path: Path
) -> None:
    door = start_front_door([start_worker(worker_id=i, **BENCH_LIMITS) for i in (1, 2)])
    out = tmp_path / "storm.json"

    result = run_bench(
        "storm", "--target", door.url, "--clients", "40", "--rooms", "4", "--procs", "1",
        "--json", str(out),
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text())["summary"]
    assert summary["all_joined"] is True and summary["joined"] == 40
    assert summary["errors_by_kind"] == {} and summary["still_connected"] == 40
    timing = summary["connect_join_ms"]
    assert timing["count"] == 40 and 0 < timing["p50"] <= timing["p99"] <= timing["max"]
    assert 0 < summary["all_joined_secs"] < 60


@pytest.mark.bench
def test_bench_soak_reconnects_samples_every_worker_and_reports_drift(
    start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    one = start_worker(worker_id=1, **BENCH_LIMITS)
    two = start_worker(worker_id=2, **BENCH_LIMITS)
    out = tmp_path / "soak.json"

    result = run_bench(
        "soak", "--target", f"{one.url},{two.url}", "--clients", "40", "--rooms", "4",
        "--senders", "4", "--rate", "200", "--minutes", "0.2", "--duration", "4",
        "--warmup", "1", "--procs", "1", "--json", str(out),
        timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert len(report["samples"]) == 3
    for sample in report["samples"]:
        assert set(sample["workers"]) == {one.url, two.url}
        for worker in sample["workers"].values():
            assert worker["rss_kb"] > 0 and worker["fds"] > 0
            assert worker["lag_p99_ms"] is not None and worker["probe_failures"] == 0
    summary = report["summary"]
    assert summary["reconnects"] == 3 * 4 and summary["reconnect_errors"] == {}
    assert summary["lost"] == 0 and summary["errors"] == 0 and summary["delivered"] > 0
    drift = summary["drift"]["all workers rss_kb"]
    assert drift["samples"] == 3 and isinstance(drift["first_to_last_pct"], float)
    assert "flat within 5 %" in result.stdout or "NOT flat" in result.stdout


@pytest.mark.bench
@pytest.mark.cluster
@pytest.mark.redis_cluster
def test_bench_fleet_each_worker_hears_only_its_own_hosts_rooms(tmp_path: Path) -> None:
    lacking = spread.missing()
    needs(not lacking, f"scripts/bench fleet needs {', '.join(lacking)}")
    needs(namespaces_work(), "network namespaces are not available (`ip netns add` failed)")
    out = tmp_path / "fleet.json"
    rate = 5.0

    result = run_bench(
        "fleet", "--hosts", "1,2", "--clients", "20", "--rooms", "2", "--senders", "2",
        "--rate", str(rate), "--duration", "3", "--warmup", "1", "--procs", "1",
        "--cluster-port", str(CLUSTER_PORT), "--json", str(out),
        timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert [s["hosts"] for s in report["summary"]] == [1, 2]
    for size in report["summary"]:
        assert size["lost"] == 0 and size["errors"] == 0 and size["expected"] > 0
        assert size["duplicates"] == 0 and size["out_of_order"] == 0
    for size in report["sizes"]:
        assert len(size["bus"]) == 2 * size["hosts"]
        for bus in size["bus"].values():
            # Its host's rooms only (one sender each): another host's rooms would add theirs.
            assert 1 <= bus["rooms_followed"] <= 2
            assert 0 < bus["messages_per_s"] <= 1.25 * rate * bus["rooms_followed"]
            assert bus["bytes"] > 0
    assert report["headline"]["per_worker_vs_first"]["bus_messages_per_s_per_worker"][0] == 1.0
