"""Raw Engine.IO and HTTP exchanges with a worker, below any Socket.IO client library, for
tests that send what no correct client sends."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket

import aiohttp

from tests.conftest import Worker, http_get


def rss_kb(worker: Worker) -> int:
    assert worker.proc is not None
    with open(f"/proc/{worker.proc.pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def assert_ready(worker: Worker) -> None:
    assert worker.proc is not None and worker.proc.poll() is None, "worker died"
    assert http_get(worker.url + "/readyz")[0] == 200


# ---- raw HTTP -------------------------------------------------------------------------------


def raw_exchange(worker: Worker, head: bytes, body: bytes = b"", timeout: float = 5.0) -> bytes:
    """Send a request as raw bytes and read until the server closes or goes quiet. A server
    that refuses the body mid-way may reset the connection: that counts as a refusal."""
    with socket.create_connection(("127.0.0.1", worker.port), timeout=timeout) as sock:
        received = b""
        try:
            sock.sendall(head)
            view = memoryview(body)
            for offset in range(0, len(body), 65536):
                sock.sendall(view[offset : offset + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            sock.settimeout(1.0)
            for _ in range(1000):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        return received


def status_of(response: bytes) -> int | None:
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response.split(b" ", 2)[1])


def handshake_headers(worker: Worker, query: str, **headers: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    host = headers.pop("Host", f"127.0.0.1:{worker.port}")
    lines = [
        f"GET /socket.io/?{query} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def websocket_handshake(worker: Worker, query: str = "EIO=4&transport=websocket", **headers: str):
    """Status line and headers of a raw WebSocket upgrade request."""
    with socket.create_connection(("127.0.0.1", worker.port), timeout=5) as sock:
        sock.sendall(handshake_headers(worker, query, **headers))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields


def polling_open(worker: Worker, **headers: str) -> tuple[int, str]:
    """Open an Engine.IO polling session; return (status, body)."""
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    head = (
        f"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1:{worker.port}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    ).encode()
    response = raw_exchange(worker, head)
    status = status_of(response)
    assert status is not None, response[:200]
    return status, response.split(b"\r\n\r\n", 1)[1].decode(errors="replace")


class Polling:
    """A raw Engine.IO v4 long-polling session over aiohttp (no Socket.IO client library)."""

    def __init__(self, http: aiohttp.ClientSession, worker: Worker) -> None:
        self.http = http
        self.base = worker.url + "/socket.io/?EIO=4&transport=polling"
        self.sid = ""

    async def open(self) -> None:
        async with self.http.get(self.base) as resp:
            assert resp.status == 200
            text = await resp.text()
        assert text.startswith("0")
        self.sid = json.loads(text[1:])["sid"]

    async def post(self, payload: str) -> int:
        async with self.http.post(f"{self.base}&sid={self.sid}", data=payload.encode()) as resp:
            await resp.read()
            return resp.status

    async def get(self) -> list[str]:
        async with self.http.get(f"{self.base}&sid={self.sid}") as resp:
            assert resp.status == 200
            return (await resp.text()).split("\x1e")


async def open_raw_websocket(http: aiohttp.ClientSession, worker: Worker):
    ws = await http.ws_connect(
        worker.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
        max_msg_size=0,
        autoping=True,
    )
    opened = await ws.receive_str(timeout=5)
    assert opened.startswith("0")
    await ws.send_str("40")
    connected = await ws.receive_str(timeout=5)
    assert connected.startswith("40")
    return ws
