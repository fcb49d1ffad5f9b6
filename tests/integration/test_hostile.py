"""What a hostile client tries: output it never reads, upgrades Engine.IO would refuse, the
server's own event names, joins that replay megabytes, malformed packets, cross-site writes,
look-alike names, and the smaller leaks. Each test fails on a worker without the fix."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import socketio

from tests.conftest import Worker, http_get
from tests.integration.raw import (
    Polling,
    open_raw_websocket,
    raw_exchange,
    status_of,
    websocket_handshake,
)

OUTBUF = 65_536
REPLAY_BYTES = 16_384
SMALL_BUFFERS = {
    "CHATD_LIMITS_OUTBUF_BYTES": str(OUTBUF),
    "CHATD_LIMITS_REPLAY_BYTES": str(REPLAY_BYTES),
    "CHATD_LIMITS_RATE_BURST": "500",
    "CHATD_LIMITS_RATE_PER_MINUTE": "100000",
}
JOIN_BURST = 10  # events.JOIN_BURST


@pytest.fixture(scope="module")
def small_buffers(start_worker: Callable[..., Worker]) -> Worker:
    return start_worker(**SMALL_BUFFERS)


@pytest.fixture
def fresh(start_worker: Callable[..., Worker]) -> Worker:
    """A worker of its own, so its counters and its log hold only this test's clients."""
    return start_worker(**SMALL_BUFFERS)


def metric(worker: Worker, name: str) -> float:
    _, body = http_get(worker.url + "/metrics")
    match = re.search(rf"^{name} (\S+)$", body.decode(), re.M)
    assert match, name
    return float(match.group(1))


def timed_out(worker: Worker, transport: str = "websocket") -> float:
    """chatd_sessions_timed_out_total of one transport."""
    _, body = http_get(worker.url + "/metrics")
    name = f'chatd_sessions_timed_out_total{{transport="{transport}"}}'
    match = re.search(rf"^{re.escape(name)} (\S+)$", body.decode(), re.M)
    assert match, name
    return float(match.group(1))


