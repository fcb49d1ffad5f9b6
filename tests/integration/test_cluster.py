"""Several real workers sharing Redis and MongoDB, behind the real nginx front door."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
import socketio
from pymongo import MongoClient

from chatd.store.mongo import MESSAGES
from tests.conftest import http_get

pytestmark = pytest.mark.cluster


def connected_clients(url: str) -> float:
    _, body = http_get(url + "/metrics")
    match = re.search(r"^chatd_connected_clients (\S+)$", body.decode(), re.M)
    assert match, body[:300]
    return float(match.group(1))


def worker_of(c) -> int:
    """The worker id a client's Engine.IO session lives on (sid prefix `w<ID>.`)."""
    sid = c.sio.eio.sid
    assert sid.startswith("w"), sid
    return int(sid[1 : sid.index(".")])


async def test_broadcast_crosses_workers_both_ways(workers, client, room):
    w1, w2 = workers(2)
    ann = await client(w1.url)
    bob = await client(w2.url)
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    a = await ann.send(room, "from worker 1")
    b = await bob.send(room, "from worker 2")
    assert a["ok"] and b["ok"]
    await bob.wait_for("chatMessage", lambda ms: any(m["id"] == a["id"] for m in ms))
    await ann.wait_for("chatMessage", lambda ms: any(m["id"] == b["id"] for m in ms))


async def test_one_senders_burst_keeps_seq_order_on_every_worker(workers, client, room, services):
    w1, w2 = workers(2, CHATD_LIMITS_RATE_BURST="1000")
    sender = await client(w1.url)
    near = await client(w1.url)
    far = await client(w2.url)
    for c, name in ((sender, "sender"), (near, "near"), (far, "far")):
        await c.join(room, name)
    count = 250
    # Emitted back to back without waiting for acks: the order on the wire is the send order.
    acks = await asyncio.gather(*(sender.send(room, f"n={i}") for i in range(count)))
    assert all(a["ok"] for a in acks)
    for receiver in (near, far, sender):
        got = await receiver.wait_for("chatMessage", lambda ms: len(ms) >= count)
        seqs = [m["seq"] for m in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == count
        assert [m["message"] for m in got] == [f"n={i}" for i in range(count)]
    with MongoClient(services.mongo_url) as mongo:
        stored = list(mongo[services.mongo_db][MESSAGES].find({"room": room}).sort("seq", 1))
    assert [d["message"] for d in stored] == [f"n={i}" for i in range(count)]


async def test_presence_is_cluster_wide(workers, client, room):
    w1, w2 = workers(2)
    ann = await client(w1.url)
    bob = await client(w2.url)
    await ann.join(room, "ann")
    ack = await bob.join(room, "bob")
    assert ack["online"] == ["ann", "bob"]
    for w in (w1, w2):
        _, body = http_get(w.url + "/api/rooms")
        rooms = {r["name"]: r for r in json.loads(body)["rooms"]}
        assert rooms[room]["online"] == 2
    await ann.wait_for(
        "presence", lambda ps: any(p["room"] == room and p["users"] == ["ann", "bob"] for p in ps)
    )
    await bob.call("leaveRoom", {"room": room})
    await ann.wait_for("presence", lambda ps: ps[-1]["users"] == ["ann"])


async def test_front_door_spreads_one_ip_evenly_with_polling_first_clients(
    workers, start_front_door, client, room
):
    ws = workers(2)
    door = start_front_door(ws)
    clients = [await client(door.url) for _ in range(20)]  # default: polling, then upgrade
    for i, c in enumerate(clients):
        await c.join(room, f"user{i}")
    assert {c.sio.transport() for c in clients} == {"websocket"}
    per_worker = [connected_clients(w.url) for w in ws]
    assert per_worker == [10.0, 10.0]
    ack = await clients[0].send(room, "hello everyone")
    for c in clients:
        await c.wait_for("chatMessage", lambda ms: any(m["id"] == ack["id"] for m in ms))


async def test_polling_only_clients_keep_their_session_through_the_front_door(
    workers, start_front_door, client, room
):
    ws = workers(2)
    door = start_front_door(ws)
    clients = [await client(door.url, transports=["polling"]) for _ in range(6)]
    assert {worker_of(c) for c in clients} == {ws[0].worker_id, ws[1].worker_id}
    for i, c in enumerate(clients):
        await c.join(room, f"poller{i}")
    for round_no in range(5):
        acks = [await c.send(room, f"round {round_no}") for c in clients]
        assert all(a["ok"] for a in acks), acks
    for c in clients:
        await c.wait_for("chatMessage", lambda ms: len(ms) == 30)
        assert c.sio.connected
    for w in ws:
        assert "Session ID unknown" not in w.log()


async def test_rest_and_static_reach_a_live_worker_when_one_is_down(workers, start_front_door):
    ws = workers(2)
    door = start_front_door(ws)
    ws[0].stop()
    for _ in range(6):
        assert http_get(door.url + "/api/rooms")[0] == 200
        assert http_get(door.url + "/")[0] == 200
    ws[0].start()


async def test_two_clusters_sharing_redis_and_mongo_exchange_messages_and_presence(
    start_worker, start_front_door, client, room
):
    # Two "machines": each has its own workers 1..2 and its own front door.
    east = start_front_door([start_worker(worker_id=1), start_worker(worker_id=2)])
    west = start_front_door([start_worker(worker_id=1), start_worker(worker_id=2)])
    ann = await client(east.url)
    bob = await client(west.url)
    await ann.join(room, "ann")
    ack = await bob.join(room, "bob")
    assert ack["online"] == ["ann", "bob"]
    sent = await ann.send(room, "across machines")
    await bob.wait_for("chatMessage", lambda ms: any(m["id"] == sent["id"] for m in ms))
    reply = await bob.send(room, "received")
    await ann.wait_for("chatMessage", lambda ms: any(m["id"] == reply["id"] for m in ms))


async def test_sigkilled_workers_clients_reconnect_and_recover_every_message(
    workers, start_front_door, room
):
    """A worker dies without warning; its client reconnects through the front door to the
    other worker, re-joins with `since` and gets every message sent meanwhile, once."""
    ws = workers(2, CHATD_LIMITS_RATE_BURST="1000")
    door = start_front_door(ws)
    seen: dict[int, dict] = {}
    last_seq = 0

    ann = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)

    async def on_message(m):
        nonlocal last_seq
        assert m["seq"] not in seen, f"duplicate {m['seq']}"
        seen[m["seq"]] = m
        last_seq = max(last_seq, m["seq"])

    joined = asyncio.Event()

    async def on_history(ms):
        for m in ms:
            if m["seq"] not in seen:
                await on_message(m)
        joined.set()

    async def on_connect():
        await ann.emit("joinRoom", {"username": "ann", "room": room, "since": last_seq})

    ann.on("chatMessage", on_message)
    ann.on("chat-history", on_history)
    ann.on("connect", on_connect)
    await ann.connect(door.url, wait_timeout=10)
    await asyncio.wait_for(joined.wait(), 10)
    victim = next(w for w in ws if w.worker_id == int(ann.eio.sid[1 : ann.eio.sid.index(".")]))
    survivor = next(w for w in ws if w is not victim)

    ghost = socketio.AsyncClient(reconnection=False)
    await ghost.connect(victim.url, wait_timeout=10)
    assert (await ghost.call("joinRoom", {"username": "ghost", "room": room}))["ok"]
    bob = socketio.AsyncClient(reconnection=False)
    await bob.connect(survivor.url, wait_timeout=10)
    assert (await bob.call("joinRoom", {"username": "bob", "room": room}))["ok"]
    acked = []
    for i in range(5):
        acked.append(await bob.call("chatMessage", {"room": room, "message": f"before {i}"}))
    victim.signal(9)
    victim.proc.wait(5)
    for i in range(20):
        ack = await bob.call("chatMessage", {"room": room, "message": f"during {i}"})
        assert ack["ok"]
        acked.append(ack)
        await asyncio.sleep(0.05)
    want = {a["seq"] for a in acked}
    for _ in range(200):
        if want <= set(seen):
            break
        await asyncio.sleep(0.05)
    assert want <= set(seen), sorted(want - set(seen))
    assert ann.connected and ann.eio.sid.startswith(f"w{survivor.worker_id}.")
    # The dead worker cannot say goodbye; its users fade out of presence within 30 s.
    killed = time.monotonic()
    while time.monotonic() - killed < 30:  # polled over REST: every join counts
        _, body = await asyncio.to_thread(http_get, survivor.url + "/api/rooms")
        listed = {r["name"]: r["online"] for r in json.loads(body)["rooms"]}
        if listed.get(room) == 2:
            break
        await asyncio.sleep(0.5)
    online = (await bob.call("joinRoom", {"username": "bob", "room": room}))["online"]
    assert online == ["ann", "bob"], online
    await ann.disconnect()
    await bob.disconnect()
    victim.start()


