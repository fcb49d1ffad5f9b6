"""A WebSocket client that stops reading is cut off once it lags limits.outbuf_bytes behind,
instead of growing the worker until the ping timeout (docs/guarantees.md L9)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import time

import pytest

from tests.conftest import http_get

pytestmark = pytest.mark.cluster


def ws_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(sock: socket.socket) -> str:
    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    _first, second = exact(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(exact(2), "big")
    elif length == 127:
        length = int.from_bytes(exact(8), "big")
    return exact(length).decode()


def open_stalled_client(port: int, room: str) -> socket.socket:
    """A raw Engine.IO/Socket.IO WebSocket client that joins `room`, then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    assert read_frame(sock).startswith("0{")
    sock.sendall(ws_frame("40"))
    assert read_frame(sock).startswith("40")
    join = json.dumps(["joinRoom", {"username": "stalled", "room": room}])
    sock.sendall(ws_frame("420" + join))
    while not read_frame(sock).startswith("430"):
        pass
    return sock


def gauge(url: str, name: str) -> float:
    _, body = http_get(url + "/metrics")
    match = re.search(rf"^{name} (\S+)$", body.decode(), re.M)
    assert match
    return float(match.group(1))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line for line in fh if line.startswith("VmRSS")).split()[1])


async def test_client_that_stops_reading_is_disconnected_and_memory_stays_bounded(
    start_worker, client, room
):
    # Long messages of 4-byte characters (40 KB each in UTF-8) make the backlog pass the
    # kernel's socket buffers (up to 4 MB) and the 1 MB cap within a hundred messages.
    worker = start_worker(
        CHATD_LIMITS_RATE_BURST="5000",
        CHATD_LIMITS_RATE_PER_MINUTE="600000",
        CHATD_LIMITS_MESSAGE_CHARS="40000",
    )
    stalled = open_stalled_client(worker.port, room)
    flooders = [await client(worker.url) for _ in range(4)]
    for i, f in enumerate(flooders):
        await f.join(room, f"flood{i}")
    assert gauge(worker.url, "chatd_connected_clients") == 5
    rss_before = rss_kb(worker.proc.pid)
    text = "\U0001f600" * 10_000

    async def flood(f, n: int) -> None:
        for k in range(n):
            ack = await f.send(room, f"{k} {text}")
            assert ack["ok"], ack

    started = time.monotonic()
    cut_after = None
    # 4 x 75 messages of ~40 KB to each member: ~12 MB towards the stalled client.
    tasks = [asyncio.ensure_future(flood(f, 75)) for f in flooders]
    while not all(t.done() for t in tasks):
        if cut_after is None and gauge(worker.url, "chatd_connected_clients") == 4:
            cut_after = time.monotonic() - started
        await asyncio.sleep(0.1)
    await asyncio.gather(*tasks)
    stalled.close()
    assert cut_after is not None, "the stalled client was never disconnected"
    assert "slow consumer" in worker.log()
    growth_mb = (rss_kb(worker.proc.pid) - rss_before) / 1024
    assert growth_mb < 30, growth_mb
    # Everyone else got everything.
    for f in flooders:
        await f.wait_for("chatMessage", lambda ms: len(ms) == 300, timeout=30)
    assert "never retrieved" not in worker.log()
