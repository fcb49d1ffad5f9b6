"""Server-side gap repair (chatd/repair.py): a client that stays connected and never re-joins
still ends with every message of its room, once each, after the bus lost some."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import aiohttp
import pytest

from tests.conftest import free_port
from tests.integration.raw import open_raw_websocket
from tests.integration.test_redis_outage import metric, start_redis

pytestmark = pytest.mark.cluster


class OwnRedis:
    """A Redis of the test's own, to stop and start; it keeps nothing on disk, so every
    restart also loses all its data."""

    def __init__(self, tmp_path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tmp_path
        self.proc = start_redis(self.port, tmp_path)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def start(self) -> None:
        self.proc = start_redis(self.port, self._dir)


@pytest.fixture
def own_redis(tmp_path):
    bus = OwnRedis(tmp_path)
    yield bus
    bus.stop()


# Every restart here loses all of Redis's data too: the test Redis keeps nothing on disk.
@pytest.mark.parametrize("outage_secs", [5, 20, 60])
async def test_stock_clients_get_what_was_sent_while_redis_was_down(
    workers, client, room, own_redis, outage_secs
):
    w1, w2 = workers(2, CHATD_REDIS_URL=own_redis.url, CHATD_LIMITS_RATE_BURST="1000")
    sender = await client(w1.url)
    far = await client(w2.url)  # never re-joins: only the server can fill its gap
    other = await client(w2.url)
    for c, name in ((sender, "sender"), (far, "far"), (other, "other")):
        await c.join(room, name)
    first = await sender.send(room, "before the outage")
    await far.wait_for("chatMessage", lambda ms: any(m["id"] == first["id"] for m in ms))

    own_redis.stop()
    sent = [first]
    for i in range(10):
        ack = await sender.send(room, f"during {i}")
        assert ack["ok"], ack
        sent.append(ack)
        await asyncio.sleep(outage_secs / 10)
    own_redis.start()
    # Repair comes within about a second of Redis returning; the margin is for a loaded machine.
    deadline = time.monotonic() + 30
    seqs = [s["seq"] for s in sent]
    while sorted({m["seq"] for m in far.messages(room)}) != seqs:
        assert time.monotonic() < deadline, sorted({m["seq"] for m in far.messages(room)})
        await asyncio.sleep(0.05)
    after = await sender.send(room, "after the outage")
    seqs.append(after["seq"])
    for member in (far, other):
        await member.wait_for("chatMessage", lambda ms: ms and ms[-1]["seq"] == seqs[-1])
        got = [m["seq"] for m in member.messages(room)]
        assert got == seqs, got  # every one, once, in order
    if outage_secs > 5:  # past the 5 s a worker keeps unsent publishes: repaired ones
        assert metric(w2.url, "chatd_repaired_messages_total") >= 5


async def test_a_message_the_bus_never_brings_is_delivered_after_the_next_one(
    workers, client, room, own_redis
):
    """A publish lost on the way (here: Redis restarted empty between two messages of a room
    whose subscription survives on one worker) shows up as a seq gap, repaired from the
    store."""
    w1, w2 = workers(2, CHATD_REDIS_URL=own_redis.url, CHATD_LIMITS_RATE_BURST="1000")
    sender = await client(w1.url)
    far = await client(w2.url)
    await sender.join(room, "sender")
    await far.join(room, "far")
    acks = []
    for i in range(3):
        acks.append(await sender.send(room, f"m{i}"))
    await far.wait_for("chatMessage", lambda ms: len(ms) == 3)
    # Drop one publish: send it while no one listens on Redis.
    own_redis.stop()
    acks.append(await sender.send(room, "lost on the bus"))
    own_redis.start()
    seqs = [a["seq"] for a in acks]
    deadline = time.monotonic() + 15
    while [m["seq"] for m in far.messages(room)] != seqs:
        assert time.monotonic() < deadline, [m["seq"] for m in far.messages(room)]
        await asyncio.sleep(0.05)
    assert len({m["id"] for m in far.messages(room)}) == 4


async def test_a_room_further_behind_than_a_repair_reads_is_told_to_resync(
    workers, client, room, own_redis
):
    # A repair reads at most limits.replay messages of a room: 3 here.
    w1, w2 = workers(
        2, CHATD_REDIS_URL=own_redis.url, CHATD_LIMITS_RATE_BURST="1000", CHATD_LIMITS_REPLAY="3"
    )
    sender = await client(w1.url)
    far = await client(w2.url)
    far.record("resync")
    await sender.join(room, "sender")
    await far.join(room, "far")
    first = await sender.send(room, "before")
    await far.wait_for("chatMessage", lambda ms: len(ms) == 1)
    own_redis.stop()
    for i in range(8):  # more than 5 s: the worker gives up on the first publishes
        assert (await sender.send(room, f"during {i}"))["ok"]
        await asyncio.sleep(0.9)
    own_redis.start()
    [resync] = await far.wait_for("resync", lambda rs: len(rs) == 1, timeout=15)
    assert resync == {"room": room}
    # Re-joining with since gets the rest, as the event asks.
    await far.join(room, "far", since=first["seq"])
    [*_, history] = await far.wait_for("chat-history", lambda hs: len(hs) == 2)
    got = {m["seq"] for m in far.messages(room)} | {m["seq"] for m in history}
    assert set(range(first["seq"], first["seq"] + 4)) <= got
    assert metric(w2.url, "chatd_resyncs_total") >= 1


async def test_a_worker_stopped_for_30_s_and_continued_delivers_everything_once(
    workers, client, room
):
    # A raw Engine.IO client: python-engineio's own gives up after 30 s with nothing to send
    # (its write loop's timeout), before the stopped server's next ping could reach it.
    w1, w2 = workers(2, CHATD_LIMITS_RATE_BURST="1000")
    sender = await client(w1.url)
    await sender.join(room, "sender")
    async with aiohttp.ClientSession() as http:
        far = await open_raw_websocket(http, w2)
        await far.send_str("421" + json.dumps(["joinRoom", {"room": room, "username": "far"}]))
        frames: list[str] = []
        joined = asyncio.Event()

        async def read() -> None:
            async for msg in far:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                if msg.data == "2":
                    await far.send_str("3")
                if msg.data.startswith("431"):
                    joined.set()
                frames.append(msg.data)

        reader = asyncio.create_task(read())

        def seqs() -> list[int]:
            return [json.loads(f[2:])[1]["seq"] for f in frames if f.startswith('42["chatMessage"')]

        await asyncio.wait_for(joined.wait(), 10)
        acks = [await sender.send(room, "before")]
        assert w2.proc is not None
        os.kill(w2.proc.pid, signal.SIGSTOP)
        try:
            for i in range(10):
                acks.append(await sender.send(room, f"while stopped {i}"))
                await asyncio.sleep(3)
        finally:
            os.kill(w2.proc.pid, signal.SIGCONT)
        acks.append(await sender.send(room, "after"))
        want = [a["seq"] for a in acks]
        deadline = time.monotonic() + 20
        while seqs() != want:
            assert time.monotonic() < deadline, seqs()
            assert not reader.done(), "the worker closed the connection"
            await asyncio.sleep(0.05)
        reader.cancel()
        await far.close()