async def test_sigterm_drains_and_clients_reconnect_by_themselves(workers, start_front_door, room):
    ws = workers(2, CHATD_LIMITS_RATE_BURST="1000")
    door = start_front_door(ws)
    reasons: list[str] = []
    c = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
    c.on("disconnect", lambda reason=None: reasons.append(str(reason)))
    await c.connect(door.url, wait_timeout=10)
    assert (await c.call("joinRoom", {"username": "dora", "room": room}))["ok"]
    first = c.eio.sid
    victim = next(w for w in ws if first.startswith(f"w{w.worker_id}."))
    sends = [
        asyncio.ensure_future(c.call("chatMessage", {"room": room, "message": f"m{i}"}))
        for i in range(20)
    ]
    await asyncio.sleep(0.01)
    victim.signal(15)
    code = victim.proc.wait(8)
    assert code == 0, victim.log()
    results = await asyncio.gather(*sends, return_exceptions=True)
    for _ in range(100):
        if c.connected and c.eio.sid != first:
            break
        await asyncio.sleep(0.1)
    assert c.connected and c.eio.sid != first
    assert reasons and "server disconnect" not in reasons[0].lower()
    acked = [r for r in results if isinstance(r, dict) and r.get("ok")]
    rejoin = await c.call("joinRoom", {"username": "dora", "room": room, "since": 0})
    assert rejoin["ok"] and rejoin["last_seq"] >= len(acked)
    await c.disconnect()
    victim.start()
