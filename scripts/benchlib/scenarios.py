"""The scenarios: each returns (report dict, exit status)."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import threading
import time
import urllib.request
from array import array
from typing import Any
from urllib.parse import quote, urlparse

from benchlib import cluster, procfs, report, runner, stats
from benchlib.bigroom import bigroom
from benchlib.guard import parse_targets
from benchlib.spread import fleet

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


# -- storm and soak ------------------------------------------------------------------------
STORM_START_SECS = 3.0  # load processes are fresh interpreters: time to import before the start
FLAT_PCT = 5.0


def _cluster(
    args: argparse.Namespace, stack: contextlib.ExitStack, front: bool
) -> tuple[list[str], list[str]]:
    """(targets the clients connect to, worker URLs measured): --spawn N starts N workers with
    scripts/spawn (and with `front` a front door before them); otherwise --target."""
    if not args.spawn:
        targets = parse_targets(args.target)
        return targets, targets
    workers = stack.enter_context(cluster.spawned(args.spawn, args.base_port, runner.new_run_id()))
    print(f"spawned {len(workers)} worker(s): {', '.join(workers)}", flush=True)
    if not front:
        return workers, workers
    door = stack.enter_context(
        cluster.front_door(args.spawn, args.base_port, args.front_port or args.base_port)
    )
    print(f"front door {door} (nginx, config from `python -m chatd render-nginx`)", flush=True)
    return [door], workers


def _per_worker(urls: list[str], given: str | None) -> dict[str, list[int]]:
    if given:
        return {"given": runner.server_pids([], given)}
    return {url: runner.server_pids([url], None) for url in urls}


def _ms3(p: dict[str, Any]) -> str:
    if not p.get("count"):
        return "-"
    return f"p50 {p['p50']:.0f} / p99 {p['p99']:.0f} / max {p['max']:.0f} ms"


def storm(args: argparse.Namespace) -> Result:
    """N clients connect at one instant and each joins a room; all joined or not, how fast."""
    args.connect_concurrency = args.join_concurrency = max(1, args.clients)
    with contextlib.ExitStack() as stack:
        targets, workers = _cluster(args, stack, front=True)
        specs = runner.make_layout(args, targets)
        per_worker = _per_worker(workers, args.worker_pids)
        print(
            f"storm: {args.clients} clients over {args.procs} load processes -> "
            f"{', '.join(targets)}, {args.rooms} rooms; all start at once",
            flush=True,
        )
        start_ns = time.time_ns() + int(STORM_START_SECS * 1e9)
        with runner.fleet(args, specs, start_ns) as (fl, ready):
            status = fl.status()  # who is still connected once the last join is acked
            after = {
                url: {
                    "rss_kb": procfs.sum_rss_kb(pids),
                    "fds": sum(procfs.open_fds(p) or 0 for p in pids),
                }
                for url, pids in per_worker.items()
            }
    errors = dict(ready["connect_errors"])
    all_joined = ready["joined"] == args.clients and not errors
    summary = {
        "clients": args.clients,
        "connected": ready["connected"],
        "joined": ready["joined"],
        "all_joined": all_joined,
        "all_joined_secs": ready["all_joined_secs"],
        "connect_join_ms": ready["connect_join_ms"],
        "connect_ms": ready["connect_ms"],
        "errors_by_kind": errors,
        "join_retries": ready["join_retries"],
        "join_retry_reasons": ready["join_retry_reasons"],
        "still_connected": status["connected"],
        "disconnects": status["disconnects"],
        "workers_after": after,
    }
    secs = ready["all_joined_secs"]
    print(
        f"all joined: {'yes' if all_joined else 'NO'} ({ready['joined']}/{args.clients} joined, "
        f"{ready['connected']} connected)"
        + (f" in {secs:.2f} s, first connect attempt to last join ack" if secs else "")
    )
    print(f"connect+join per client: {_ms3(ready['connect_join_ms'])}")
    print(f"connect only per client: {_ms3(ready['connect_ms'])}")
    print(
        f"errors by kind: {errors or 'none'}; join retries {ready['join_retries']} "
        f"{ready['join_retry_reasons'] or ''}"
    )
    print(f"still connected after: {status['connected']}, disconnects {status['disconnects']}")
    for url, row in after.items():
        print(f"  worker {url}: RSS {row['rss_kb'] / 1024:.0f} MB, {row['fds']} fds")
    return {"setup": ready, "summary": summary}, int(not all_joined)


class LoopProbe:
    """Event-loop lag, seen from outside: a thread times GET /healthz (a handler that only
    writes a constant) on each worker every `every` seconds over a kept-alive connection.
    The round trip is loopback time plus however long the request waited for the loop."""

    def __init__(self, urls: list[str], every: float = 0.2) -> None:
        self.urls = urls
        self.every = every
        self.samples: dict[str, list[float]] = {u: [] for u in urls}
        self.failures: dict[str, int] = {u: 0 for u in urls}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoopProbe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(5)

    def _run(self) -> None:
        conns: dict[str, http.client.HTTPConnection] = {}
        while not self.stopping.wait(self.every):
            for url in self.urls:
                parsed = urlparse(url)
                conn = conns.get(url)
                if conn is None:
                    conn = conns[url] = http.client.HTTPConnection(
                        parsed.hostname, parsed.port, timeout=10
                    )
                started = time.perf_counter()
                try:
                    conn.request("GET", "/healthz")
                    conn.getresponse().read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conns.pop(url, None)
                    with self.lock:
                        self.failures[url] += 1
                    continue
                with self.lock:
                    self.samples[url].append((time.perf_counter() - started) * 1000)
        for conn in conns.values():
            conn.close()

    def take(self) -> dict[str, dict[str, Any]]:
        """p50/p99/max ms per worker since the last take."""
        with self.lock:
            taken, self.samples = self.samples, {u: [] for u in self.urls}
            failed, self.failures = self.failures, {u: 0 for u in self.urls}
        out = {}
        for url, values in taken.items():
            row = stats.percentiles(array("q", (int(v * 1000) for v in values)))
            row["failures"] = failed[url]
            out[url] = row
        return out


def drift(values: list[float | None]) -> dict[str, Any]:
    """First-to-last and the largest deviation from the first sample, both in % of it."""
    series = [v for v in values if v is not None]
    if len(series) < 2 or not series[0]:
        return {"first": series[0] if series else None, "samples": len(series), "flat": None}
    first = series[0]
    to_last = (series[-1] - first) / first * 100
    max_dev = max(abs(v - first) for v in series) / first * 100
    return {
        "first": first,
        "last": series[-1],
        "min": min(series),
        "max": max(series),
        "first_to_last_pct": round(to_last, 2),
        "max_deviation_pct": round(max_dev, 2),
        "flat": abs(to_last) <= FLAT_PCT and max_dev <= FLAT_PCT,
        "samples": len(series),
    }


def _verdict(d: dict[str, Any]) -> str:
    if d.get("flat") is None:
        return "too few samples"
    word = f"flat within {FLAT_PCT:g} %" if d["flat"] else f"NOT flat within {FLAT_PCT:g} %"
    return (
        f"{d['first']:.1f} -> {d['last']:.1f} (first-to-last {d['first_to_last_pct']:+.1f} %, "
        f"max deviation {d['max_deviation_pct']:.1f} %): {word}"
    )


def soak(args: argparse.Namespace) -> Result:
    """A long run at a fixed fan-out rate, 10 % of clients reconnecting each --duration s;
    every worker's RSS, fds and loop lag sampled at the end of each, and their drift."""
    total = args.minutes * 60
    cycles = max(1, round(total / args.duration))
    period = total / cycles
    with contextlib.ExitStack() as stack:
        targets, workers = _cluster(args, stack, front=args.front)
        specs = runner.make_layout(args, targets)
        _, per_rate = runner.offered(specs, 1.0)
        rate = args.rate / per_rate
        per_worker = _per_worker(workers, args.worker_pids)
        pids = sorted({p for ps in per_worker.values() for p in ps})
        services = runner.service_pids(args.service_ports)
        print(
            f"soak: {args.minutes:g} min as {cycles} x {period:.0f} s at {args.rate:g} "
            f"deliveries/s ({args.senders} senders x {rate:.3g} msg/s x "
            f"{per_rate / args.senders:g} members per room), {args.reconnect * 100:g} % of "
            f"clients reconnecting every {period:.0f} s; workers {', '.join(workers)}",
            flush=True,
        )
        probe = stack.enter_context(LoopProbe(workers))
        samples: list[dict[str, Any]] = []
        phases: list[dict[str, Any]] = []
        with runner.fleet(args, specs) as (fl, ready):
            warmup = args.warmup
            print(_SOAK_HEADER, flush=True)
            for cycle in range(cycles):
                args.warmup, args.duration = (warmup if cycle == 0 else 0.0), period
                probe.take()  # the probe window is the phase's
                phase = runner.run_phase(
                    args, fl, specs, f"t{cycle + 1}", rate, pids, services, args.reconnect
                )
                phase["problems"] = runner.common_problems(phase)
                if phase["reconnect_errors"]:
                    phase["problems"].append(f"reconnect errors {phase['reconnect_errors']}")
                lag = probe.take()
                sample = {
                    "at_min": round((cycle + 1) * period / 60, 2),
                    "workers": {
                        url: {
                            "rss_kb": procfs.sum_rss_kb(ps),
                            "fds": sum(procfs.open_fds(p) or 0 for p in ps),
                            "lag_p99_ms": lag.get(url, {}).get("p99"),
                            "lag_max_ms": lag.get(url, {}).get("max"),
                            "probe_failures": lag.get(url, {}).get("failures", 0),
                        }
                        for url, ps in per_worker.items()
                    },
                }
                samples.append(sample)
                phases.append(phase)
                print(_soak_line(phase, sample), flush=True)
    series: dict[str, dict[str, Any]] = {}
    for url in per_worker:
        for key in ("rss_kb", "fds", "lag_p99_ms"):
            series[f"{url} {key}"] = drift([s["workers"][url][key] for s in samples])
    for key in ("rss_kb", "fds"):
        series[f"all workers {key}"] = drift(
            [sum(s["workers"][u][key] for u in per_worker) for s in samples]
        )
    lost = sum(p["lost"] for p in phases)
    errors = sum(p["errors"] for p in phases)
    reconnects = sum(p["reconnects"] for p in phases)
    reconnect_errors: dict[str, int] = {}
    for p in phases:
        for k, v in p["reconnect_errors"].items():
            reconnect_errors[k] = reconnect_errors.get(k, 0) + v
    disconnects = phases[-1]["disconnects"] if phases else 0
    p99s = [p["latency_ms"]["p99"] for p in phases if p["latency_ms"]["p99"] is not None]
    summary = {
        "minutes": args.minutes,
        "deliveries_per_s_offered": args.rate,
        "deliveries_per_s_mean": sum(p["deliveries_per_s"] for p in phases) / len(phases),
        "delivered": sum(p["delivered"] for p in phases),
        "expected": sum(p["expected"] for p in phases),
        "lost": lost,
        "errors": errors,
        "error_codes": _sum_counts(p["error_codes"] for p in phases),
        "reconnects": reconnects,
        "reconnect_errors": reconnect_errors,
        "replayed": sum(p["replayed"] for p in phases),
        "unplanned_disconnects": disconnects,
        "latency_p99_ms_per_sample": p99s,
        "latency_p99_ms_worst": max(p99s) if p99s else None,
        "drift": series,
    }
    print(
        f"acked messages x members: {summary['expected']}, of which lost {lost}; deliveries "
        f"counted {summary['delivered']} (also of sends whose ack timed out, and late ones of "
        f"the period before); errors {summary['error_codes'] or 0}, reconnects {reconnects} "
        f"(failed {reconnect_errors or 0}), replayed on re-join {summary['replayed']}, "
        f"unplanned disconnects {disconnects}; delivery p99 per sample "
        f"{min(p99s, default=0):.0f}-{max(p99s, default=0):.0f} ms"
    )
    print("drift (from the first sample, at the end of the first period, to the last):")
    for name, d in series.items():
        print(f"  {name}: {_verdict(d)}")
    bad = lost or errors or reconnect_errors or disconnects
    return {"setup": ready, "samples": samples, "phases": phases, "summary": summary}, int(
        bool(bad)
    )