async def eventually(check: Callable[[], Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await asyncio.to_thread(check):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        await asyncio.sleep(0.1)


async def seed(client: Any, worker: Worker, room: str, count: int, chars: int) -> Any:
    ann = await client(worker.url)
    await ann.join(room, "ann")
    for i in range(count):
        assert (await ann.send(room, f"{i:03d} " + "x" * chars))["ok"]
    return ann


def event(name: str, data: Any, ack: int | None = None) -> str:
    return f"42{'' if ack is None else ack}{json.dumps([name, data])}"


async def read_until_closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> list:
    """Frames received until the server closes the WebSocket (fails if it does not)."""
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = await ws.receive(timeout=deadline - time.monotonic())
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return frames
        frames.append(msg.data)
    raise AssertionError("the server kept the WebSocket open")


async def ack_of(ws: aiohttp.ClientWebSocketResponse, ack: int) -> Any:
    prefix = f"43{ack}"
    while True:
        frame = await ws.receive_str(timeout=10)
        if frame.startswith(prefix):
            return json.loads(frame[len(prefix) :])[0]


# ---- 1. every transport's output is bounded ---------------------------------------------------


async def test_polling_session_that_never_polls_is_cut_at_the_output_bound(
    small_buffers, client, room
):
    await seed(client, small_buffers, room, 30, 1500)  # ~46 KB: each join sends 16 KB
    async with aiohttp.ClientSession() as http:
        eve = Polling(http, small_buffers)
        await eve.open()
        assert await eve.post("40") == 200
        assert (await eve.get())[0].startswith("40")
        join = event("joinRoom", {"room": room, "username": "eve", "since": 0}, ack=1)
        posted = 0
        for _ in range(JOIN_BURST):  # ten joins would queue 160 KB that eve never reads
            if await eve.post(join) != 200:
                break
            posted += 1
        assert posted >= OUTBUF // REPLAY_BYTES

        async def gone() -> bool:
            async with http.get(f"{eve.base}&sid={eve.sid}") as resp:
                await resp.read()
                return resp.status == 400

        deadline = time.monotonic() + 10
        while not await gone():
            assert time.monotonic() < deadline, "the session outlived its output bound"
            await asyncio.sleep(0.2)
    assert "slow consumer" in small_buffers.log()


async def test_one_polling_response_carries_at_most_frame_bytes(start_worker, client, room):
    frame = 8192
    worker = start_worker(
        CHATD_LIMITS_MESSAGE_CHARS="1000",
        CHATD_LIMITS_FRAME_BYTES=str(frame),
        CHATD_LIMITS_REPLAY_BYTES="6000",
        CHATD_LIMITS_OUTBUF_BYTES=str(OUTBUF),
    )
    await seed(client, worker, room, 20, 900)
    async with aiohttp.ClientSession() as http:
        eve = Polling(http, worker)
        await eve.open()
        await eve.post("40")
        await eve.get()
        for ack in range(1, 5):  # four histories of ~6 KB: 24 KB in all, queued at once
            await eve.post(event("joinRoom", {"room": room, "username": "eve", "since": 0}, ack))
        acks: set[str] = set()
        while len(acks) < 4:
            async with http.get(f"{eve.base}&sid={eve.sid}") as resp:
                assert resp.status == 200
                body = await resp.read()
            packets = body.decode().split("\x1e")
            assert len(body) <= frame + 4 * len(packets) or len(packets) == 1, len(body)
            acks.update(p[:4] for p in packets if p.startswith("43"))
        assert acks == {"431[", "432[", "433[", "434["}


async def test_polling_session_that_only_sends_blind_pongs_is_closed(start_worker):
    worker = start_worker(CHATD_LIMITS_PING_INTERVAL_SECS="1", CHATD_LIMITS_PING_TIMEOUT_SECS="1")
    async with aiohttp.ClientSession() as http:
        eve = Polling(http, worker)
        await eve.open()
        await eve.post("40")
        await eve.get()
        assert metric(worker, "chatd_connected_clients") == 1
        deadline = time.monotonic() + 15
        while metric(worker, "chatd_connected_clients") != 0:
            assert time.monotonic() < deadline, "blind PONGs kept a session that never polls"
            await eve.post("3")
            await asyncio.sleep(0.3)
    assert timed_out(worker, "polling") == 1


# ---- 2. upgrades Engine.IO would refuse get no 101 ---------------------------------------------


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("EIO=4&transport=polling", {}, 400),
        ("EIO=4", {}, 400),
        ("EIO=4&transport=bogus", {}, 400),
        ("EIO=4&transport=websocket&sid=w1.doesnotexist", {}, 400),
        ("EIO=4&transport=websocket&j=1", {}, 400),
        ("EIO=4&transport=websocket", {"Origin": "HTTP://127.0.0.1:{port}"}, 403),
        ("EIO=4&transport=websocket", {"Origin": "http://127.0.0.1:{port}/"}, 403),
        (
            "EIO=4&transport=websocket",
            {"Origin": "http://evil.example", "Sec-Fetch-Site": "same-origin"},
            403,
        ),
        # DNS rebinding: a name the attacker controls, pointing at this machine.
        (
            "EIO=4&transport=websocket",
            {"Origin": "http://evil.example:{port}", "Host": "evil.example:{port}"},
            403,
        ),
    ],
)
def test_upgrades_engineio_would_refuse_are_refused_before_the_101(server, query, headers, status):
    filled = {k: v.format(port=server.port) for k, v in headers.items()}
    assert websocket_handshake(server, query, **filled)[0] == status


async def test_upgrading_a_session_that_already_upgraded_gets_no_101(server, client):
    ann = await client(server.url)
    sid = ann.sio.eio.sid
    assert ann.sio.transport() == "websocket"
    query = f"EIO=4&transport=websocket&sid={sid}"
    assert (await asyncio.to_thread(websocket_handshake, server, query))[0] == 400


