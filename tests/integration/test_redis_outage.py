"""Redis goes away and comes back: local delivery never stops, the bus is back within 2 s,
and clients fill what they missed from MongoDB (docs/guarantees.md G9, L2)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time

import pytest

from tests.conftest import free_port, http_get

pytestmark = pytest.mark.cluster
OUTAGE_SECS = 7  # longer than the 5 s after which a queued publish is dropped


def start_redis(port: int, tmp_path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    import redis

    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port, socket_connect_timeout=0.2).ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def metric(url: str, name: str) -> float:
    _, body = http_get(url + "/metrics")
    match = re.search(rf"^{name} (\S+)$", body.decode(), re.M)
    return float(match.group(1)) if match else 0.0


async def test_redis_restart_keeps_local_delivery_and_recovers_the_bus(
    workers, client, room, tmp_path
):
    port = free_port()
    redis_proc = start_redis(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    w1, w2 = workers(2, CHATD_REDIS_URL=url, CHATD_LIMITS_RATE_BURST="1000")
    try:
        sender = await client(w1.url)
        near = await client(w1.url)
        far = await client(w2.url)
        for c, name in ((sender, "sender"), (near, "near"), (far, "far")):
            await c.join(room, name)
        first = await sender.send(room, "before the outage")
        await far.wait_for("chatMessage", lambda ms: any(m["id"] == first["id"] for m in ms))

        redis_proc.kill()
        redis_proc.wait()
        during = []
        for i in range(10):
            ack = await sender.send(room, f"during {i}")
            assert ack["ok"], ack  # MongoDB has it: sending never depends on Redis
            during.append(ack)
            await asyncio.sleep(OUTAGE_SECS / 10)
        # Same-worker members got every message while Redis was down.
        await near.wait_for("chatMessage", lambda ms: len(ms) == 11, timeout=2)
        assert metric(w1.url, "chatd_bus_listener_up") == 0

        redis_proc = start_redis(port, tmp_path)
        back = time.monotonic()
        while time.monotonic() - back < 5:
            if all(metric(w.url, "chatd_bus_listener_up") == 1 for w in (w1, w2)):
                break
            await asyncio.sleep(0.05)
        resubscribed_after = time.monotonic() - back
        assert resubscribed_after <= 2.0, resubscribed_after

        after = await sender.send(room, "after the outage")
        await far.wait_for("chatMessage", lambda ms: any(m["id"] == after["id"] for m in ms))
        assert metric(w1.url, "chatd_bus_publish_dropped_total") >= 1

        # The far member notices the seq gap and catches up by re-joining with `since`.
        seen = {m["seq"] for m in far.messages(room)}
        rejoin = await far.join(room, "far", since=first["seq"])
        await far.wait_for("chat-history", lambda hs: len(hs) >= 2)
        seen |= {m["seq"] for m in far.events["chat-history"][-1]}
        expected = set(range(first["seq"], after["seq"] + 1))
        assert expected <= seen, sorted(expected - seen)
        assert rejoin["last_seq"] == after["seq"]
        assert w1.proc.poll() is None and w2.proc.poll() is None
    finally:
        redis_proc.kill()
        redis_proc.wait()


async def test_workers_started_while_redis_is_down_serve_local_rooms_then_join_the_bus(
    start_worker, client, room, tmp_path
):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    w1 = start_worker(worker_id=1, CHATD_REDIS_URL=url, wait=False)
    w2 = start_worker(worker_id=2, CHATD_REDIS_URL=url, wait=False)
    for w in (w1, w2):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if http_get(w.url + "/healthz", timeout=0.5)[0] == 200:
                    break
            except OSError:
                await asyncio.sleep(0.1)
        assert http_get(w.url + "/readyz")[0] == 503  # alive, but not ready without Redis
    a = await client(w1.url)
    b = await client(w1.url)
    await a.join(room, "a")
    await b.join(room, "b")
    local = await a.send(room, "local while Redis is down")
    await b.wait_for("chatMessage", lambda ms: any(m["id"] == local["id"] for m in ms))

    redis_proc = start_redis(port, tmp_path)
    try:
        started = time.monotonic()
        far = await client(w2.url)
        await far.join(room, "far")
        while time.monotonic() - started < 5:
            if (
                metric(w1.url, "chatd_bus_listener_up") == 1
                and metric(w2.url, "chatd_bus_listener_up") == 1
            ):
                break
            await asyncio.sleep(0.05)
        crossing = await a.send(room, "across workers")
        await far.wait_for("chatMessage", lambda ms: any(m["id"] == crossing["id"] for m in ms))
        assert time.monotonic() - started <= 5
    finally:
        redis_proc.kill()
        redis_proc.wait()
