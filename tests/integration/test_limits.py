"""Limits at the edge: sizes, rate, oversized frames and POSTs, polling batches, origins,
protocol versions and compression (docs/guarantees.md G8, Limits, L4-L7)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import stored
from tests.integration.raw import (
    Polling,
    assert_ready,
    open_raw_websocket,
    polling_open,
    raw_exchange,
    rss_kb,
    status_of,
    websocket_handshake,
)

MESSAGE_CHARS = 2000  # limits.message_chars in config/chatd.toml
FRAME_BYTES = 1_000_000  # limits.frame_bytes
RATE_BURST = 20  # limits.rate_burst
RATE_PER_SEC = 120 / 60  # limits.rate_per_minute
RSS_GROWTH_MAX_KB = 20 * 1024
SETTLE_SECS = 0.3


# ---- sizes ----------------------------------------------------------------------------------


async def test_message_of_exactly_the_limit_is_accepted_and_one_more_is_too_long(
    server, client, room, mongo
):
    ann = await client(server.url)
    await ann.join(room, "ann")
    at_limit = "é" * MESSAGE_CHARS
    ok = await ann.send(room, at_limit)
    assert ok["ok"], ok
    over = await ann.send(room, "x" * (MESSAGE_CHARS + 1))
    assert over["ok"] is False and over["error"]["code"] == "too_long"
    after = await ann.send(room, "still here")
    assert after["ok"]
    assert [d["message"] for d in stored(mongo, room)] == [
        at_limit,
        "still here",
    ]


@pytest.mark.parametrize(("field", "limit"), [("username", 32), ("room", 64), ("client_id", 64)])
async def test_names_at_their_maximum_are_accepted_and_one_more_is_too_long(
    server, client, room, field, limit
):
    c = await client(server.url)
    base_room = (room + "-" + "r" * 64)[:64] if field == "room" else room
    if field == "client_id":
        await c.join(room, "ann")
        ok = await c.send(room, "x", client_id="c" * limit)
        over = await c.send(room, "x", client_id="c" * (limit + 1))
    else:
        fields = {"username": "ann", "room": base_room}
        fields[field] = (fields[field] + "x" * limit)[:limit]
        ok = await c.call("joinRoom", fields)
        fields[field] = fields[field] + "y"
        over = await c.call("joinRoom", fields)
    assert ok["ok"], ok
    assert over["ok"] is False and over["error"]["code"] == "too_long", over


async def test_frame_under_the_byte_limit_gets_an_ack_and_the_connection_stays(
    server, client, room
):
    ann = await client(server.url, transports=["websocket"])
    await ann.join(room, "ann")
    ack = await ann.send(room, "x" * (FRAME_BYTES - 10_000))
    assert ack["ok"] is False and ack["error"]["code"] == "too_long"
    assert (await ann.send(room, "small"))["ok"]


@pytest.mark.parametrize("megabytes", [1.5, 12])
async def test_oversized_websocket_frame_closes_the_connection_and_worker_stays_ready(
    server, megabytes
):
    async with aiohttp.ClientSession() as http:
        ws = await open_raw_websocket(http, server)
        big = '42["chatMessage",{"message":"' + "x" * int(megabytes * 1_000_000) + '"}]'
        started = time.monotonic()
        # The server may cut the connection while the frame is still being written.
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await ws.send_str(big)
        closing = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        for _ in range(20):
            if ws.closed or (await ws.receive(timeout=5)).type in closing:
                break
        else:
            raise AssertionError("the connection stayed open after an oversized frame")
        assert time.monotonic() - started < 5
        await ws.close()
    await asyncio.to_thread(assert_ready, server)


async def test_deeply_nested_json_frame_does_not_hurt_the_worker(server, client, room):
    async with aiohttp.ClientSession() as http:
        ws = await open_raw_websocket(http, server)
        depth = 100_000
        await ws.send_str('421["chatMessage",' + "[" * depth + "]" * depth + "]")
        with contextlib.suppress(TimeoutError):
            await ws.receive(timeout=0.5)
        await ws.close()
    await asyncio.to_thread(assert_ready, server)
    ann = await client(server.url)
    await ann.join(room, "ann")
    assert (await ann.send(room, "fine"))["ok"]


async def test_deeply_nested_json_frame_disconnects_the_client(server):
    async with aiohttp.ClientSession() as http:
        ws = await open_raw_websocket(http, server)
        depth = 100_000
        await ws.send_str('421["chatMessage",' + "[" * depth + "]" * depth + "]")
        closed = False
        with contextlib.suppress(TimeoutError):
            for _ in range(10):
                msg = await ws.receive(timeout=1.0)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    closed = True
                    break
        await ws.close()
    assert closed


def test_oversized_polling_post_is_refused_and_worker_stays_ready(server):
    status, body = polling_open(server)
    assert status == 200
    sid = json.loads(body[1:])["sid"]
    size = int(1.5 * FRAME_BYTES)
    head = (
        f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    response = raw_exchange(server, head, b"4" + b"x" * (size - 1))
    assert time.monotonic() - started < 5
    # Tornado answers 400 and closes (or resets) before reading the body; never a 200.
    assert status_of(response) in (None, 400, 413), response[:200]
    assert_ready(server)


def test_chunked_polling_post_over_the_limit_is_refused(server):
    status, body = polling_open(server)
    assert status == 200
    sid = json.loads(body[1:])["sid"]
    head = (
        f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"x" * 65536
    body_bytes = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(25)) + b"0\r\n\r\n"
    response = raw_exchange(server, head, body_bytes)
    assert status_of(response) in (None, 400, 413), response[:200]
    assert_ready(server)


def test_rss_stays_flat_after_twenty_5_mb_polling_posts(server):
    baseline = rss_kb(server)
    size = 5_000_000
    payload = b"4" + b"x" * (size - 1)
    for _ in range(20):
        status, body = polling_open(server)
        assert status == 200
        sid = json.loads(body[1:])["sid"]
        head = (
            f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {size}\r\n\r\n"
        ).encode()
        response = raw_exchange(server, head, payload, timeout=5)
        assert status_of(response) in (None, 400, 413)
    assert_ready(server)
    growth = rss_kb(server) - baseline
    assert growth <= RSS_GROWTH_MAX_KB, f"RSS grew by {growth} kB"


# ---- polling batches ------------------------------------------------------------------------


async def test_polling_post_with_thirty_packets_delivers_all_of_them(fast_server, room, mongo):
    async with aiohttp.ClientSession() as http:
        session = Polling(http, fast_server)
        await session.open()
        assert await session.post("40") == 200
        assert (await session.get())[0].startswith("40")
        join = json.dumps(["joinRoom", {"username": "batcher", "room": room}])
        assert await session.post(f"420{join}") == 200
        packets = [
            f"42{n + 1}" + json.dumps(["chatMessage", {"room": room, "message": f"batch {n}"}])
            for n in range(30)
        ]
        assert await session.post("\x1e".join(packets)) == 200
        acks: dict[int, Any] = {}
        # One GET answers with what is queued when it arrives: a packet or a few at a time.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for packet in await session.get():
                if packet.startswith("43"):
                    digits = packet[2:].split("[", 1)[0]
                    acks[int(digits)] = json.loads(packet[2 + len(digits) :])[0]
            if len(acks) == 31:
                break
        assert sorted(acks) == list(range(31)), sorted(acks)
        assert all(a["ok"] for a in acks.values()), acks
    docs = stored(mongo, room)
    assert [d["message"] for d in docs] == [f"batch {n}" for n in range(30)]


# ---- rate limit -----------------------------------------------------------------------------


async def test_flood_from_one_connection_is_rate_limited_and_refused_messages_vanish(
    server, client, room, mongo
):
    ann = await client(server.url)
    bob = await client(server.url)
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(60)]
    started = time.monotonic()
    for n, fut in enumerate(futures):
        await ann.sio.emit(
            "chatMessage", {"room": room, "message": f"flood {n}"}, callback=fut.set_result
        )
    acks = await asyncio.wait_for(asyncio.gather(*futures), 20)
    elapsed = time.monotonic() - started
    accepted = [n for n, a in enumerate(acks) if a["ok"]]
    refused = [a for a in acks if not a["ok"]]
    assert accepted[:RATE_BURST] == list(range(RATE_BURST))
    assert len(accepted) <= RATE_BURST + int(elapsed * RATE_PER_SEC) + 1
    assert len(refused) >= 60 - RATE_BURST - int(elapsed * RATE_PER_SEC) - 1
    assert {a["error"]["code"] for a in refused} == {"rate_limited"}
    kept = [d["message"] for d in stored(mongo, room)]
    assert kept == [f"flood {n}" for n in accepted]
    await bob.wait_for("chatMessage", lambda ms: len(ms) == len(accepted))
    await asyncio.sleep(SETTLE_SECS)
    assert [m["message"] for m in bob.messages(room)] == kept
    # Another connection is limited on its own.
    assert (await bob.send(room, "bob is not limited"))["ok"]


# ---- handshake: origin, protocol version, compression ---------------------------------------


def test_cross_origin_websocket_upgrade_is_refused_with_403(server):
    status, _ = websocket_handshake(server, Origin="http://evil.example")
    assert status == 403


def test_cross_origin_polling_handshake_is_refused_with_403(server):
    status, body = polling_open(server, Origin="http://evil.example")
    assert status == 403
    assert '"sid"' not in body


@pytest.mark.parametrize("origin", [None, "same"])
def test_same_origin_or_no_origin_handshakes_are_accepted(server, origin):
    headers = {} if origin is None else {"Origin": f"http://127.0.0.1:{server.port}"}
    status, _ = websocket_handshake(server, **headers)
    assert status == 101
    status, body = polling_open(server, **headers)
    assert status == 200 and '"sid"' in body


@pytest.mark.parametrize(
    "origin",
    ["http://127.0.0.1:1", "https://evil.example", "http://127.0.0.1.evil.example", "null"],
)
def test_lookalike_origins_are_refused(server, origin):
    assert websocket_handshake(server, Origin=origin)[0] == 403
    assert polling_open(server, Origin=origin)[0] == 403


@pytest.mark.parametrize(
    "query", ["EIO=3&transport=websocket", "EIO=2&transport=websocket", "EIO=x&transport=websocket"]
)
def test_websocket_upgrade_with_another_engineio_version_gets_no_101(server, query):
    status, _ = websocket_handshake(server, query)
    assert status != 101 and 400 <= status < 500


def test_websocket_upgrade_without_an_engineio_version_gets_no_101(server):
    status, _ = websocket_handshake(server, "transport=websocket")
    assert status != 101


def test_websocket_handshake_never_agrees_to_permessage_deflate(server):
    status, fields = websocket_handshake(
        server, Sec_WebSocket_Extensions="permessage-deflate; client_max_window_bits"
    )
    assert status == 101
    assert "deflate" not in fields.get("sec-websocket-extensions", "")
