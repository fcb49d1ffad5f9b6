"""chatd on a Redis Cluster: sharded pub/sub between workers, presence, typing and seqs on
hash-tagged keys, and a master killed while clients chat (the replica takes over, the workers
follow it without a restart, and every acked message reaches every client once, in order)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Worker, http_get
from tests.integration.cluster import RedisCluster, redis_cluster
from tests.integration.test_chat import send_many
from tests.integration.test_hostile import metric

pytestmark = [pytest.mark.cluster, pytest.mark.redis_cluster]

# Generous for a loaded 2-core machine, and bounded: a failover takes about 2 s here
# (NODE_TIMEOUT_MS), gap repair waits for the store up to repair.UNSURE_WAIT_SECS.
CONVERGE_SECS = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as made:
        yield made


def cluster_env(cluster: RedisCluster) -> dict[str, str]:
    return {
        "CHATD_REDIS_URL": cluster.url,
        "CHATD_REDIS_CLUSTER": "true",
        "CHATD_REDIS_CLUSTER_NODES": cluster.other_nodes,
        "CHATD_LIMITS_RATE_BURST": "5000",
        "CHATD_LIMITS_RATE_PER_MINUTE": "100000",
    }


@pytest.fixture(scope="module")
def pair(workers: Callable[..., list[Worker]], cluster: RedisCluster) -> Iterator[list[Worker]]:
    made = workers(2, **cluster_env(cluster))
    yield made
    for w in made:  # before the cluster stops
        w.stop()


def channel(services: Any, room: str) -> str:
    return f"{services.redis_prefix}:socketio:room:{room}"


def rooms_on_each_master(cluster: RedisCluster, services: Any, base: str) -> list[str]:
    """One room per master: rooms whose channels hash to three different masters."""
    found: dict[int, str] = {}
    for i in itertools.count():
        name = f"{base}-{i}"
        found.setdefault(cluster.owner(channel(services, name)).port, name)
        if len(found) == 3:
            return list(found.values())
    raise AssertionError("unreachable")


def shard_subscribers(cluster: RedisCluster, services: Any, room: str) -> int:
    name = channel(services, room)
    with cluster.owner(name).client() as r:
        reply = r.execute_command("PUBSUB", "SHARDNUMSUB", name)
    return int(reply[1])


async def test_clients_on_two_workers_chat_across_masters_with_presence_and_typing(
    pair, client, room, cluster, services
):
    w1, w2 = pair
    rooms = rooms_on_each_master(cluster, services, room)
    ann = await client(w1.url, transports=["websocket"])
    bob = await client(w2.url, transports=["websocket"])
    for name in rooms:
        await ann.join(name, "ann")
        await bob.join(name, "bob")
        assert shard_subscribers(cluster, services, name) == 2
    for name in rooms:
        mine = await send_many(ann, name, [f"{name} a{i}" for i in range(5)])
        theirs = await send_many(bob, name, [f"{name} b{i}" for i in range(5)])
        assert [a["seq"] for a in mine + theirs] == list(range(1, 11))
    for c in (ann, bob):
        for name in rooms:
            got = await c.wait_for(
                "chatMessage", lambda ms, n=name: len([m for m in ms if m["room"] == n]) == 10
            )
            seqs = [m["seq"] for m in got if m["room"] == name]
            assert seqs == list(range(1, 11)), (name, seqs)
    # Presence: one online list with both, on both workers.
    for c in (ann, bob):
        await c.wait_for(
            "presence",
            lambda ps: any(p["room"] == rooms[0] and p["users"] == ["ann", "bob"] for p in ps),
        )
    ack = await ann.call("typing", {"room": rooms[1], "typing": True})
    assert ack["ok"], ack
    await bob.wait_for("typing", lambda ts: any(t["room"] == rooms[1] for t in ts))
    # A history read served from the cluster (the hot tail on FerretDB).
    carl = await client(w2.url, transports=["websocket"])
    await carl.join(rooms[2], "carl")
    history = (await carl.wait_for("chat-history", bool))[-1]
    assert [m["seq"] for m in history] == list(range(1, 11))


async def test_each_worker_receives_only_its_rooms_traffic(pair, client, room, cluster, services):
    w1, w2 = pair
    only1, only2 = rooms_on_each_master(cluster, services, room + "-x")[:2]
    ann = await client(w1.url, transports=["websocket"])
    bob = await client(w2.url, transports=["websocket"])
    await ann.join(only1, "ann")
    await bob.join(only2, "bob")
    # Each room's channel has one subscriber on its master: the worker with its member.
    assert shard_subscribers(cluster, services, only1) == 1
    assert shard_subscribers(cluster, services, only2) == 1
    for sender, their_room, listener in ((ann, only1, w2), (bob, only2, w1)):
        before = metric(listener, "chatd_bus_received_messages_total")
        await send_many(sender, their_room, [f"x{i}" for i in range(40)])
        await sender.wait_for(
            "chatMessage", lambda ms, r=their_room: len([m for m in ms if m["room"] == r]) == 40
        )
        # The other worker heard none of the 40 (only what other tests' rooms still bring).
        assert metric(listener, "chatd_bus_received_messages_total") - before < 40


class Talker:
    """A client that sends with acks and keeps what was acked; an ack lost to the failover
    is retried with the same client_id."""

    def __init__(self, c: Any, name: str, room: str) -> None:
        self.c, self.name, self.room = c, name, room
        self.acked: dict[str, int] = {}  # id -> seq
        self.refused = 0

    async def talk(self, stop: asyncio.Event) -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            client_id = f"{self.name}-{i}-{uuid.uuid4().hex[:6]}"
            while not stop.is_set():
                try:
                    ack = await self.c.call(
                        "chatMessage",
                        {"room": self.room, "message": f"{self.name} {i}", "client_id": client_id},
                        timeout=10,
                    )
                except TimeoutError:
                    continue
                if ack.get("ok"):
                    self.acked[ack["id"]] = ack["seq"]
                    break
                self.refused += 1
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.05)


def live_view(c: Any, room: str) -> list[tuple[int, str]]:
    return [(m["seq"], m["id"]) for m in c.messages(room)]


async def test_a_killed_master_is_replaced_and_no_acked_message_is_missing(
    pair, client, room, cluster, services
):
    w1, w2 = pair
    pids = [w.proc.pid for w in (w1, w2)]
    busy, calm, _ = rooms_on_each_master(cluster, services, room + "-f")
    clients = []
    for i, w in enumerate((w1, w2, w1, w2)):
        c = await client(w.url, transports=["websocket"])
        await c.join(busy, f"u{i}")
        await c.join(calm, f"u{i}")
        clients.append(c)
    talkers = [Talker(c, f"u{i}", busy) for i, c in enumerate(clients)]
    talkers += [Talker(clients[0], "calm0", calm), Talker(clients[1], "calm1", calm)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(t.talk(stop)) for t in talkers]
    try:
        await until(lambda: all(len(t.acked) >= 5 for t in talkers), 30)
        victim = cluster.owner(channel(services, busy))
        with victim.client() as r:
            victim_id = r.execute_command("CLUSTER", "MYID").decode()
        replicas = cluster.replicas_of(victim_id)
        assert replicas
        dead_id = await asyncio.to_thread(cluster.kill, victim)
        promoted = await asyncio.to_thread(cluster.wait_promoted, dead_id, replicas)
        assert cluster.owner(channel(services, busy)) == promoted
        # Clients keep sending on the new master.
        counts = [len(t.acked) for t in talkers]
        await until(
            lambda: all(len(t.acked) >= n + 10 for t, n in zip(talkers, counts, strict=True)),
            CONVERGE_SECS,
        )
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    for r, group in ((busy, talkers[:4]), (calm, talkers[4:])):
        acked = {i: s for t in group for i, s in t.acked.items()}
        for c in clients:
            await until(
                lambda c=c, r=r, acked=acked: acked.keys() <= {i for _, i in live_view(c, r)},
                CONVERGE_SECS,
            )
            view = live_view(c, r)
            # Exactly once, in seq order, and each id with the seq it was acked with.
            assert len({i for _, i in view}) == len(view), "a message was delivered twice"
            assert [s for s, _ in view] == sorted(s for s, _ in view), "out of order"
            seq_of = dict((i, s) for s, i in view)
            assert all(seq_of[i] == s for i, s in acked.items())
    # The workers followed the new topology by themselves.
    assert [w.proc.pid for w in (w1, w2)] == pids
    assert all(w.proc.poll() is None for w in (w1, w2))
    for w in (w1, w2):
        assert http_get(w.url + "/readyz")[0] == 200
        assert metric(w, "chatd_bus_listener_up") == 1


async def until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.05)
