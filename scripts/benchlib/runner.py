"""Shared steps of every scenario: lay out clients, start the fleet, run phases, judge them."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

from benchlib import procfs, report
from benchlib.fleet import Fleet
from benchlib.plan import ClientSpec, layout

MAX_SEND_RATE = 20_000.0  # messages/s over all senders: a bound, not a goal
Judge = Callable[[dict[str, Any]], list[str]]


def server_pids(targets: list[str], given: str | None) -> list[int]:
    """The chatd processes behind the targets: --worker-pids, or whoever listens on the ports."""
    if given:
        return [int(p) for p in given.split(",") if p.strip()]
    pids: set[int] = set()
    for url in targets:
        port = urlparse(url).port
        if port is not None:
            pids.update(procfs.pids_listening(port))
    return sorted(pids)


def service_pids(spec: str) -> list[int]:
    pids: set[int] = set()
    for port in (p for p in spec.split(",") if p.strip()):
        pids.update(procfs.pids_listening(int(port)))
    return sorted(pids)


def default_service_ports() -> str:
    """Redis and the MongoDB-protocol server as the workers see them (same env vars)."""
    ports = []
    for var, default in (("CHATD_REDIS_URL", 6379), ("CHATD_MONGO_URL", 27017)):
        parsed = urlparse(os.environ.get(var, ""))
        ports.append(str(parsed.port or default))
    return ",".join(ports)


def offered(specs: list[ClientSpec], rate: float) -> tuple[float, float]:
    """(messages/s, deliveries/s) asked for: every member of a room, the sender too, gets it."""
    members = Counter(s.room for s in specs)
    senders = [s for s in specs if s.sender]
    return rate * len(senders), rate * sum(members[s.room] for s in senders)


@contextlib.contextmanager
def fleet(
    args: argparse.Namespace, specs: list[ClientSpec], start_ns: int = 0
) -> Iterator[tuple[Fleet, dict]]:
    started = Fleet(
        specs,
        args.procs,
        args.deadline,
        deflate=args.deflate,
        client_id=args.client_id,
        stack=args.stack,
        connect_concurrency=args.connect_concurrency,
        join_concurrency=args.join_concurrency,
        connect_timeout=args.connect_timeout,
        run_id=args.run_id,
        start_ns=start_ns,
    )
    try:
        # Joins cost the server a MongoDB upsert and a history read each; on FerretDB that is
        # tens of ms, so allow 0.25 s per client before calling the set-up stuck.
        ready = started.ready(timeout=args.connect_timeout + len(specs) / 4 + 60)
        print(
            f"connected {ready['connected']}/{len(specs)}, joined {ready['joined']} in "
            f"{ready['connect_secs']:.1f} s; permessage-deflate offered={args.deflate} "
            f"negotiated on {ready['deflate_negotiated']}; connect errors "
            f"{ready['connect_errors'] or 0}, join retries {ready['join_retries']}",
            flush=True,
        )
        yield started, ready
    finally:
        started.close()


def run_phase(
    args: argparse.Namespace,
    fl: Fleet,
    specs: list[ClientSpec],
    name: str,
    rate: float,
    pids: list[int],
    services: list[int],
    reconnect_fraction: float = 0.0,
    probe: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    phase = fl.run_phase(
        name,
        rate,
        args.warmup,
        args.duration,
        args.ack_timeout,
        args.drain,
        pids,
        services,
        reconnect_fraction,
        probe,
    )
    report.derive(phase, *offered(specs, rate))
    return phase


def step_up(
    args: argparse.Namespace,
    fl: Fleet,
    specs: list[ClientSpec],
    judge: Judge,
    pids: list[int],
    services: list[int],
    latency_key: str = "latency_ms",
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None]:
    """Raise the rate by --step each phase, up to --max-steps.

    Returns every phase, the highest that passed `judge` (the pass mark) and the last that was
    merely sustained: no loss, no errors, the offered rate sent, p99 <= --stop-p99-ms. The
    steps go on past the pass mark until a phase is not sustained, so a server that never
    meets the pass mark still gets a capacity figure. A pause between phases lets a backlog
    left by a saturated phase drain before the next one starts.
    """
    phases: list[dict[str, Any]] = []
    best = sustained = None
    rate = args.rate
    for step in range(args.max_steps):
        if rate * args.senders > MAX_SEND_RATE:
            break
        phase = run_phase(args, fl, specs, f"step{step + 1}", rate, pids, services)
        phase["problems"] = judge(phase)
        hard = common_problems(phase)
        p99 = phase[latency_key]["p99"]
        if p99 is None or p99 > args.stop_p99_ms:
            hard.append(f"p99 {p99} ms > stop mark {args.stop_p99_ms:g} ms")
        phases.append(phase)
        verdict = "ok" if not phase["problems"] else "FAIL: " + "; ".join(phase["problems"])
        print(report.line(phase) + "  " + verdict, flush=True)
        if hard:
            break
        sustained = phase
        if not phase["problems"]:
            best = phase  # the highest passing rate, even past a noisy failed step
        rate = round(rate * args.step, 3)
        time.sleep(args.pause)
    return phases, best, sustained


def latency_judge(p99_ms: float, key: str = "latency_ms") -> Judge:
    def judge(phase: dict[str, Any]) -> list[str]:
        problems = common_problems(phase)
        p99 = phase[key]["p99"]
        if p99 is None or p99 > p99_ms:
            problems.append(f"{key[:-3]} p99 {p99} ms > {p99_ms:g} ms")
        return problems

    return judge


def common_problems(phase: dict[str, Any]) -> list[str]:
    problems = []
    if phase["lost"]:
        problems.append(f"lost {phase['lost']}")
    if phase["errors"]:
        problems.append(f"errors {phase['error_codes']}")
    if phase["disconnects"]:
        problems.append(f"disconnects {phase['disconnects']}")
    if phase["duplicates"] or phase["out_of_order"]:
        problems.append(f"dup {phase['duplicates']} ooo {phase['out_of_order']}")
    if phase["sent_per_s"] < 0.95 * phase["offered_msgs_per_s"]:
        problems.append(
            f"generator sent {phase['sent_per_s']:.0f}/s of {phase['offered_msgs_per_s']:.0f}/s"
        )
    return problems


def make_layout(args: argparse.Namespace, targets: list[str], join: bool = True) -> list:
    return layout(args.clients, args.rooms, args.senders, targets, args.run_id, join=join)


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]