# ---- 3. the server's own event names never reach its handlers ---------------------------------


@pytest.mark.parametrize("name", ["disconnect", "connect", "connect_error", "disconnecting"])
async def test_reserved_event_name_from_a_client_drops_it_and_counts_stay_right(
    fresh, client, room, name
):
    ann = await client(fresh.url)
    await ann.join(room, "ann")
    async with aiohttp.ClientSession() as http:
        ws = await open_raw_websocket(http, fresh)
        await ws.send_str(event("joinRoom", {"room": room, "username": "eve"}, ack=1))
        assert (await ack_of(ws, 1))["ok"]
        for _ in range(5):
            await ws.send_str(event(name, {}))
        frames = await read_until_closed(ws)
    assert not any("chatMessage" in f for f in frames if isinstance(f, str))
    await ann.wait_for("notification", lambda ns: any(n["text"] == "eve left the room" for n in ns))
    assert (await ann.send(room, "still here"))["ok"]
    await eventually(lambda: metric(fresh, "chatd_connected_clients") == 1)
    assert "Traceback" not in fresh.log()


async def test_unknown_event_is_answered_and_the_connection_stays(server):
    async with aiohttp.ClientSession() as http:
        ws = await open_raw_websocket(http, server)
        await ws.send_str(event("noSuchEvent", {"x": 1}, ack=7))
        answer = await ack_of(ws, 7)
        assert answer["error"]["code"] == "unknown_event"
        await ws.send_str(event("typing", {"room": "nowhere"}, ack=8))
        assert (await ack_of(ws, 8))["error"]["code"] == "not_joined"
        await ws.close()


# ---- 5. every join counts, and a replay is bounded in bytes ------------------------------------


async def test_joining_the_same_room_again_and_again_is_rate_limited(server, client, room):
    eve = await client(server.url)
    answers = [
        await eve.call("joinRoom", {"room": room, "username": "eve", "since": 0})
        for _ in range(JOIN_BURST + 1)
    ]
    assert all(a["ok"] for a in answers[:JOIN_BURST])
    assert answers[JOIN_BURST]["error"]["code"] == "rate_limited"


async def test_join_history_is_bounded_in_bytes_and_the_rest_is_on_rest(
    small_buffers, client, room
):
    await seed(client, small_buffers, room, 30, 1500)
    eve = await client(small_buffers.url)
    replay = await eve.join(room, "eve", since=0)
    latest = await eve.join(room, "eve2")
    await eve.wait_for("chat-history", lambda hs: len(hs) == 2)
    oldest_first, newest = eve.events["chat-history"]
    for history in (oldest_first, newest):
        assert 1 <= len(history) < 30
        assert len(json.dumps(history, ensure_ascii=False).encode()) <= REPLAY_BYTES
    assert replay["has_more"] and latest["has_more"]
    assert oldest_first[0]["seq"] == 1
    assert newest[-1]["seq"] == latest["last_seq"] == 30
    after = oldest_first[-1]["seq"]
    _, body = http_get(f"{small_buffers.url}/api/rooms/{room}/messages?after={after}&limit=200")
    rest = json.loads(body)["messages"]
    assert [m["seq"] for m in oldest_first + rest] == list(range(1, 31))


# ---- 7, 8. malformed input: one bounded log line, never a traceback ---------------------------


