"""`scripts/bench SCENARIO [options]`: argument parsing, time budget and the final report."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from benchlib import report, runner, scenarios
from benchlib.guard import TargetError, parse_targets, raise_fd_limit

DESCRIPTION = """\
Load generator for chatd. It speaks Engine.IO v4 / Socket.IO v5 over WebSocket itself,
measures send -> delivery latency at every member, loss, duplicates and order by room seq,
acked sends, and the CPU of the worker processes and of itself per delivery.

Loopback targets only (and the hosts `fleet` builds on a bridge of its own). Every run is
bounded in time and stops by itself.

Start the workers with the per-connection message limit raised, or the benchmark measures
the rate limiter (default burst 20, 120/min; rate_limited acks are reported as errors):

  CHATD_LIMITS_RATE_PER_MINUTE=60000 CHATD_LIMITS_RATE_BURST=1000 \\
  CHATD_MONGO_DB=bench scripts/spawn 2          # workers on 127.0.0.1:3001,3002

scenarios (each one command; defaults in `scripts/bench SCENARIO --help`):
  smoke    20 clients, 2 rooms, 2 senders at 5 msg/s for 3 s; exits 1 unless 0 loss/errors
  fanout   1000 clients in 10 rooms over all targets; steps the rate up until p99 > 100 ms
           or loss > 0; reports the highest rate that met both
  latency  the fanout layout at a fixed 10,000 deliveries/s (--repeat runs)
  ingest   200 rooms x 2 members, 200 senders: acked (= persisted) messages/s, stepped up
  idle     worker RSS per idle connection at 2,000 and 10,000 connections
  scaling  fanout step-up against 1 worker, then 2 (starts them with scripts/spawn
           --base-port, or give --target-1 and --target-2)
  bigroom  fills one room with 20,000 messages (ack latency per 1,000), then times joins
           of it, one at a time and 20 at once (first target only)
  storm    3000 clients connect at one instant through the front door (default
           http://127.0.0.1:3000, as scripts/start runs it; --spawn 2 starts workers and a
           front door of its own) and each joins a room: all joined or not, connect+join
           p50/p99/max, time to all joined, errors by kind; exits 1 unless all joined
  soak     30 min (--minutes) at a fixed fan-out rate (--rate, deliveries/s; default 8,450,
           half the lowest top fan-out rate in the README), 10 % of clients reconnecting
           every minute (--reconnect, --duration); every minute each worker's RSS, fds and
           /healthz p99 (event-loop lag) and their drift: "flat within 5 %" or not
  fleet    builds 1, then 2, then 3 hosts (network namespaces, each running scripts/start;
           needs root) on one Redis Cluster and one FerretDB; the same load per host (200
           clients in 4 rooms of its own, 4 senders at 5 msg/s), then each worker's messages
           and bytes from Redis (chatd_bus_received_*) over the window; --target is unused
