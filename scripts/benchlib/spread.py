"""`scripts/bench fleet`: the same fan-out load per host on 1, then 2, then 3 hosts (network
namespaces, each running scripts/start) sharing one Redis Cluster and one FerretDB. Each host
serves rooms of its own; each worker's Redis counters show what it heard of the fleet."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchlib import hosts, rediscluster, report, runner
from benchlib.cluster import BENCH_LIMITS, ROOT
from benchlib.plan import ClientSpec, layout

Result = tuple[dict[str, Any], int]
# scripts/start runs worker I of a host on 127.0.0.1:3000+I inside its namespace.
FIRST_WORKER_PORT = 3001
METRICS_TIMEOUT_SECS = 10
COUNTERS = {
    "messages": "chatd_bus_received_messages_total",
    "bytes": "chatd_bus_received_bytes_total",
    "rooms": "chatd_bus_rooms_followed",
}


def missing() -> list[str]:
    """What this machine lacks to build the fleet (empty: nothing)."""
    needs = {
        "root (network namespaces)": os.geteuid() == 0,
        "iproute2 (`ip`)": shutil.which("ip") is not None,
        "nginx (/usr/sbin/nginx, each host's front door)": os.path.exists("/usr/sbin/nginx"),
        "curl (scripts/start, /metrics inside each host)": shutil.which("curl") is not None,
        "var/bin/ferretdb (scripts/setup)": (ROOT / "var/bin/ferretdb").exists(),
        "redis-server and redis-cli": rediscluster.tools_present(),
    }
    return [what for what, ok in needs.items() if not ok]


def fleet(args: argparse.Namespace) -> Result:
    lacking = missing()
    if lacking:
        print(f"fleet: this machine lacks {', '.join(lacking)}", flush=True)
        return {"error": f"lacks {', '.join(lacking)}"}, 2
    sizes = [int(n) for n in args.hosts.split(",")]
    base = Path(tempfile.mkdtemp(prefix="chatd-bench-fleet-"))
    base.chmod(0o755)  # each host's front door (nginx) may run as another user
    rows: list[dict[str, Any]] = []
    try:
        with contextlib.ExitStack() as stack:
            net = stack.enter_context(hosts.network(0))
            password = secrets.token_hex(16)
            cluster = stack.enter_context(
                rediscluster.redis_cluster(base / "redis", args.cluster_port, net.address, password)
            )
            mongo_port = _free_port(net.address)
            mongo_url = stack.enter_context(hosts.ferretdb(net.address, mongo_port, base))
            services = runner.service_pids(
                ",".join(str(n.port) for n in cluster.nodes) + f",{mongo_port}"
            )
            env = _host_env(args, cluster, mongo_url)
            print(
                f"fleet: bridge {net.net}, Redis Cluster {net.address}:{args.cluster_port}-"
                f"{args.cluster_port + rediscluster.NODES - 1}, FerretDB {net.address}:"
                f"{mongo_port}; per host {args.workers_per_host} workers, {args.clients} "
                f"clients in {args.rooms} rooms of its own, {args.senders} senders x "
                f"{args.rate:g} msg/s",
                flush=True,
            )
            for size in sizes:
                rows.append(_one_size(args, net, size, base / f"size{size}", env, services))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    summary = [_summary(row) for row in rows]
    _print(rows)
    head = headline(summary)
    print(head["text"], flush=True)
    bad = any(row["phase"]["problems"] for row in rows)
    return {"sizes": rows, "summary": summary, "headline": head}, int(bad)


def headline(summary: list[dict[str, Any]]) -> dict[str, Any]:
    """Each worker's bus traffic at every size against the smallest fleet's (1.0: each worker
    hears only its own rooms; N: it hears the whole fleet's), and the fleet's total."""
    first = summary[0]
    ratio = {
        key: [s[key]["mean"] / first[key]["mean"] if first[key]["mean"] else None for s in summary]
        for key in ("bus_messages_per_s_per_worker", "bus_bytes_per_s_per_worker")
    }
    sizes = "/".join(str(s["hosts"]) for s in summary)
    per_worker = " / ".join(f"{s['bus_messages_per_s_per_worker']['mean']:.1f}" for s in summary)
    total = " / ".join(f"{s['bus_messages_per_s_fleet']:.1f}" for s in summary)
    delivered = " / ".join(f"{s['deliveries_per_s']:.0f}" for s in summary)
    factors = " / ".join(
        "-" if r is None else f"x{r:.2f}" for r in ratio["bus_bytes_per_s_per_worker"]
    )
    text = (
        f"{sizes} hosts: bus msg/s per worker {per_worker} (bytes {factors} of the first), "
        f"all workers {total}; deliveries/s {delivered}"
    )
    return {"per_worker_vs_first": ratio, "text": text}


def _host_env(
    args: argparse.Namespace, cluster: rediscluster.RedisCluster, mongo_url: str
) -> dict[str, str]:
    run = runner.new_run_id()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    env.update(
        BENCH_LIMITS,
        CHATD_WORKERS=str(args.workers_per_host),
        CHATD_FRONT_LISTEN=f"0.0.0.0:{hosts.FRONT_PORT}",
        CHATD_REDIS_URL=cluster.url,
        CHATD_REDIS_CLUSTER="true",
        CHATD_REDIS_CLUSTER_NODES=cluster.other_nodes,
        CHATD_REDIS_PREFIX=f"chatdbench{run}",
        CHATD_MONGO_URL=mongo_url,
        CHATD_MONGO_DB=f"chatd_bench_fleet_{run}",
        # Every host must accept the identity tokens every other host issued.
        CHATD_AUTH_TOKEN_SECRET=secrets.token_hex(32),
        # All the generator's clients come from the bridge's one address.
        CHATD_FRONT_CONN_PER_IP="0",
        CHATD_SERVER_DRAIN_SECS="1",
    )
    return env


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _one_size(
    args: argparse.Namespace,
    net: hosts.Network,
    size: int,
    base: Path,
    env: dict[str, str],
    services: list[int],
) -> dict[str, Any]:
    """Start `size` hosts, give each the same load on rooms of its own (its clients connect
    to its front door only), run one phase, read every worker's bus counters around the
    measured window; stop the hosts."""
    print(f"--- {size} host(s) ---", flush=True)
    args.run_id = runner.new_run_id()
    started = time.monotonic()
    with hosts.hosts(net, size, base, env) as made:
        print(f"{size} host(s) started in {time.monotonic() - started:.0f} s", flush=True)
        specs: list[ClientSpec] = []
        for h in made:
            own = layout(
                args.clients, args.rooms, args.senders, [f"http://{h.front}"],
                f"{args.run_id}-h{h.n}",
            )  # fmt: skip
            first = len(specs)  # the load processes key their clients by index
            specs.extend([replace(s, index=first + i) for i, s in enumerate(own)])
        workers = [
            (h, port)
            for h in made
            for port in range(FIRST_WORKER_PORT, FIRST_WORKER_PORT + args.workers_per_host)
        ]
        pids = [pid for h in made for pid in h.pids()]
        with runner.fleet(args, specs) as (fl, ready):
            phase = runner.run_phase(
                args, fl, specs, f"{size}-host", args.rate, pids, services,
                probe=lambda: _read_all(workers),
            )  # fmt: skip
        phase["problems"] = runner.common_problems(phase)
        if ready["connect_errors"]:
            phase["problems"].append(f"connect errors {ready['connect_errors']}")
        if phase["problems"]:  # the hosts' logs go with their folders when they stop
            for h in made:
                print(f"host {h.n} logs:\n{h.log()}", flush=True)
    print(report.line(phase), flush=True)
    before, after = phase.pop("probes")
    return {
        "hosts": size,
        "workers": len(workers),
        "clients": len(specs),
        "setup": ready,
        "phase": phase,
        "bus": {key: _rates(before[key], after[key]) for key in after},
    }


def _read_all(workers: list[tuple[hosts.Host, int]]) -> dict[str, dict[str, float]]:
    """Every worker's bus counters at once (one thread each, so the readings are close)."""
    with ThreadPoolExecutor(len(workers)) as pool:
        read = pool.map(lambda w: _read_metrics(*w), workers)
        return {f"host{h.n}:{port}": r for (h, port), r in zip(workers, read, strict=True)}


def _read_metrics(host: hosts.Host, port: int) -> dict[str, float]:
    """One worker's /metrics, read inside its host (it answers loopback only by default)."""
    out = subprocess.run(
        ["ip", "netns", "exec", host.netns, "curl", "-fsS", f"http://127.0.0.1:{port}/metrics"],
        capture_output=True, text=True, timeout=METRICS_TIMEOUT_SECS, check=True,
    )  # fmt: skip
    values = {"at": time.monotonic()}
    names = {name: key for key, name in COUNTERS.items()}
    for line in out.stdout.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            values[names[name]] = float(value)
    return values


def _rates(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    secs = after["at"] - before["at"]
    return {
        "messages": after["messages"] - before["messages"],
        "bytes": after["bytes"] - before["bytes"],
        "messages_per_s": (after["messages"] - before["messages"]) / secs,
        "bytes_per_s": (after["bytes"] - before["bytes"]) / secs,
        "rooms_followed": after["rooms"],
        "secs": secs,
    }


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    phase, bus = row["phase"], row["bus"].values()
    return {
        "hosts": row["hosts"],
        "workers": row["workers"],
        "clients": row["clients"],
        "offered_deliveries_per_s": phase["offered_deliveries_per_s"],
        "deliveries_per_s": phase["deliveries_per_s"],
        "acked_per_s": phase["acked_per_s"],
        "latency_ms": phase["latency_ms"],
        "lost": phase["lost"],
        "expected": phase["expected"],
        "loss_ratio": phase["loss_ratio"],
        "errors": phase["errors"],
        "duplicates": phase["duplicates"],
        "out_of_order": phase["out_of_order"],
        "server_cpu_share": phase["server_cpu_share"],
        "services_cpu_share": phase["services_cpu_share"],
        "gen_cpu_share": phase["gen_cpu_share"],
        "bus_messages_per_s_per_worker": _spread([b["messages_per_s"] for b in bus]),
        "bus_bytes_per_s_per_worker": _spread([b["bytes_per_s"] for b in bus]),
        "bus_messages_per_s_fleet": sum(b["messages_per_s"] for b in bus),
        "bus_bytes_per_s_fleet": sum(b["bytes_per_s"] for b in bus),
        "problems": phase["problems"],
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "mean": sum(values) / len(values), "max": max(values)}


def _print(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'hosts':>5}{'workers':>8}{'clients':>8}{'offer d/s':>10}{'deliv/s':>9}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'lost':>6}{'err':>5}{'srv%':>6}{'svc%':>6}{'gen%':>6}"
        f"{'bus msg/s/worker':>18}{'bus KB/s/worker':>17}{'bus msg/s all':>15}"
    )
    for row in rows:
        s = _summary(row)
        lat, msgs = s["latency_ms"], s["bus_messages_per_s_per_worker"]
        kb = s["bus_bytes_per_s_per_worker"]
        print(
            f"{s['hosts']:>5}{s['workers']:>8}{s['clients']:>8}"
            f"{s['offered_deliveries_per_s']:>10.0f}{s['deliveries_per_s']:>9.0f}"
            f"{_ms(lat['p50']):>8}{_ms(lat['p99']):>8}{s['lost']:>6}{s['errors']:>5}"
            f"{s['server_cpu_share'] * 100:>6.0f}{s['services_cpu_share'] * 100:>6.0f}"
            f"{s['gen_cpu_share'] * 100:>6.0f}"
            f"{msgs['min']:>8.1f}-{msgs['max']:<9.1f}"
            f"{kb['min'] / 1024:>8.1f}-{kb['max'] / 1024:<8.1f}"
            f"{s['bus_messages_per_s_fleet']:>15.1f}"
        )
    print(
        "bus: what each worker received from Redis over the window (chatd_bus_received_"
        "messages_total, _bytes_total); %: share of all cores (srv: every process of every "
        f"host; svc: Redis Cluster + FerretDB; gen: the load generator). All of it shares "
        f"this machine's {report.NCPU} cores, so the fleet's throughput cannot grow with hosts."
    )
    for row in rows:
        for worker, b in row["bus"].items():
            print(
                f"  {row['hosts']} host(s) {worker}: {b['messages_per_s']:.1f} msg/s, "
                f"{b['bytes_per_s'] / 1024:.1f} KB/s from Redis, following "
                f"{b['rooms_followed']:.0f} rooms",
                flush=True,
            )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
