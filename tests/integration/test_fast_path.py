"""The WebSocket transport without a queue or writer task per connection (chatd/engine.py):
broadcasts framed once and written to each member, pings on timers, upgrades from polling
that keep the order of what was queued, and heartbeats that keep healthy sockets and end
silent ones."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from tests.integration.raw import Polling, open_raw_websocket
from tests.integration.test_hostile import metric, timed_out

pytestmark = pytest.mark.cluster


def event(name: str, data: Any, ack: int | None = None) -> str:
    return "42" + ("" if ack is None else str(ack)) + json.dumps([name, data])


async def frames_until(ws: aiohttp.ClientWebSocketResponse, done: Any, timeout: float = 10):
    """Text frames received until `done(frames)` holds, answering pings."""
    frames: list[str] = []
    deadline = time.monotonic() + timeout
    while not done(frames):
        left = deadline - time.monotonic()
        assert left > 0, f"condition not met; got {frames[-5:]}"
        text = await ws.receive_str(timeout=left)
        if text == "2":
            await ws.send_str("3")
            continue
        frames.append(text)
    return frames


async def polled_until_ack(poller: Polling, ack: int) -> list[str]:
    """Packets long-polled until the one answering ack `ack`."""
    polled: list[str] = []
    while not any(p.startswith(f"43{ack}") for p in polled):
        polled += await poller.get()
    return polled


def chat_seqs(packets: list[str]) -> list[int]:
    seqs = []
    for p in packets:
        if p.startswith('42["chatMessage"'):
            seqs.append(json.loads(p[2:])[1]["seq"])
    return seqs


async def test_broadcast_reaches_websocket_and_polling_members_in_order_after_acks(
    fast_server, client, room
):
    sender = await client(fast_server.url, transports=["websocket"])
    await sender.join(room, "ann")
    async with aiohttp.ClientSession() as http:
        ws = await open_raw_websocket(http, fast_server)
        await ws.send_str(event("joinRoom", {"room": room, "username": "bob"}, 1))
        await frames_until(ws, lambda fs: any(f.startswith("431") for f in fs))
        poller = Polling(http, fast_server)
        await poller.open()
        await poller.post("40")
        await poller.get()
        await poller.post(event("joinRoom", {"room": room, "username": "cy"}, 1))
        await polled_until_ack(poller, 1)
        for i in range(50):
            assert (await sender.send(room, f"m{i}"))["ok"]
        got = chat_seqs(await frames_until(ws, lambda fs: len(chat_seqs(fs)) >= 50))
        assert got == list(range(1, 51))
        polled_seqs: list[int] = []
        while len(polled_seqs) < 50:
            polled_seqs += chat_seqs(await poller.get())
        assert polled_seqs == list(range(1, 51))
        await ws.close()


async def test_upgrade_from_polling_delivers_what_was_queued_first_and_in_order(
    fast_server, client, room
):
    sender = await client(fast_server.url, transports=["websocket"])
    await sender.join(room, "ann")
    async with aiohttp.ClientSession() as http:
        poller = Polling(http, fast_server)
        await poller.open()
        await poller.post("40")
        await poller.get()
        await poller.post(event("joinRoom", {"room": room, "username": "bob"}, 1))
        await polled_until_ack(poller, 1)
        for i in range(10):  # queued for the next poll, which never comes
            assert (await sender.send(room, f"before {i}"))["ok"]
        ws = await http.ws_connect(
            fast_server.url.replace("http", "ws")
            + f"/socket.io/?EIO=4&transport=websocket&sid={poller.sid}"
        )
        await ws.send_str("2probe")
        assert await ws.receive_str(timeout=5) == "3probe"
        for i in range(10):  # while the upgrade is half done
            assert (await sender.send(room, f"during {i}"))["ok"]
        await ws.send_str("5")
        for i in range(10):
            assert (await sender.send(room, f"after {i}"))["ok"]
        got = chat_seqs(await frames_until(ws, lambda fs: len(chat_seqs(fs)) >= 30))
        assert got == list(range(1, 31))
        # The polling transport is finished with: a GET now is refused.
        async with http.get(f"{poller.base}&sid={poller.sid}") as resp:
            assert resp.status == 400
        # And the WebSocket carries the session both ways.
        await ws.send_str(event("chatMessage", {"room": room, "message": "over ws"}, 2))
        acks = await frames_until(ws, lambda fs: any(f.startswith("432") for f in fs))
        assert json.loads(next(f for f in acks if f.startswith("432"))[3:])[0]["ok"] is True
        await ws.close()


async def test_a_failed_upgrade_leaves_the_polling_session_working(fast_server, room):
    async with aiohttp.ClientSession() as http:
        poller = Polling(http, fast_server)
        await poller.open()
        await poller.post("40")
        await poller.get()
        ws = await http.ws_connect(
            fast_server.url.replace("http", "ws")
            + f"/socket.io/?EIO=4&transport=websocket&sid={poller.sid}"
        )
        await ws.send_str("4nonsense")  # not the probe
        closed = await ws.receive(timeout=5)
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await poller.post(event("joinRoom", {"room": room, "username": "bob"}, 1))
        polled = await polled_until_ack(poller, 1)
        ack = json.loads(next(p for p in polled if p.startswith("431"))[3:])[0]
        assert ack["ok"] is True


@pytest.fixture(scope="module")
def quick_heartbeat(start_worker):
    return start_worker(CHATD_LIMITS_PING_INTERVAL_SECS="1", CHATD_LIMITS_PING_TIMEOUT_SECS="1")


async def test_websocket_that_answers_pings_outlives_many_heartbeats(quick_heartbeat):
    async with aiohttp.ClientSession() as http:
        ws = await open_raw_websocket(http, quick_heartbeat)
        pings = 0
        started = time.monotonic()
        while pings < 6:  # six heartbeats: three times interval + timeout
            text = await ws.receive_str(timeout=5)
            if text == "2":
                pings += 1
                await ws.send_str("3")
        assert time.monotonic() - started >= 5
        assert metric(quick_heartbeat, "chatd_connected_clients") == 1
        await ws.send_str(event("noSuchEvent", {}, 1))  # answered: unknown_event
        replies = await frames_until(ws, lambda fs: any(f.startswith("431") for f in fs))
        assert replies
        await ws.close()


async def test_websocket_that_stops_answering_pings_is_closed_and_uncounted(quick_heartbeat):
    before = timed_out(quick_heartbeat)
    async with aiohttp.ClientSession() as http:
        ws = await open_raw_websocket(http, quick_heartbeat)
        assert metric(quick_heartbeat, "chatd_connected_clients") == 1
        deadline = time.monotonic() + 10
        while True:  # read, never answer
            left = deadline - time.monotonic()
            assert left > 0, "a silent WebSocket outlived ping interval + timeout"
            msg = await ws.receive(timeout=left)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
        while metric(quick_heartbeat, "chatd_connected_clients") != 0:
            assert time.monotonic() < deadline + 5
            await asyncio.sleep(0.05)
        assert timed_out(quick_heartbeat) == before + 1


async def test_a_peer_that_goes_silent_without_closing_is_freed_with_its_presence(
    quick_heartbeat, client, room
):
    """A peer that vanishes without a FIN looks to the server like one that sends nothing
    at all: no PONG, no close. It is dropped within ping interval + timeout, and the room
    is told it left."""
    watcher = await client(quick_heartbeat.url, transports=["websocket"])
    await watcher.join(room, "watcher")
    before = timed_out(quick_heartbeat)
    async with aiohttp.ClientSession() as http:
        ghost = await open_raw_websocket(http, quick_heartbeat)
        await ghost.send_str(event("joinRoom", {"room": room, "username": "ghost"}, 1))
        await watcher.wait_for("presence", lambda ps: any("ghost" in p["users"] for p in ps))
        # From here on the ghost neither reads nor writes; its socket stays open.
        started = time.monotonic()
        await watcher.wait_for(
            "notification",
            lambda ns: any(n["type"] == "leave" and n["user"] == "ghost" for n in ns),
            timeout=10,
        )
        assert time.monotonic() - started < 2 + 2 + 2  # interval + timeout, and a sweep
        await watcher.wait_for("presence", lambda ps: "ghost" not in ps[-1]["users"])
        assert metric(quick_heartbeat, "chatd_connected_clients") == 1  # the watcher
        assert timed_out(quick_heartbeat) == before + 1
        await ghost.close()
