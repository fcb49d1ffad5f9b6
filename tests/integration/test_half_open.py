"""A client that vanishes without a FIN or a RST (its network gone, not its process) is freed
within ping interval + ping timeout, with its presence, and counted as timed out.

The client runs in a network namespace of its own, joined to this one by a veth pair; taking
its end of the link down stops every packet both ways, as a pulled cable or a phone leaving
coverage does. Needs root and iproute2 (`ip`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from benchlib.netns import free_subnet, ip

from tests.conftest import IN_CI, ROOT, Services, Worker, free_port
from tests.integration.test_hostile import metric, timed_out

pytestmark = pytest.mark.cluster

PING_INTERVAL_SECS = 1
PING_TIMEOUT_SECS = 1
# Beyond interval + timeout: a PONG deadline is served up to a second late (the wheel's
# slots are whole seconds), and a loaded machine.
MARGIN_SECS = 3

# Run inside the namespace: a stock python-socketio client that joins and then only waits.
VANISHING_CLIENT = """
import asyncio, sys
import socketio

async def main(url, room):
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, transports=["websocket"], wait_timeout=10)
    ack = await sio.call("joinRoom", {"room": room, "username": "ghost"}, timeout=10)
    print("joined" if ack.get("ok") else f"refused {ack}", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@dataclass(frozen=True)
class Link:
    netns: str
    host_address: str  # this namespace's end
    peer_address: str  # the client's end
    peer_device: str

    def cut(self) -> None:
        """No packet leaves or reaches the client from now on."""
        ip("link", "set", "dev", self.peer_device, "down", netns=self.netns)


@pytest.fixture
def link() -> Iterator[Link]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        message = "needs root and iproute2 (`ip`) to give the client a network namespace"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    tag = uuid.uuid4().hex[:6]
    netns, host_dev, peer_dev = f"chatd-{tag}", f"cho{tag}h", f"cho{tag}n"
    net = free_subnet("10.200", 1 + os.getpid() % 200)
    host_address, peer_address = str(net[1]), str(net[2])
    try:
        ip("netns", "add", netns)
        ip("link", "add", host_dev, "type", "veth", "peer", "name", peer_dev)
        ip("link", "set", peer_dev, "netns", netns)
        ip("addr", "add", f"{host_address}/24", "dev", host_dev)
        ip("link", "set", host_dev, "up")
        ip("addr", "add", f"{peer_address}/24", "dev", peer_dev, netns=netns)
        ip("link", "set", peer_dev, "up", netns=netns)
        yield Link(netns, host_address, peer_address, peer_dev)
    finally:
        # Deleting the namespace deletes its end of the pair, and with it the other.
        with contextlib.suppress(subprocess.SubprocessError):
            ip("netns", "del", netns)
        with contextlib.suppress(subprocess.SubprocessError):
            ip("link", "del", host_dev)


@dataclass
class BoundWorker(Worker):
    """A worker listening on one address other than loopback."""

    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture
def worker(link: Link, services: Services, tmp_path: Path) -> Iterator[Worker]:
    env = services.env(
        CHATD_LIMITS_PING_INTERVAL_SECS=str(PING_INTERVAL_SECS),
        CHATD_LIMITS_PING_TIMEOUT_SECS=str(PING_TIMEOUT_SECS),
        # The test reads /metrics from this namespace's end of the link.
        CHATD_SERVER_METRICS_ALLOW=f"{link.host_address}/32",
    )
    w = BoundWorker(
        port=free_port(),
        worker_id=0,
        env=env,
        log_path=tmp_path / "worker.log",
        extra_args=["--host", link.host_address],
        host=link.host_address,
    )
    try:
        yield w.start()
    finally:
        w.stop()


@contextlib.asynccontextmanager
async def vanishing_client(link: Link, url: str, room: str):
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", link.netns, sys.executable, "-c", VANISHING_CLIENT, url, room,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert line.strip() == b"joined", line + await proc.stdout.read()
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_a_client_whose_network_vanishes_is_freed_with_its_presence_and_counted(
    link, worker, client, room
):
    watcher = await client(worker.url, transports=["websocket"])
    await watcher.join(room, "watcher")
    before = timed_out(worker)
    async with vanishing_client(link, worker.url, room):
        await watcher.wait_for("presence", lambda ps: any("ghost" in p["users"] for p in ps))
        assert metric(worker, "chatd_connected_clients") == 2

        link.cut()
        cut_at = time.monotonic()
        await watcher.wait_for(
            "notification",
            lambda ns: any(n["type"] == "leave" and n["user"] == "ghost" for n in ns),
            timeout=PING_INTERVAL_SECS + PING_TIMEOUT_SECS + MARGIN_SECS + 5,
        )
        took = time.monotonic() - cut_at
        assert took < PING_INTERVAL_SECS + PING_TIMEOUT_SECS + MARGIN_SECS, took
        await watcher.wait_for("presence", lambda ps: "ghost" not in ps[-1]["users"])
        assert metric(worker, "chatd_connected_clients") == 1  # the watcher
        assert timed_out(worker) == before + 1