def test_deeply_nested_json_body_on_rest_is_invalid_payload_without_a_traceback(fresh):
    body = ("[" * 1100 + "]" * 1100).encode()
    head = (
        f"POST /api/rooms HTTP/1.1\r\nHost: 127.0.0.1:{fresh.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    response = raw_exchange(fresh, head, body)
    assert status_of(response) == 400
    assert b'"invalid_payload"' in response
    assert "Traceback" not in fresh.log() and "RecursionError" not in fresh.log()


@pytest.mark.parametrize(
    "frame", ["42[]", '42{"a":1}', '42[{"x":1}]', "42[1]", "9", "2", "x", "4", "421"]
)
async def test_malformed_packet_drops_the_connection_with_one_short_log_line(fresh, frame):
    async with aiohttp.ClientSession() as http:
        ws = await open_raw_websocket(http, fresh)
        await ws.send_str(frame)
        await read_until_closed(ws)
    log = fresh.log()
    assert "Traceback" not in log and "ERROR" not in log
    lines = [line for line in log.splitlines() if "disconnecting" in line]
    assert len(lines) == 1 and len(lines[0]) < 400


@pytest.mark.parametrize("payload", ["9", "x", "4\x1e9", "2"])
async def test_malformed_polling_payload_ends_the_session_without_a_traceback(fresh, payload):
    async with aiohttp.ClientSession() as http:
        eve = Polling(http, fresh)
        await eve.open()
        await eve.post("40")
        await eve.get()
        assert await eve.post(payload) == 400
    assert "Traceback" not in fresh.log()
    await eventually(lambda: metric(fresh, "chatd_connected_clients") == 0)


# ---- 9. cross-site writes ------------------------------------------------------------------------


def post_room(worker: Worker, name: str, **headers: str) -> tuple[int | None, bytes]:
    body = json.dumps({"name": name}).encode()
    lines = [
        "POST /api/rooms HTTP/1.1",
        f"Host: 127.0.0.1:{worker.port}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items()),
    ]
    response = raw_exchange(worker, ("\r\n".join(lines) + "\r\n\r\n").encode(), body)
    return status_of(response), response


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "http://evil.example", "Content_Type": "application/json"}, 403),
        ({"Origin": "http://evil.example", "Content_Type": "text/plain"}, 403),
        ({"Content_Type": "text/plain"}, 415),
        ({"Content_Type": "application/x-www-form-urlencoded"}, 415),
        ({}, 415),
    ],
)
def test_cross_site_or_non_json_room_creation_is_refused_and_creates_nothing(
    server, room, headers, status
):
    assert post_room(server, room, **headers)[0] == status
    assert http_get(f"{server.url}/api/rooms/{room}/messages")[0] == 404


def test_same_site_json_room_creation_still_works(server, room):
    same = {"Origin": f"http://127.0.0.1:{server.port}", "Content_Type": "application/json"}
    assert post_room(server, room, **same)[0] == 201


# ---- 10. names: one spelling, nothing invisible, no look-alikes --------------------------------


@pytest.mark.parametrize(
    "name",
    ["general\u3164", "general\u115f", "general\uffa0", "gen\u200beral", "g\u0435neral"],
)
async def test_look_alike_room_names_are_refused(server, client, name):
    eve = await client(server.url)
    answer = await eve.call("joinRoom", {"room": name, "username": "eve"})
    assert answer["error"]["code"] == "invalid_payload"
    assert answer["error"]["field"] == "room"


async def test_names_are_normalised_so_one_room_has_one_spelling(server, client, room):
    nfc, nfd = f"café {room}", f"cafe\u0301 {room}"
    ann, bob = await client(server.url), await client(server.url)
    assert (await ann.join(nfc, "ann"))["room"] == nfc
    assert (await bob.join(nfd, "bob"))["room"] == nfc
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "a" <= c <= "z" else c for c in "fullwidth")
    assert (await bob.join(fullwidth + room[1:], "bob"))["room"] == "fullwidth" + room[1:]
    await bob.send(nfc, "hello")
    await ann.wait_for("chatMessage", lambda ms: any(m["message"] == "hello" for m in ms))


@pytest.mark.parametrize("name", ["हिन्दी", "日本語のへや", "Привет", "한국어", "naïve"])
async def test_names_in_any_script_with_combining_marks_are_accepted(server, client, name):
    eve = await client(server.url)
    assert (await eve.join(name, name))["room"] == name


