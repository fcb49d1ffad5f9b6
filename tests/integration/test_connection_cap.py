"""limits.connections_per_ip caps the connections one client address holds on a worker, keyed
on the real client address (X-Real-IP behind the front door), not on the proxy's."""

from __future__ import annotations

import pytest
import socketio


async def connect(url: str, address: str | None = None) -> socketio.AsyncClient:
    c = socketio.AsyncClient(reconnection=False)
    headers = {"X-Real-IP": address} if address else {}
    await c.connect(url, headers=headers, transports=["websocket"], wait_timeout=10)
    return c


async def test_connections_beyond_the_per_address_cap_are_refused(start_worker):
    worker = start_worker(CHATD_LIMITS_CONNECTIONS_PER_IP="3")
    held = [await connect(worker.url) for _ in range(3)]
    with pytest.raises(socketio.exceptions.ConnectionError):
        await connect(worker.url)
    await held.pop().disconnect()
    held.append(await connect(worker.url))  # a freed slot can be used again
    for c in held:
        await c.disconnect()


async def test_two_addresses_behind_a_trusted_proxy_are_counted_apart(start_worker):
    worker = start_worker(CHATD_LIMITS_CONNECTIONS_PER_IP="2", CHATD_SERVER_TRUST_PROXY="true")
    held = [await connect(worker.url, "10.0.0.1") for _ in range(2)]
    with pytest.raises(socketio.exceptions.ConnectionError):
        await connect(worker.url, "10.0.0.1")
    held += [await connect(worker.url, "10.0.0.2") for _ in range(2)]
    for c in held:
        await c.disconnect()
