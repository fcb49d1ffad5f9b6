"""A worker's stop: SIGTERM drains the events in flight, cuts every client's transport without
telling it to stay away (docs/guarantees.md L10), closes every part and exits 0 by itself,
leaving no task, socket or connection behind (the exit report of chatd/exitreport.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from chatd.app import CLOSE_TIMEOUT_SECS
from tests.conftest import FrontDoor, Services, Worker
from tests.integration.raw import Polling, open_raw_websocket

pytestmark = pytest.mark.cluster

DRAIN_SECS = 5.0
# Redis holds the worker's writes this long, so that a send is in flight when SIGTERM comes.
PAUSE_MS = 1500


async def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.02)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def connections_of(r: redis.Redis, worker: Worker) -> list[dict[str, Any]]:
    """The Redis connections the worker opened (each is named after its worker id and pid)."""
    assert worker.proc is not None
    name = f"chatd-w{worker.worker_id}-{worker.proc.pid}"
    return [c for c in r.client_list() if c.get("name") == name]


@pytest.fixture
def cluster(
    start_worker: Callable[..., Worker],
    start_front_door: Callable[..., FrontDoor],
    services: Services,
    tmp_path: Path,
) -> Iterator[tuple[Worker, FrontDoor, Path, redis.Redis]]:
    """Workers 1 and 2 behind the front door; worker 1 writes an exit report."""
    report = tmp_path / "exit-report.json"
    first = start_worker(
        worker_id=1,
        CHATD_SERVER_DRAIN_SECS=str(DRAIN_SECS),
        CHATD_DEBUG_EXIT_REPORT=str(report),
    )
    second = start_worker(worker_id=2)
    door = start_front_door([first, second])
    r = redis.Redis.from_url(services.redis_url)
    yield first, door, report, r
    r.close()
    door.stop()
    first.stop()
    second.stop()


async def clients_on(make: Callable[..., Any], door: FrontDoor, wanted: dict[str, int]) -> dict:
    """Connect through the front door until each worker prefix in `wanted` has that many
    clients; the rest are disconnected."""
    found: dict[str, list[Any]] = {prefix: [] for prefix in wanted}
    for _ in range(4 * sum(wanted.values())):
        c = await make(door.url, transports=["websocket"], reconnection=True)
        for name in ("connect", "disconnect"):
            c.record(name)
        prefix = c.sio.eio.sid.split(".", 1)[0] + "."
        if prefix in found and len(found[prefix]) < wanted[prefix]:
            found[prefix].append(c)
        else:
            await c.sio.disconnect()
        if all(len(found[p]) == n for p, n in wanted.items()):
            return found
    raise AssertionError(f"the front door did not spread clients as wanted: {found}")


async def raw_frames_until_closed(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[str], Any]:
    """Every text frame until the connection ends, answering pings; and how it ended."""
    frames: list[str] = []
    while True:
        msg = await ws.receive(timeout=DRAIN_SECS + CLOSE_TIMEOUT_SECS + 5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return frames, msg
        if msg.data == "2":
            await ws.send_str("3")
        frames.append(msg.data)


async def assert_left_nothing(worker: Worker, report: Path, r: redis.Redis) -> None:
    """What the worker said it held as it returned, and what others see of it."""
    left = json.loads(await asyncio.to_thread(report.read_text))
    assert left["tasks"] == [] and left["cancelled"] == [], left
    assert left["sockets"] == [], left["sockets"]
    assert not port_open(worker.port)
    await until(lambda: not connections_of(r, worker), 5, "Redis saw the worker's connections end")


async def test_sigterm_drains_cuts_transports_and_leaves_nothing_behind(cluster, client, room):
    first, door, report, r = cluster
    by_worker = await clients_on(client, door, {"w1.": 2, "w2.": 1})
    ann, bob = by_worker["w1."]
    (cy,) = by_worker["w2."]
    for c, name in ((ann, "ann"), (bob, "bob"), (cy, "cy")):
        await c.join(room, name)
    assert (await ann.send(room, "before the stop"))["ok"]
    await cy.wait_for("chatMessage", lambda ms: len(ms) == 1)
    async with aiohttp.ClientSession() as http:
        raw = await open_raw_websocket(http, first)
        watching = asyncio.create_task(raw_frames_until_closed(raw))
        poller = Polling(http, first)
        await poller.open()
        await poller.post("40")
        await poller.get()
        long_poll = asyncio.create_task(poller.get())  # waits for output that never comes

        # A send in flight when the stop begins: Redis holds its seqs for PAUSE_MS.
        r.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
        in_flight = asyncio.create_task(ann.send(room, "during the drain"))
        await until(
            lambda: any(
                c["cmd"] == "evalsha" and "b" in c["flags"] for c in connections_of(r, first)
            ),
            PAUSE_MS / 1000,
            "the send reached Redis",
        )
        first.signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        assert not in_flight.done(), "the send was answered before the stop began"

        ack = await in_flight
        assert ack["ok"], ack
        await cy.wait_for("chatMessage", lambda ms: any(m["seq"] == ack["seq"] for m in ms))

        assert first.proc is not None
        returncode = await asyncio.to_thread(first.proc.wait, DRAIN_SECS + CLOSE_TIMEOUT_SECS + 5)
        took = time.monotonic() - stopped_at
        assert returncode == 0, first.log()
        assert took < DRAIN_SECS + CLOSE_TIMEOUT_SECS, took

        frames, ending = await watching
        # Neither an Engine.IO CLOSE ("1") nor a Socket.IO DISCONNECT ("41"), nor a WebSocket
        # close frame: the TCP connection ended under the client.
        assert not [f for f in frames if f == "1" or f.startswith("41")], frames
        assert ending.type != aiohttp.WSMsgType.CLOSE, ending
        with pytest.raises(aiohttp.ClientError):
            await long_poll

    for c in (ann, bob):
        await c.wait_for("disconnect", lambda reasons: len(reasons) == 1)
        assert c.events["disconnect"] == [c.sio.reason.TRANSPORT_ERROR]
        await c.wait_for("connect", lambda connects: len(connects) == 1, timeout=15)
        assert c.sio.eio.sid.startswith("w2."), c.sio.eio.sid
    # A stock client does not re-join by itself (the browser client does, with `since`).
    for c, name in ((ann, "ann"), (bob, "bob")):
        await c.join(room, name)
    again = await ann.send(room, "after the stop")
    assert again["ok"], again
    await bob.wait_for("chatMessage", lambda ms: any(m["seq"] == again["seq"] for m in ms))

    await assert_left_nothing(first, report, r)