@pytest.mark.parametrize("text", ["\u200b\u200b", "\u3164", " \u2060 \n", "\ufeff"])
async def test_message_with_no_visible_character_is_blank(server, client, room, text):
    eve = await client(server.url)
    await eve.join(room, "eve")
    answer = await eve.send(room, text)
    assert answer["error"]["code"] == "invalid_payload" and answer["error"]["field"] == "message"


# ---- 11. the smaller leaks ----------------------------------------------------------------------


def test_metrics_are_not_served_to_addresses_outside_metrics_allow(start_worker):
    worker = start_worker(CHATD_SERVER_TRUST_PROXY="true")
    assert http_get(worker.url + "/metrics")[0] == 200  # loopback
    head = (
        f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{worker.port}\r\n"
        "X-Real-IP: 203.0.113.7\r\nConnection: close\r\n\r\n"
    ).encode()
    response = raw_exchange(worker, head)
    assert status_of(response) == 404 and b"chatd_" not in response


def test_content_security_policy_connects_to_its_own_origin_only(server):
    head = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nConnection: close\r\n\r\n"
    response = raw_exchange(server, head.encode()).decode(errors="replace")
    policy = re.search(r"(?im)^content-security-policy: (.*)$", response)
    assert policy
    directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";") if d.strip())
    assert directives["connect-src"].strip() == "'self'"


@pytest.mark.parametrize("path", ["/static/%00", "/static/app.js%00.png", "/%00"])
def test_nul_byte_in_a_static_path_is_400_without_a_traceback(fresh, path):
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{fresh.port}\r\nConnection: close\r\n\r\n"
    status = status_of(raw_exchange(fresh, head.encode()))
    assert status in (400, 404)
    assert "Traceback" not in fresh.log()


def test_session_ids_carry_the_worker_prefix_and_nothing_guessable(start_worker):
    worker = start_worker(worker_id=7)
    sids = []
    for _ in range(5):
        _, body = http_get(worker.url + "/socket.io/?EIO=4&transport=polling")
        sids.append(json.loads(body[1:])["sid"])
    assert all(s.startswith("w7.") and len(s) >= 3 + 21 for s in sids)
    tails = {s[-3:] for s in sids}
    assert len(tails) == 5  # no visible counter in the last characters


@pytest.mark.cluster
async def test_front_door_caps_connections_per_address(workers, start_front_door):
    door = start_front_door(workers(1), conn_per_ip=3, conn_exempt=())
    held = []
    try:
        for _ in range(3):
            c = socketio.AsyncClient(reconnection=False)
            await c.connect(door.url, transports=["websocket"], wait_timeout=10)
            held.append(c)
        status, _ = await asyncio.to_thread(websocket_handshake, door)
        assert status == 429
        await held.pop().disconnect()
        await eventually(lambda: websocket_handshake(door)[0] == 101)
    finally:
        for c in held:
            await c.disconnect()


# ---- 4. a client_id only ever matches its own sender's message --------------------------------


async def test_another_senders_client_id_never_swallows_a_message(server, client, room, mongo):
    mallory, alice, bob = [await client(server.url) for _ in range(3)]
    for c, name in ((mallory, "mallory"), (alice, "alice"), (bob, "bob")):
        await c.join(room, name)
    taken = await mallory.send(room, "first", client_id="msg-1")
    mine = await alice.send(room, "alice: the real one", client_id="msg-1")
    assert taken["ok"] and mine["ok"], (taken, mine)
    assert mine["duplicate"] is False and mine["id"] != taken["id"]
    await bob.wait_for("chatMessage", lambda ms: len(ms) == 2)
    assert [m["message"] for m in bob.messages(room)] == ["first", "alice: the real one"]
    texts = [d["message"] for d in mongo.messages.find({"room": room}).sort("seq", 1)]
    assert texts == ["first", "alice: the real one"]
    # Alice's own retry is still one message.
    again = await alice.send(room, "alice: the real one", client_id="msg-1")
    assert again["duplicate"] is True and again["id"] == mine["id"]
