"""Per-room channels: a worker subscribes to a room's Redis channel while the room has members
on it, receives only those rooms' traffic, and a join on a worker new to the room misses
nothing sent while its subscription was being made."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import redis

from tests.conftest import Worker
from tests.integration.test_chat import send_many
from tests.integration.test_hostile import metric

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def pair(workers: Callable[..., list[Worker]]) -> list[Worker]:
    return workers(2, CHATD_LIMITS_RATE_BURST="5000", CHATD_LIMITS_RATE_PER_MINUTE="100000")


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.05)


def received(worker: Worker) -> float:
    return metric(worker, "chatd_bus_received_messages_total")


def followed(worker: Worker) -> float:
    return metric(worker, "chatd_bus_rooms_followed")


async def test_a_worker_receives_only_the_traffic_of_rooms_with_members_on_it(
    pair, client, room, services
):
    w1, w2 = pair
    only1, only2, shared = room + "-a", room + "-b", room + "-c"
    ann = await client(w1.url, transports=["websocket"])
    bob = await client(w2.url, transports=["websocket"])
    carl = await client(w1.url, transports=["websocket"])
    dan = await client(w2.url, transports=["websocket"])
    await ann.join(only1, "ann")
    await bob.join(only2, "bob")
    await carl.join(shared, "carl")
    await dan.join(shared, "dan")
    assert subscribers(services, only1) == subscribers(services, only2) == 1
    assert subscribers(services, shared) == 2

    async def heard_by_the_other(sender, their_room, listener) -> float:
        """What `listener` received from Redis while `sender` sent 40 to a room it has no
        member in, and carl 5 to the shared room."""
        before = received(listener)
        await send_many(sender, their_room, [f"x{i}" for i in range(40)])
        texts = [f"c{len(carl.messages(shared)) + i}" for i in range(5)]
        await send_many(carl, shared, texts)
        await dan.wait_for("chatMessage", lambda ms: [m["message"] for m in ms][-5:] == texts)
        return received(listener) - before

    # Each worker heard the shared room's 5 (and its presence and notices), never the 40.
    assert 5 <= await heard_by_the_other(ann, only1, w2) < 40
    assert 5 <= await heard_by_the_other(bob, only2, w1) < 40
    assert len(dan.messages(shared)) == 10  # the shared room crossed workers, all of it


def subscribers(services, room: str) -> int:
    r = redis.Redis.from_url(services.redis_url)
    try:
        channel = f"{services.redis_prefix}:socketio:room:{room}"
        return int(dict(r.pubsub_numsub(channel))[channel.encode()])
    finally:
        r.close()


async def test_a_worker_follows_a_room_while_it_has_members_there(pair, client, room, services):
    w1, _ = pair
    ann = await client(w1.url, transports=["websocket"])
    bob = await client(w1.url, transports=["websocket"])
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    await ann.join(room + "-2", "ann")
    assert subscribers(services, room) == subscribers(services, room + "-2") == 1
    assert followed(w1) >= 2
    await ann.call("leaveRoom", {"room": room + "-2"})
    await until(lambda: subscribers(services, room + "-2") == 0)
    await ann.call("leaveRoom", {"room": room})
    assert subscribers(services, room) == 1  # bob is still there
    await bob.sio.disconnect()
    await until(lambda: subscribers(services, room) == 0)


async def test_joins_on_a_worker_new_to_the_room_miss_nothing_sent_meanwhile(
    pair, client, room, services
):
    w1, w2 = pair
    sender = await client(w1.url, transports=["websocket"])
    await sender.join(room, "sender")
    stop = asyncio.Event()
    sent: list[int] = []

    async def keep_sending() -> None:
        n = 0
        while not stop.is_set():
            acks = await send_many(sender, room, [f"m{n + i}" for i in range(5)])
            sent.extend(a["seq"] for a in acks)
            n += 5

    sending = asyncio.create_task(keep_sending())
    joiners = []
    try:
        for i in range(6):
            # Each joins alone on w2, so each makes w2 subscribe to the room anew.
            joiner = await client(w2.url, transports=["websocket"])
            ack = await joiner.join(room, f"j{i}")
            joiners.append((joiner, ack["last_seq"]))
            await asyncio.sleep(0.05)
            await joiner.sio.disconnect()
            await until(lambda: subscribers(services, room) == 1)  # w1's only
        late = await client(w2.url, transports=["websocket"])
        ack = await late.join(room, "late")
        joiners.append((late, ack["last_seq"]))
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await sending
    last = sent[-1]
    joiner, since = joiners[-1]
    await joiner.wait_for("chatMessage", lambda ms: any(m["seq"] == last for m in ms))
    live = [m["seq"] for m in joiner.messages(room)]
    history = [m["seq"] for batch in joiner.events.get("chat-history", []) for m in batch]
    assert sorted(set(live) | set(history)) == list(range(min(history or live), last + 1))
    assert live == sorted(live) and since < last
    for early, since in joiners[:-1]:
        got = sorted(
            {m["seq"] for m in early.messages(room)}
            | {m["seq"] for batch in early.events.get("chat-history", []) for m in batch}
        )
        # Whatever arrived live after the join's last_seq is gap-free up to the newest one.
        after = [s for s in got if s > since]
        assert after == list(range(since + 1, since + 1 + len(after)))


async def test_four_workers_each_hear_only_their_own_rooms(workers, client, room):
    fleet = workers(4, CHATD_LIMITS_RATE_BURST="5000", CHATD_LIMITS_RATE_PER_MINUTE="100000")
    members = []
    for i, worker in enumerate(fleet):
        member = await client(worker.url, transports=["websocket"])
        await member.join(f"{room}-{i}", f"m{i}")
        members.append(member)
    before = [received(w) for w in fleet]
    for i, member in enumerate(members):
        await send_many(member, f"{room}-{i}", [f"{i}-{n}" for n in range(20)])
    for member in members:
        await member.wait_for("chatMessage", lambda ms: len(ms) == 20)
    # Its own room's 20 come back to each worker (Redis sends a publisher's subscription its
    # own messages); the other three rooms' 60 never reach it.
    for worker, start in zip(fleet, before, strict=True):
        assert 20 <= received(worker) - start < 40