"""

DEFAULT_TARGET = "http://127.0.0.1:3001,http://127.0.0.1:3002"
FRONT_DOOR = "http://127.0.0.1:3000"
SCENARIO_DEFAULTS: dict[str, dict[str, object]] = {
    "smoke": dict(clients=20, rooms=2, senders=2, rate=5.0, duration=3.0, warmup=1.0, procs=1),
    "fanout": dict(clients=1000, rooms=10, senders=10, rate=1.0, duration=10.0, warmup=3.0),
    "latency": dict(clients=1000, rooms=10, senders=10, duration=30.0, warmup=5.0),
    "ingest": dict(clients=400, rooms=200, senders=200, rate=0.05, duration=10.0, warmup=3.0),
    "idle": dict(clients=0, rooms=1, senders=0, procs=1, connect_concurrency=100),
    "scaling": dict(clients=1000, rooms=10, senders=10, rate=1.0, duration=10.0, warmup=3.0),
    "bigroom": dict(clients=1, rooms=1, senders=1, rate=1.0, duration=1.0, warmup=0.0, procs=1),
    "storm": dict(
        clients=3000, rooms=30, senders=0, target=FRONT_DOOR, connect_timeout=60.0, procs=2
    ),
    "soak": dict(
        clients=1000, rooms=10, senders=10, rate=8450.0, duration=60.0, warmup=5.0, pause=0.0
    ),
    "fleet": dict(clients=200, rooms=4, senders=4, rate=5.0, duration=12.0, warmup=3.0),
}
SOAK_MAX_MINUTES = 24 * 60
MAX_CLIENTS = 20_000
MAX_DURATION_SECS = 600.0
MAX_FLEET_HOSTS = 5


def _common(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help="worker or front-door URL, or a comma list spread round-robin "
        f"(default {DEFAULT_TARGET})",
    )
    p.add_argument("--clients", type=int, help="connections")
    p.add_argument("--rooms", type=int, help="rooms the clients are spread over")
    p.add_argument("--senders", type=int, help="clients that send (spread over rooms)")
    p.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="deliveries/s to hold (every member's copy counts; sets the per-sender rate)"
        if name == "soak"
        else "messages/s per sender (the first step when stepping)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="soak: seconds per sample (a measured phase; reconnects happen in each)"
        if name == "soak"
        else "measured seconds per phase",
    )
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before it")
    p.add_argument("--procs", type=int, default=2, help="load processes the clients split over")
    p.add_argument(
        "--deflate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="offer permessage-deflate like browsers do (default on)",
    )
    p.add_argument(
        "--client-id",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="send a client_id with each message, as a client that retries does (costs the "
        "server one more MongoDB query per message)",
    )
    p.add_argument(
        "--stack",
        choices=("chatd", "node"),
        default="chatd",
        help="what the targets run: chatd, or the brief's Node stack (no acks, no seq: loss "
        "and order are checked per sender by a counter in each message)",
    )
    p.add_argument("--json", metavar="OUT", help="also write the full report as JSON")
    p.add_argument(
        "--worker-pids", help="comma list; default: processes listening on the target ports"
    )
    p.add_argument(
        "--service-ports",
        default=runner.default_service_ports(),
        help="Redis and MongoDB ports whose CPU is reported (default from "
        "CHATD_REDIS_URL / CHATD_MONGO_URL)",
    )
    p.add_argument("--ack-timeout", type=float, default=10.0)
    p.add_argument(
        "--drain",
        type=float,
        default=5.0,
        help="seconds to wait for missing deliveries after sending stops",
    )
    p.add_argument("--pause", type=float, default=2.0, help="seconds between phases")
    p.add_argument("--connect-concurrency", type=int, default=200)
    p.add_argument(
        "--join-concurrency",
        type=int,
        default=10,
        help="joins in flight per load process (a join storm is not what these measure)",
    )
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument(
        "--max-wall",
        type=float,
        default=1800.0,
        help="hard limit on the whole run, seconds (soak: at least its length + 10 min)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="scenario", required=True)
    for name, defaults in SCENARIO_DEFAULTS.items():
        p = sub.add_parser(name, help=DESCRIPTION.split(f"  {name} ", 1)[1].split("\n")[0])
        _common(p, name)
        if name in ("fanout", "ingest", "scaling"):
            p.add_argument("--step", type=float, default=1.5, help="rate factor per step")
            p.add_argument("--max-steps", type=int, default=8)
            p.add_argument(
                "--p99-ms",
                type=float,
                default=100.0,
                help="pass mark: delivery p99 (fanout) or ack p99 (ingest)",
            )
            p.add_argument(
                "--stop-p99-ms",
                type=float,
                default=1000.0,
                help="steps go on past the pass mark while p99 stays under this, loss is 0 "
                "and the generator keeps up",
            )
        if name == "latency":
            p.add_argument(
                "--deliveries",
                type=float,
                default=10_000.0,
                help="deliveries/s to hold (sets the per-sender rate)",
            )
            p.add_argument("--repeat", type=int, default=2, help="measured runs in a row")
        if name == "idle":
            p.add_argument("--counts", default="2000,10000", help="connection counts")
            p.add_argument(
                "--settle", type=float, default=5.0, help="seconds before each RSS reading"
            )
            p.add_argument(
                "--spawn",
                type=int,
                default=0,
                metavar="N",
                help="start N fresh workers per count with scripts/spawn (freed "
                "memory of an earlier count is otherwise reused)",
            )
        if name in ("idle", "scaling"):
            p.add_argument(
                "--base-port",
                type=int,
                default=3400,
                help="scripts/spawn --base-port for workers started here",
            )
        if name == "bigroom":
            p.add_argument("--messages", type=int, default=20_000, help="messages to add")
            p.add_argument("--every", type=int, default=1000, help="report every N messages")
            p.add_argument("--joins", type=int, default=20, help="joins at once, at the end")
            p.add_argument("--room", help="room to fill (default: a new one per run)")
        if name in ("storm", "soak"):
            p.add_argument(
                "--spawn",
                type=int,
                default=0,
                metavar="N",
                help="start N workers with scripts/spawn --base-port (their own database, "
                "dropped after)"
                + (
                    " and a front door before them; --target is then unused"
                    if name == "storm"
                    else "; --target is then unused"
                ),
            )
            p.add_argument(
                "--base-port", type=int, default=3300, help="worker I of --spawn on base+I"
            )
            p.add_argument(
                "--front-port",
                type=int,
                default=0,
                help="the front door of --spawn on 127.0.0.1:PORT (default: --base-port)",
            )
        if name == "soak":
            p.add_argument(
                "--minutes", type=float, default=30.0, help="length of the run (default 30)"
            )
            p.add_argument(
                "--reconnect",
                type=float,
                default=0.10,
                help="share of the clients (non-senders) that reconnect and re-join with "
                "`since` in every --duration period (default 0.10)",
            )
            p.add_argument(
                "--front",
                action=argparse.BooleanOptionalAction,
                default=False,
                help="with --spawn, connect through a front door instead of to the workers",
            )
        if name == "fleet":
            p.add_argument(
                "--hosts", default="1,2,3", help="fleet sizes, one after the other (default 1,2,3)"
            )
            p.add_argument(
                "--workers-per-host", type=int, default=2, help="CHATD_WORKERS of each host"
            )
            p.add_argument(
                "--cluster-port",
                type=int,
                default=7401,
                help="first of the Redis Cluster's six ports, on the bridge's address (default "
                "7401; the tests use 7101 and 7201)",
            )
        if name == "scaling":
            p.add_argument("--target-1", help="one worker's URL (default: spawn one)")
            p.add_argument("--target-2", help="two workers' URLs (default: spawn two)")
        p.set_defaults(**defaults)
    return parser


def _check(args: argparse.Namespace) -> None:
    if args.scenario != "idle":
        parse_targets(args.target)
    for given in (getattr(args, "target_1", None), getattr(args, "target_2", None)):
        if given:
            parse_targets(given)
    counts = [int(c) for c in args.counts.split(",")] if args.scenario == "idle" else []
    if max([args.clients, *counts]) > MAX_CLIENTS:
        raise TargetError(f"at most {MAX_CLIENTS} clients")
    if args.scenario == "fleet":
        sizes = [int(n) for n in args.hosts.split(",")]
        if not sizes or not all(1 <= n <= MAX_FLEET_HOSTS for n in sizes):
            raise TargetError(f"--hosts: sizes of 1..{MAX_FLEET_HOSTS}")
        if not 1 <= args.workers_per_host <= 4:
            raise TargetError("--workers-per-host must be 1..4")
        if max(sizes) * args.clients > MAX_CLIENTS:
            raise TargetError(f"at most {MAX_CLIENTS} clients over the largest fleet")
    if args.scenario == "soak":
        if not 0 < args.minutes <= SOAK_MAX_MINUTES:
            raise TargetError(f"--minutes must be 0..{SOAK_MAX_MINUTES}")
        if not 0 <= args.reconnect <= 1:
            raise TargetError("--reconnect must be 0..1")
        if args.senders < 1 or not 0 < args.rate <= runner.MAX_SEND_RATE * 10:
            raise TargetError("soak needs senders and 0 < --rate (deliveries/s) <= 200000")
    elif args.senders * args.rate > runner.MAX_SEND_RATE:
        raise TargetError(f"at most {runner.MAX_SEND_RATE:g} messages/s in all")
    if not 0 < args.duration <= MAX_DURATION_SECS or args.warmup < 0:
        raise TargetError(f"--duration must be 0..{MAX_DURATION_SECS:g} s")
    if not 1 <= args.procs <= 16:
        raise TargetError("--procs must be 1..16")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check(args)
    except (TargetError, ValueError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    # SIGTERM unwinds like Ctrl-C, so the load processes are told to close their sockets.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.scenario == "soak":
        args.max_wall = max(args.max_wall, args.minutes * 60 + 600)
    args.deadline = time.monotonic() + args.max_wall
    args.run_id = runner.new_run_id()
    raise_fd_limit(65536)
    header = {
        "scenario": args.scenario,
        "versions": report.versions(),
        "host_before": report.host(),
        "options": {k: v for k, v in vars(args).items() if k not in ("deadline",)},
    }
    print(" ".join(f"{k} {v}" for k, v in header["versions"].items()), flush=True)
    body, status = scenarios.SCENARIOS[args.scenario](args)
    if args.json:
        report.write_json(args.json, {**header, **body, "host_after": report.host()})
        print(f"report written to {args.json}")
    return status
