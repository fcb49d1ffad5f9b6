"""The scenarios: each returns (report dict, exit status)."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import urllib.request
from typing import Any
from urllib.parse import quote

from benchlib import cluster, procfs, report, runner
from benchlib.bigroom import bigroom
from benchlib.guard import parse_targets

Result = tuple[dict[str, Any], int]


def _pids(args: argparse.Namespace, targets: list[str]) -> tuple[list[int], list[int]]:
    pids = runner.server_pids(targets, args.worker_pids)
    services = runner.service_pids(args.service_ports)
    if not pids:
        print(
            "warning: no worker process found listening on the target ports; "
            "server CPU and memory will read 0 (give --worker-pids)",
            flush=True,
        )
    return pids, services


def smoke(args: argparse.Namespace) -> Result:
    targets = parse_targets(args.target)
    specs = runner.make_layout(args, targets)
    pids, services = _pids(args, targets)
    with runner.fleet(args, specs) as (fl, ready):
        phase = runner.run_phase(args, fl, specs, "smoke", args.rate, pids, services)
    phase["problems"] = runner.common_problems(phase)
    if ready["connect_errors"]:
        phase["problems"].append(f"connect errors {ready['connect_errors']}")
    if not phase["delivered"]:
        phase["problems"].append("nothing delivered")
    report.print_table([phase])
    print("smoke:", "ok" if not phase["problems"] else "FAIL: " + "; ".join(phase["problems"]))
    return {"setup": ready, "phases": [phase], "summary": _summary(phase)}, int(
        bool(phase["problems"])
    )


def _summary(phase: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "deliveries_per_s",
        "acked_per_s",
        "offered_deliveries_per_s",
        "lost",
        "duplicates",
        "out_of_order",
        "errors",
        "disconnects",
        "server_us_per_delivery",
        "gen_us_per_delivery",
        "gen_cpu_share",
        "server_cpu_share",
        "latency_ms",
        "ack_latency_ms",
        "delivered",
        "expected",
        "server_us_per_acked_msg",
    )
    return {k: phase[k] for k in keys}


def latency(args: argparse.Namespace) -> Result:
    targets = parse_targets(args.target)
    specs = runner.make_layout(args, targets)
    _, fanout_deliveries = runner.offered(specs, 1.0)
    rate = args.deliveries / fanout_deliveries
    print(
        f"{args.deliveries} deliveries/s = {args.senders} senders x {rate:g} msg/s x "
        f"{fanout_deliveries / args.senders:g} members per room",
        flush=True,
    )
    pids, services = _pids(args, targets)
    phases = []
    with runner.fleet(args, specs) as (fl, ready):
        for run in range(args.repeat):
            phase = runner.run_phase(args, fl, specs, f"run{run + 1}", rate, pids, services)
            phase["problems"] = runner.common_problems(phase)
            phases.append(phase)
            print(report.line(phase), flush=True)
            time.sleep(args.pause)
    report.print_table(phases)
    return {"setup": ready, "phases": phases, "summary": {"runs": [_summary(p) for p in phases]}}, 0


def fanout(args: argparse.Namespace) -> Result:
    targets = parse_targets(args.target)
    return _fanout_on(args, targets)


def _fanout_on(args: argparse.Namespace, targets: list[str]) -> Result:
    specs = runner.make_layout(args, targets)
    pids, services = _pids(args, targets)
    with runner.fleet(args, specs) as (fl, ready):
        phases, best, sustained = runner.step_up(
            args, fl, specs, runner.latency_judge(args.p99_ms), pids, services
        )
    report.print_table(phases)
    if best:
        print(
            f"highest rate with p99 <= {args.p99_ms:g} ms and 0 loss: "
            f"{best['deliveries_per_s']:.0f} deliveries/s "
            f"({best['rate_per_sender']:g} msg/s x {args.senders} senders)"
        )
    else:
        print(f"no step met p99 <= {args.p99_ms:g} ms with 0 loss (first: {args.rate:g} msg/s)")
    if sustained:
        print(
            f"highest rate sustained (0 loss, p99 <= {args.stop_p99_ms:g} ms): "
            f"{sustained['deliveries_per_s']:.0f} deliveries/s, p99 "
            f"{sustained['latency_ms']['p99']:.0f} ms"
        )
    return {"setup": ready, "phases": phases, "summary": _step_summary(phases, best, sustained)}, 0


def _step_summary(
    phases: list[dict[str, Any]], best: dict[str, Any] | None, sustained: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "best": _summary(best) if best else None,
        "sustained": _summary(sustained) if sustained else None,
        "stopped_by": phases[-1]["problems"] or None,
    }


def ingest(args: argparse.Namespace) -> Result:
    targets = parse_targets(args.target)
    specs = runner.make_layout(args, targets)
    pids, services = _pids(args, targets)
    strict = runner.latency_judge(args.p99_ms, "ack_latency_ms")

    def judge(phase: dict[str, Any]) -> list[str]:
        problems = strict(phase)
        if phase["acked_per_s"] < 0.98 * phase["offered_msgs_per_s"]:
            problems.append(f"acked {phase['acked_per_s']:.0f}/s < 98 % of offered")
        return problems

    with runner.fleet(args, specs) as (fl, ready):
        phases, best, sustained = runner.step_up(
            args, fl, specs, judge, pids, services, "ack_latency_ms"
        )
    persisted = _check_persisted(targets[0], phases)
    report.print_table(phases)
    for label, phase in ((f"with ack p99 <= {args.p99_ms:g} ms", best), ("sustained", sustained)):
        if phase:
            print(
                f"highest acked+persisted rate {label}: {phase['acked_per_s']:.0f} messages/s "
                f"over {args.rooms} rooms (ack p99 {phase['ack_latency_ms']['p99']:.0f} ms)"
            )
    print(f"persisted check: {persisted}")
    summary = {**_step_summary(phases, best, sustained), "persisted_check": persisted}
    return {"setup": ready, "phases": phases, "summary": summary}, 0


def _check_persisted(target: str, phases: list[dict[str, Any]], rooms: int = 10) -> str:
    """Acked means stored: the newest stored seq of a few rooms covers the newest acked one."""
    newest = phases[-1].get("_acked_max", {})
    bad = 0
    for room, seq in list(newest.items())[:rooms]:
        url = f"{target}/api/rooms/{quote(room)}/messages?limit=1"
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
            stored = json.load(resp)["messages"]
        if not stored or stored[-1]["seq"] < seq:
            bad += 1
    checked = min(rooms, len(newest))
    return f"{checked - bad}/{checked} rooms hold their newest acked message"


def idle(args: argparse.Namespace) -> Result:
    rows = []
    for count in (int(c) for c in args.counts.split(",")):
        args.clients = count
        if args.spawn:
            with cluster.spawned(args.spawn, args.base_port, runner.new_run_id()) as urls:
                rows.append(_idle_once(args, urls))
        else:
            rows.append(_idle_once(args, parse_targets(args.target)))
    print(
        f"{'connections':>12}{'connected':>10}{'RSS before MB':>14}{'after MB':>9}"
        f"{'KB/conn':>9}{'fds after':>10}{'disc':>6}"
    )
    for r in rows:
        print(
            f"{r['connections']:>12}{r['connected']:>10}{r['rss_before_kb'] / 1024:>14.1f}"
            f"{r['rss_after_kb'] / 1024:>9.1f}{r['kb_per_connection']:>9.1f}"
            f"{r['fds_after']:>10}{r['disconnects']:>6}"
        )
    return {"rows": rows}, 0


def _idle_once(args: argparse.Namespace, targets: list[str]) -> dict[str, Any]:
    pids = runner.server_pids(targets, args.worker_pids)
    specs = runner.make_layout(args, targets, join=False)
    time.sleep(args.settle)
    before = procfs.sum_rss_kb(pids)
    with runner.fleet(args, specs) as (fl, ready):
        time.sleep(args.settle)
        after = procfs.sum_rss_kb(pids)
        fds = sum(procfs.open_fds(p) or 0 for p in pids)
        status = fl.status()
    connected = ready["connected"]
    return {
        "connections": args.clients,
        "connected": connected,
        "workers": len(pids),
        "rss_before_kb": before,
        "rss_after_kb": after,
        "fds_after": fds,
        "kb_per_connection": (after - before) / connected if connected else None,
        "connect_secs": ready["connect_secs"],
        "connect_errors": ready["connect_errors"],
        "deflate_negotiated": ready["deflate_negotiated"],
        "disconnects": status["disconnects"],
        "fresh_workers": bool(args.spawn),
    }


def scaling(args: argparse.Namespace) -> Result:
    configs = []
    for workers, given in ((1, args.target_1), (2, args.target_2)):
        print(f"--- {workers} worker(s) ---", flush=True)
        with contextlib.ExitStack() as stack:
            if given:
                targets = parse_targets(given)
            else:
                targets = stack.enter_context(
                    cluster.spawned(workers, args.base_port, runner.new_run_id())
                )
                time.sleep(1)
            args.run_id = runner.new_run_id()
            body, _ = _fanout_on(args, targets)
        best = body["summary"]["best"]
        sustained = body["summary"]["sustained"]
        configs.append({"workers": len(targets), "targets": targets, **body})
        configs[-1]["headline"] = {
            "pass_mark_deliveries_per_s": best["deliveries_per_s"] if best else None,
            "sustained_deliveries_per_s": sustained["deliveries_per_s"] if sustained else None,
        }
    for config in configs:
        head = config["headline"]
        print(
            f"{config['workers']} worker(s): p99 <= {args.p99_ms:g} ms at "
            f"{head['pass_mark_deliveries_per_s'] or 0:.0f} deliveries/s; sustained "
            f"{head['sustained_deliveries_per_s'] or 0:.0f} deliveries/s",
            flush=True,
        )
    return {"configs": configs}, 0


SCENARIOS = {
    "smoke": smoke,
    "fanout": fanout,
    "latency": latency,
    "ingest": ingest,
    "idle": idle,
    "scaling": scaling,
    "bigroom": bigroom,
}
