"""A fleet: three hosts (network namespaces, each running scripts/start: supervisord, workers,
front door) behind one nginx balancer, sharing one Redis Cluster and one FerretDB. Stock
Socket.IO clients spread over the hosts chat with messages and presence across them; one host
is stopped while they send, its clients reconnect through the balancer to the others, re-join
with `since`, and no acked message is missing anywhere.

See docs/deploy.md, "What was tested". Needs root and iproute2 (`ip`)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from benchlib import hosts as fleet

from tests.conftest import IN_CI, ROOT, free_port
from tests.integration.cluster import redis_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.redis_cluster]

HOSTS = 3
WORKERS_PER_HOST = 2
# One source address per client: the balancer keeps an address on one host. Of the bridge's
# client addresses the test takes, for each host, the first ones the balancer sends there.
CLIENTS_PER_HOST = 3
CLIENT_ADDRESSES = 30
# Its own ports, so that it can run beside test_redis_cluster.py (7101-7106).
CLUSTER_PORT = int(os.environ.get("CHATD_TEST_FLEET_CLUSTER_PORT", "7201"))
PRESENCE_TTL_SECS = 3
# Generous for a loaded 2-core machine, and bounded: a host stop takes up to the front door's
# stopwaitsecs (10 s) plus the workers' drain; a reconnect about a second.
CONVERGE_SECS = 60.0


@dataclass
class Fleet:
    net: fleet.Network
    hosts: list[fleet.Host]
    balancer: fleet.Balancer

    def host_of(self, front: str) -> fleet.Host:
        return next(h for h in self.hosts if h.front == front)

    def clients_per_host(self, without: fleet.Host | None = None) -> dict[int, int]:
        """Sum of chatd_connected_clients over each host's workers (read inside its
        namespace, where /metrics answers loopback)."""
        counts = {}
        for h in self.hosts:
            if h is without:
                continue
            total = 0
            for port in range(3001, 3001 + WORKERS_PER_HOST):
                out = subprocess.run(
                    ["ip", "netns", "exec", h.netns, "curl", "-fsS",
                     f"http://127.0.0.1:{port}/metrics"],
                    capture_output=True, text=True, timeout=10, check=True,
                )  # fmt: skip
                total += next(
                    int(float(line.split()[-1]))
                    for line in out.stdout.splitlines()
                    if line.startswith("chatd_connected_clients ")
                )
            counts[h.n] = total
        return counts


def needs(condition: bool, message: str) -> None:
    if not condition:
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def namespaces_work() -> bool:
    probe = f"chatd-probe-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return made.returncode == 0


@pytest.fixture
def the_fleet(tmp_path: Path) -> Iterator[Fleet]:
    needs(os.geteuid() == 0 and shutil.which("ip") is not None, "needs root and iproute2")
    needs(namespaces_work(), "network namespaces are not available (`ip netns add` failed)")
    needs(os.path.exists("/usr/sbin/nginx"), "nginx (/usr/sbin/nginx) is needed")
    needs((ROOT / "var/bin/ferretdb").exists(), "var/bin/ferretdb is needed (scripts/setup)")
    needs(shutil.which("curl") is not None, "curl is needed (scripts/start)")
    run = uuid.uuid4().hex[:10]
    password = secrets.token_hex(16)
    with contextlib.ExitStack() as stack:
        net = stack.enter_context(fleet.network(CLIENT_ADDRESSES))
        cluster = stack.enter_context(
            redis_cluster(tmp_path / "redis", CLUSTER_PORT, net.address, password)
        )
        mongo_url = stack.enter_context(fleet.ferretdb(net.address, free_port(), tmp_path))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
        env.update(
            CHATD_WORKERS=str(WORKERS_PER_HOST),
            CHATD_FRONT_LISTEN=f"0.0.0.0:{fleet.FRONT_PORT}",
            CHATD_REDIS_URL=cluster.url,
            CHATD_REDIS_CLUSTER="true",
            CHATD_REDIS_CLUSTER_NODES=cluster.other_nodes,
            CHATD_REDIS_PREFIX=f"chatdfleet{run}",
            CHATD_REDIS_PRESENCE_TTL_SECS=str(PRESENCE_TTL_SECS),
            CHATD_MONGO_URL=mongo_url,
            CHATD_MONGO_DB=f"chatd_fleet_{run}",
            # Every host must accept the identity tokens every other host issued.
            CHATD_AUTH_TOKEN_SECRET=secrets.token_hex(32),
            # Behind the balancer every client arrives from its address: the per-address cap
            # belongs on the balancer, not on each host's front door.
            CHATD_FRONT_CONN_PER_IP="0",
            CHATD_SERVER_DRAIN_SECS="1",
            CHATD_LIMITS_RATE_BURST="5000",
            CHATD_LIMITS_RATE_PER_MINUTE="100000",
        )
        made = stack.enter_context(fleet.hosts(net, HOSTS, tmp_path, env))
        door = stack.enter_context(
            fleet.balancer(net.address, free_port(), [h.front for h in made], tmp_path)
        )
        yield Fleet(net, made, door)


class Member:
    """A stock python-socketio client from its own source address. On every connect (the
    first and each automatic reconnect) it joins its rooms with `since` = the last seq it
    holds, as a client that keeps its history does; it keeps what it was sent by seq, once.

    A join subscribes before it reads history, so a message sent meanwhile may come live, in
    the history, or both, in either order (docs/guarantees.md, G6): the view is keyed by seq,
    and the live stream is checked on its own."""

    def __init__(self, name: str, source: str, rooms: list[str], reconnect: bool = True) -> None:
        self.name, self.source, self.rooms = name, source, rooms
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(source, 0), force_close=False)
        )
        self.sio = socketio.AsyncClient(
            http_session=self.http,
            reconnection=reconnect,
            reconnection_delay=0.2,
            reconnection_delay_max=1,
        )
        self.seen: dict[str, dict[int, str]] = {r: {} for r in rooms}  # seq -> id
        # Live messages as they came: (connection, seq, sender); senders' names open them.
        self.live: dict[str, list[tuple[int, int, str]]] = {r: [] for r in rooms}
        self.duplicates: list[tuple[str, int]] = []  # live messages that came live twice
        self.presence: dict[str, list[str]] = {}
        self.joins = 0  # join acks, over every connection
        self.connects = 0
        self.sio.on("connect", self._on_connect)
        self.sio.on("chatMessage", self._on_message)
        self.sio.on("chat-history", self._on_history)
        self.sio.on("presence", self._on_presence)

    async def _on_connect(self) -> None:
        self.connects += 1
        for room in self.rooms:
            since = max(self.seen[room], default=0)
            await self.sio.emit(
                "joinRoom",
                {"username": self.name, "room": room, "since": since},
                callback=self._on_join,
            )

    def _on_join(self, ack: Any) -> None:
        if ack.get("ok"):
            self.joins += 1

    async def _on_message(self, m: dict[str, Any]) -> None:
        live = self.live[m["room"]]
        if any(seq == m["seq"] for _, seq, _ in live):
            self.duplicates.append((m["room"], m["seq"]))
        live.append((self.connects, m["seq"], m["message"].split()[0]))
        self.seen[m["room"]][m["seq"]] = m["id"]

    async def _on_history(self, ms: list[dict[str, Any]]) -> None:
        for m in ms:
            self.seen[m["room"]][m["seq"]] = m["id"]

    async def _on_presence(self, p: dict[str, Any]) -> None:
        self.presence[p["room"]] = p["users"]

    async def connect(self, url: str) -> None:
        await self.sio.connect(url, wait_timeout=10)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()
        await self.http.close()


class Talker:
    """Sends to one room with acks and keeps what was acked. A send that finds no connection,
    or whose ack is lost with its host, is retried with the same client_id (sent at most once)."""

    def __init__(self, member: Member, room: str) -> None:
        self.member, self.room = member, room
        self.acked: dict[str, int] = {}  # id -> seq

    async def talk(self, stop: asyncio.Event) -> None:
        sio = self.member.sio
        for i in itertools.count():
            client_id = f"{self.member.name}-{i}-{uuid.uuid4().hex[:6]}"
            while not stop.is_set():
                try:
                    ack = await sio.call(
                        "chatMessage",
                        {"room": self.room, "message": f"{self.member.name} {i}",
                         "client_id": client_id},
                        timeout=5,
                    )  # fmt: skip
                except (TimeoutError, socketio.exceptions.SocketIOError):
                    await asyncio.sleep(0.1)
                    continue
                if ack.get("ok"):
                    self.acked[ack["id"]] = ack["seq"]
                    break
                await asyncio.sleep(0.1)  # not (yet) re-joined after a reconnect
            if stop.is_set():
                return
            await asyncio.sleep(0.1)


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not met in {timeout} s: {what}"
        await asyncio.sleep(0.05)


async def test_clients_spread_over_hosts_chat_and_recover_when_a_host_stops(the_fleet):
    f = the_fleet
    run = uuid.uuid4().hex[:6]
    rooms = [f"lobby-{run}", f"ops-{run}"]
    sources: dict[str, list[str]] = {h.front: [] for h in f.hosts}
    for n in range(1, CLIENT_ADDRESSES + 1):
        source = f.net.client_address(n)
        sources[await asyncio.to_thread(f.balancer.front_of, source)].append(source)
    picked = [a for addresses in sources.values() for a in addresses[:CLIENTS_PER_HOST]]
    members = [Member(f"u{n}", a, rooms) for n, a in enumerate(picked, 1)]
    talkers = [Talker(m, room) for m in members for room in rooms]
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    ghost: Member | None = None
    try:
        await asyncio.gather(*(m.connect(f.balancer.url) for m in members))
        await until(lambda: all(m.joins == len(rooms) for m in members), 20, "every join")

        # The balancer kept each client address on one host, and every host has clients.
        routes: dict[str, set[str]] = {}
        for client, front in f.balancer.routes():
            routes.setdefault(client, set()).add(front)
        assert all(len(fronts) == 1 for fronts in routes.values()), routes
        on_host = {m.name: f.host_of(next(iter(routes[m.source]))).n for m in members}
        spread = {h.n: [m for m in members if on_host[m.name] == h.n] for h in f.hosts}
        assert all(spread.values()), f"a host got no client: {on_host}"
        assert f.clients_per_host() == {n: len(ms) for n, ms in spread.items()}

        victim = max(f.hosts, key=lambda h: len(spread[h.n]))
        moved = spread[victim.n]
        # A member of the victim's that does not come back: presence must drop it.
        ghost = Member("ghost", moved[0].source, rooms[:1], reconnect=False)
        await ghost.connect(f.balancer.url)
        await until(lambda: ghost.joins == 1, 10, "ghost joined")

        # Presence: one list, on every host, of members on all hosts.
        everyone = sorted([m.name for m in members] + ["ghost"])
        await until(
            lambda: all(m.presence.get(rooms[0]) == everyone for m in members),
            20,
            "everyone sees everyone in presence",
        )

        tasks = [asyncio.create_task(t.talk(stop)) for t in talkers]
        await until(lambda: all(len(t.acked) >= 3 for t in talkers), 30, "3 acks each")

        first_connects = {m.name: m.connects for m in moved}
        await asyncio.to_thread(victim.stop)
        logged_at_stop = len(f.balancer.routes())
        assert not victim.pids(), "supervisord exited and left processes behind"
        # Its clients came back through the balancer, to live hosts, and re-joined.
        await until(
            lambda: all(m.connects > first_connects[m.name] and m.sio.connected for m in moved),
            CONVERGE_SECS,
            "the stopped host's clients reconnected",
        )
        await until(
            lambda: all(m.joins >= 2 * len(rooms) for m in moved),
            CONVERGE_SECS,
            "the stopped host's clients re-joined",
        )
        # And they keep sending, like everyone else, on the remaining hosts.
        counts = [len(t.acked) for t in talkers]
        await until(
            lambda: all(len(t.acked) >= n + 3 for t, n in zip(talkers, counts, strict=True)),
            CONVERGE_SECS,
            "3 more acks each after the stop",
        )
        stop.set()
        await asyncio.gather(*tasks)
        await check_views(f, members, talkers, rooms, victim, moved, logged_at_stop)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for m in [*members, *([ghost] if ghost else [])]:
            await m.close()


async def check_views(
    f: Fleet,
    members: list[Member],
    talkers: list[Talker],
    rooms: list[str],
    victim: fleet.Host,
    moved: list[Member],
    logged_at_stop: int,
) -> None:
    # The stopped host's clients reached live hosts through the balancer (before the stop
    # they had reached only theirs), and nothing of theirs went to it once it was down.
    live_fronts = {h.front for h in f.hosts if h is not victim}
    routes = f.balancer.routes()
    for m in moved:
        fronts = [front for client, front in routes if client == m.source]
        assert set(fronts) & live_fronts, (m.name, fronts)
        later = {front for client, front in routes[logged_at_stop:] if client == m.source}
        assert later <= live_fronts, (m.name, later)

    for room in rooms:
        acked = {i: s for t in talkers if t.room == room for i, s in t.acked.items()}
        for m in members:
            await until(
                lambda m=m, room=room, acked=acked: acked.keys() <= set(m.seen[room].values()),
                CONVERGE_SECS,
                f"{m.name} holds every acked message of {room}",
            )
            seen = m.seen[room]
            assert all(seen[s] == i for i, s in acked.items()), "an id with another seq"
            assert len(set(seen.values())) == len(seen), "a message under two seqs"
            assert not m.duplicates, (m.name, m.duplicates[:5])
            # On one connection, each sender's messages come in seq order (README, "Order");
            # across senders on different hosts arrival order may differ from seq order.
            streams: dict[tuple[int, str], list[int]] = {}
            for conn, seq, sender in m.live[room]:
                streams.setdefault((conn, sender), []).append(seq)
            for key, seqs in streams.items():
                assert seqs == sorted(seqs), (m.name, room, key, seqs)

    # The stopped host's sessions left presence (the ghost did not come back).
    alive = sorted(m.name for m in members)
    await until(
        lambda: all(m.presence.get(rooms[0]) == alive for m in members),
        PRESENCE_TTL_SECS + 10,
        "presence without the stopped host's sessions",
    )
    assert sum(f.clients_per_host(without=victim).values()) == len(members)