def _sum_counts(dicts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


_SOAK_HEADER = (
    f"{'sample':<7}{'deliv/s':>9}{'p99 ms':>8}{'lost':>6}{'err':>5}{'recon':>6}{'replay':>7}"
    "   per worker: RSS MB / fds / /healthz p99 ms"
)


def _soak_line(phase: dict[str, Any], sample: dict[str, Any]) -> str:
    p99 = phase["latency_ms"]["p99"]
    workers = "  ".join(
        f"{w['rss_kb'] / 1024:.0f}/{w['fds']}/"
        + ("-" if w["lag_p99_ms"] is None else f"{w['lag_p99_ms']:.1f}")
        for w in sample["workers"].values()
    )
    return (
        f"{phase['phase']:<7}{phase['deliveries_per_s']:>9.0f}"
        f"{'-' if p99 is None else f'{p99:.0f}':>8}{phase['lost']:>6}{phase['errors']:>5}"
        f"{phase['reconnects']:>6}{phase['replayed']:>7}   {workers}"
    )


SCENARIOS = {
    "smoke": smoke,
    "fanout": fanout,
    "latency": latency,
    "ingest": ingest,
    "idle": idle,
    "scaling": scaling,
    "bigroom": bigroom,
    "storm": storm,
    "soak": soak,
    "fleet": fleet,
}
