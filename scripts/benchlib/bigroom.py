"""`bigroom`: how one room behaves as its history grows.

One client fills a room with --messages sequential sends, each with a client_id as the
browser client sends them, and reports the ack latency of every --every messages. Then it
times joins of that room: one at a time, then --joins at once (each its own connection), as
after a worker restart. Sequential, so the figures are the server's cost per operation at that
room size, not a throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from array import array
from collections import Counter
from typing import Any

import aiohttp

from benchlib.guard import parse_targets
from benchlib.sio import SioClient, SioError
from benchlib.stats import percentiles

MAX_MESSAGES = 100_000
MAX_JOINS = 500
SINGLE_JOINS = 3


async def _connect(session: aiohttp.ClientSession, url: str, limit_secs: float) -> SioClient:
    client = SioClient(session, url, deflate=False)
    await client.connect(limit_secs)
    return client


async def _timed_join(
    session: aiohttp.ClientSession, url: str, room: str, name: str, limit_secs: float
) -> tuple[float, str]:
    """(ms to the join ack, "ok" or the error code); the connection is closed after."""
    try:
        client = await _connect(session, url, limit_secs)
    except (SioError, OSError, TimeoutError):
        return 0.0, "connect_failed"
    try:
        started = time.perf_counter()
        ack = await client.call("joinRoom", {"username": name, "room": room}, limit_secs)
        took = (time.perf_counter() - started) * 1000
        return took, "ok" if ack.get("ok") else ack.get("error", {}).get("code", "?")
    except (SioError, TimeoutError):
        return (time.perf_counter() - started) * 1000, "ack_timeout"
    finally:
        await client.close()


async def _fill(
    session: aiohttp.ClientSession, args: argparse.Namespace, room: str
) -> list[dict[str, Any]]:
    sender = await _connect(session, args.url, args.ack_timeout)
    rows: list[dict[str, Any]] = []
    try:
        ack = await sender.call("joinRoom", {"username": "filler", "room": room}, args.ack_timeout)
        if not ack.get("ok"):
            raise SystemExit(f"bench: join refused: {ack}")
        start_seq = int(ack["last_seq"])
        sample: array[int] = array("q")
        errors: Counter[str] = Counter()
        for n in range(1, args.messages + 1):
            if time.monotonic() > args.deadline:
                print("bigroom: --max-wall reached; stopping the fill", flush=True)
                break
            payload = {"room": room, "message": f"m{n}", "client_id": f"{args.run_id}-{n}"}
            started = time.perf_counter_ns()
            try:
                ack = await sender.call("chatMessage", payload, args.ack_timeout)
                if not ack.get("ok"):
                    errors[ack.get("error", {}).get("code", "?")] += 1
            except TimeoutError:
                errors["ack_timeout"] += 1
            sample.append((time.perf_counter_ns() - started) // 1000)
            if n % args.every == 0 or n == args.messages:
                row = {"messages": start_seq + n, **percentiles(sample), "errors": dict(errors)}
                rows.append(row)
                print(
                    f"room holds {row['messages']:>7}: ack p50 {row['p50']:7.1f} ms  "
                    f"p99 {row['p99']:7.1f} ms  max {row['max']:7.1f} ms  "
                    f"errors {sum(errors.values())}",
                    flush=True,
                )
                sample = array("q")
                errors = Counter()
    finally:
        await sender.close()
    return rows


async def _joins(
    session: aiohttp.ClientSession, args: argparse.Namespace, room: str
) -> dict[str, Any]:
    singles = [
        await _timed_join(session, args.url, room, f"single{i}", args.ack_timeout)
        for i in range(SINGLE_JOINS)
    ]
    together = await asyncio.gather(
        *(
            _timed_join(session, args.url, room, f"joiner{i}", args.ack_timeout)
            for i in range(args.joins)
        )
    )
    ok_ms = array("q", (int(ms * 1000) for ms, outcome in together if outcome == "ok"))
    outcomes = Counter(outcome for _, outcome in together)
    result = {
        "single_ms": [round(ms, 1) for ms, _ in singles],
        "single_outcomes": [outcome for _, outcome in singles],
        "together": args.joins,
        "together_outcomes": dict(outcomes),
        "together_ok_ms": percentiles(ok_ms),
    }
    print(
        f"one join at a time: {', '.join(f'{ms:.0f} ms' for ms, _ in singles)} "
        f"({', '.join(o for _, o in singles)})",
        flush=True,
    )
    ok = result["together_ok_ms"]
    spread = f"p50 {ok['p50']:.0f} ms, max {ok['max']:.0f} ms" if ok["count"] else "none ok"
    print(f"{args.joins} joins at once: {dict(outcomes)}; {spread}", flush=True)
    return result


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    room = args.room or f"bigroom-{args.run_id}"
    async with aiohttp.ClientSession() as session:
        fill = await _fill(session, args, room) if args.messages else []
        joins = await _joins(session, args, room)
    return {"room": room, "fill": fill, "joins": joins}


def bigroom(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    if not 0 <= args.messages <= MAX_MESSAGES or not 1 <= args.joins <= MAX_JOINS:
        raise SystemExit(f"bench: --messages 0..{MAX_MESSAGES}, --joins 1..{MAX_JOINS}")
    if args.every < 1:
        raise SystemExit("bench: --every must be at least 1")
    args.url = parse_targets(args.target)[0]
    body = asyncio.run(_run(args))
    failed = sum(sum(row["errors"].values()) for row in body["fill"])
    return body, int(failed > 0)
