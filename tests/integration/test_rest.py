"""REST, health, metrics and static files of one real worker; every error answers JSON."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Worker, http_get

ISO_MILLIS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
PASSWD_MARKERS = (b"root:", b"/bin/", b"nologin")


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return json.loads(self.body)


def request(
    worker: Worker,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """One HTTP request with the path sent exactly as written (no client-side normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


JSON = {"Content-Type": "application/json"}


def get_json(worker: Worker, path: str) -> tuple[int, Any]:
    resp = request(worker, "GET", path)
    return resp.status, resp.json()


def post_json(worker: Worker, path: str, body: Any) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = request(worker, "POST", path, raw, {"Content-Type": "application/json"})
    return resp.status, resp.json()


def assert_error(resp: Response, status: int, code: str) -> None:
    assert resp.status == status, (resp.status, resp.body)
    body = resp.json()
    assert body["ok"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert b"Traceback" not in resp.body and b'File "' not in resp.body


async def send_in_order(c, room: str, texts: list[str]) -> list[dict[str, Any]]:
    """Emit every message at once (they are stored in send order) and wait for all acks."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in texts]
    for text, fut in zip(texts, futures, strict=True):
        await c.sio.emit("chatMessage", {"room": room, "message": text}, callback=fut.set_result)
    acks = await asyncio.wait_for(asyncio.gather(*futures), 20)
    assert all(a["ok"] for a in acks), acks
    return list(acks)


@pytest.fixture(scope="module")
def fresh_worker(
    start_worker: Callable[..., Worker], tmp_path_factory: pytest.TempPathFactory
) -> Worker:
    """A worker of this module alone, serving a static folder with symlinks out of it."""
    static = tmp_path_factory.mktemp("static")
    (static / "index.html").write_text("<!doctype html><title>test</title>")
    os.symlink("/etc/passwd", static / "leak.txt")
    os.symlink("/etc", static / "etc")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("root:secret-outside-the-root")
    os.symlink(outside, static / "out")
    return start_worker(CHATD_SERVER_STATIC_DIR=str(static))


# ---- rooms ----------------------------------------------------------------------------------


def test_post_room_creates_it_with_201_then_answers_200(server, room):
    status, body = post_json(server, "/api/rooms", {"name": room})
    assert status == 201
    assert body["name"] == room
    assert ISO_MILLIS_Z.fullmatch(body["created_at"])
    assert body["last_message_at"] is None
    assert body["online"] == 0
    again_status, again = post_json(server, "/api/rooms", {"name": room, "extra": {"$ne": 1}})
    assert again_status == 200
    assert again["created_at"] == body["created_at"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": " x"},
        {"name": "../etc"},
        {"name": "a/b"},
        {"name": "x\n"},
        {"name": {"$ne": None}},
        {"name": {"$gt": ""}},
        {"name": ["general"]},
        {"name": 123},
        {"name": None},
        {"name": True},
        {},
        {"$where": "sleep(1000)"},
        ["general"],
        "general",
        123,
        None,
    ],
)
def test_post_room_with_invalid_name_or_body_is_400(server, body):
    resp = request(server, "POST", "/api/rooms", json.dumps(body).encode(), JSON)
    assert_error(resp, 400, "invalid_payload")


@pytest.mark.parametrize("raw", [b"", b"name=general", b"{not json", b"\xff\xfe", b"{'name': 1}"])
def test_post_room_with_non_json_body_is_400(server, raw):
    resp = request(server, "POST", "/api/rooms", raw, {"Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_payload")


def test_post_room_with_too_long_name_is_400_too_long(server):
    resp = request(server, "POST", "/api/rooms", json.dumps({"name": "r" * 65}).encode(), JSON)
    assert_error(resp, 400, "too_long")


async def test_get_rooms_lists_most_recently_active_first_with_online_counts(server, client, room):
    older, newer = room + "-older", room + "-newer"
    assert post_json(server, "/api/rooms", {"name": older})[0] == 201
    assert post_json(server, "/api/rooms", {"name": newer})[0] == 201
    status, body = await asyncio.to_thread(get_json, server, "/api/rooms")
    names = [r["name"] for r in body["rooms"]]
    assert names.index(newer) < names.index(older)
    # A message makes the older room the most recently active one.
    ann = await client(server.url)
    bob = await client(server.url)
    await ann.join(older, "ann")
    await bob.join(older, "bob")
    ack = await ann.send(older, "wake up")
    # The room list follows a send within a moment: it is written off the send path.
    for _ in range(300):
        status, body = await asyncio.to_thread(get_json, server, "/api/rooms")
        assert status == 200
        rooms = {r["name"]: r for r in body["rooms"]}
        if rooms[older]["last_message_at"] is not None:
            break
        await asyncio.sleep(0.05)
    names = [r["name"] for r in body["rooms"]]
    assert names.index(older) < names.index(newer)
    assert set(rooms[older]) >= {"name", "created_at", "last_message_at", "online"}
    assert rooms[older]["online"] == 2
    assert rooms[older]["last_message_at"] == ack["timestamp"]
    assert rooms[newer]["online"] == 0 and rooms[newer]["last_message_at"] is None
    for r in body["rooms"]:
        assert ISO_MILLIS_Z.fullmatch(r["created_at"])


async def test_online_count_drops_when_a_member_leaves(server, client, room):
    ann = await client(server.url)
    await ann.join(room, "ann")
    status, body = await asyncio.to_thread(get_json, server, "/api/rooms")
    assert {r["name"]: r["online"] for r in body["rooms"]}[room] == 1
    await ann.call("leaveRoom", {"room": room})
    status, body = await asyncio.to_thread(get_json, server, "/api/rooms")
    assert status == 200
    assert {r["name"]: r["online"] for r in body["rooms"]}[room] == 0


# ---- message history ------------------------------------------------------------------------


async def test_history_pages_backwards_with_before_through_every_message_once(server, client, room):
    ann = await client(server.url)
    await ann.join(room, "ann")
    acks = await send_in_order(ann, room, [f"m{i}" for i in range(1, 8)])
    pages: list[list[int]] = []
    before = ""
    for _ in range(10):
        path = f"/api/rooms/{room}/messages?limit=3" + (f"&before={before}" if before else "")
        status, body = await asyncio.to_thread(get_json, server, path)
        assert status == 200 and body["room"] == room
        pages.append([m["seq"] for m in body["messages"]])
        if not body["has_more"]:
            break
        before = str(body["messages"][0]["seq"])
    assert pages == [[5, 6, 7], [2, 3, 4], [1]]
    status, body = await asyncio.to_thread(get_json, server, f"/api/rooms/{room}/messages")
    assert [m["id"] for m in body["messages"]] == [a["id"] for a in acks]
    assert body["has_more"] is False
    first = body["messages"][0]
    assert set(first) >= {"id", "room", "user", "message", "timestamp", "seq"}
    assert (first["user"], first["message"], first["room"]) == ("ann", "m1", room)


async def test_history_pages_forwards_with_after_through_every_message_once(server, client, room):
    ann = await client(server.url)
    await ann.join(room, "ann")
    await send_in_order(ann, room, [f"m{i}" for i in range(1, 8)])
    pages: list[list[int]] = []
    after = 0
    for _ in range(10):
        path = f"/api/rooms/{room}/messages?after={after}&limit=3"
        status, body = await asyncio.to_thread(get_json, server, path)
        assert status == 200
        pages.append([m["seq"] for m in body["messages"]])
        if not body["has_more"]:
            break
        after = body["messages"][-1]["seq"]
    assert pages == [[1, 2, 3], [4, 5, 6], [7]]


def test_history_of_an_empty_room_is_empty(server, room):
    post_json(server, "/api/rooms", {"name": room})
    status, body = get_json(server, f"/api/rooms/{room}/messages")
    assert (status, body) == (200, {"room": room, "messages": [], "has_more": False})


def test_history_of_a_room_name_with_a_space_is_reachable_url_encoded(server, room):
    name = room + " two"
    post_json(server, "/api/rooms", {"name": name})
    status, body = get_json(server, f"/api/rooms/{room}%20two/messages")
    assert status == 200 and body["room"] == name


def test_history_of_an_unknown_room_is_404_json(server, room):
    assert_error(request(server, "GET", f"/api/rooms/{room}/messages"), 404, "not_found")


@pytest.mark.parametrize(
    "query",
    [
        "before=abc",
        "before=-1",
        "before=1.5",
        "before=%C2%B2",
        "limit=0",
        "limit=201",
        "limit=-5",
        "limit=ten",
        "limit=%D9%A1",
        "limit=" + "9" * 5000,
        "after=x",
        "before=2&after=1",
        "before=" + "9" * 17,
    ],
)
def test_history_with_bad_before_after_or_limit_is_400(server, room, query):
    post_json(server, "/api/rooms", {"name": room})
    resp = request(server, "GET", f"/api/rooms/{room}/messages?{query}")
    assert_error(resp, 400, "invalid_payload")


@pytest.mark.parametrize(
    "segment", ["%2e%2e", ".hidden", "%24ne", "a%0Ab", "%7B%22%24ne%22%3A1%7D"]
)
def test_history_with_an_invalid_room_name_is_400(server, segment):
    assert_error(request(server, "GET", f"/api/rooms/{segment}/messages"), 400, "invalid_payload")


# ---- health and metrics ---------------------------------------------------------------------


def test_healthz_answers_ok_json(server):
    status, body = get_json(server, "/healthz")
    assert status == 200 and body["ok"] is True


def test_readyz_reports_mongo_and_redis_reachable(server):
    status, body = get_json(server, "/readyz")
    assert status == 200
    assert body["ok"] is True and body["mongo"] is True and body["redis"] is True


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = "^" + re.escape(name) + (r"\{" + labels + r"\}" if labels else "") + r" (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} not in metrics"
    return float(match.group(1))


async def test_metrics_expose_clients_messages_event_times_and_bus_listener(
    fresh_worker, client, room
):
    worker = fresh_worker  # no other test connects to it, so the counts are exact
    base = worker.url + "/metrics"

    async def scrape() -> str:
        status, body = await asyncio.to_thread(http_get, base)
        assert status == 200
        return body.decode()

    text = await scrape()
    assert "# TYPE chatd_connected_clients gauge" in text
    assert "# TYPE chatd_messages_total counter" in text
    assert "# TYPE chatd_event_seconds histogram" in text
    assert "# TYPE chatd_bus_listener_up gauge" in text
    assert "# TYPE chatd_gc_pause_seconds histogram" in text
    for generation in "012":  # every collection is timed, from start-up on
        assert metric(text, "chatd_gc_pause_seconds_count", f'generation="{generation}"') >= 0
    assert metric(text, "chatd_connected_clients") == 0
    assert metric(text, "chatd_messages_total") == 0
    assert metric(text, "chatd_bus_listener_up") == 1
    # The event loop is timed ten times a second from start-up on.
    ticks = metric(text, "chatd_event_loop_lag_seconds_count")
    for _ in range(100):
        if metric(await scrape(), "chatd_event_loop_lag_seconds_count") >= ticks + 3:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the event loop lag is not measured")
    ann = await client(worker.url)
    bob = await client(worker.url)
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    await send_in_order(ann, room, ["one", "two", "three"])
    await ann.call("typing", {"room": room, "typing": True})
    text = await scrape()
    assert metric(text, "chatd_connected_clients") == 2
    assert metric(text, "chatd_messages_total") == 3
    assert metric(text, "chatd_event_seconds_count", 'event="chatMessage"') == 3
    assert metric(text, "chatd_event_seconds_count", 'event="joinRoom"') == 2
    assert metric(text, "chatd_event_seconds_count", 'event="typing"') == 1
    assert metric(text, "chatd_event_seconds_bucket", 'event="chatMessage",le="\\+Inf"') == 3
    await bob.sio.disconnect()
    for _ in range(100):
        if metric(await scrape(), "chatd_connected_clients") == 1:
            break
        await asyncio.sleep(0.05)
    assert metric(await scrape(), "chatd_connected_clients") == 1


# ---- errors and unknown paths ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/api/nope"),
        ("POST", "/nope"),
        ("GET", "/api/rooms/x/y"),
        ("GET", "/api/rooms/x/messages/extra"),
        ("DELETE", "/whatever"),
        ("GET", "/.env"),
        ("GET", "/index.html.bak"),
    ],
)
def test_unknown_path_is_a_json_404(server, method, path):
    assert_error(request(server, method, path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/rooms"),
        ("PUT", "/api/rooms"),
        ("POST", "/healthz"),
        ("DELETE", "/api/rooms/general/messages"),
    ],
)
def test_method_not_allowed_is_a_json_405_without_traceback(server, method, path):
    assert_error(request(server, method, path), 405, "invalid_request")


def test_api_responses_carry_security_headers_and_no_cache(server):
    resp = request(server, "GET", "/api/rooms")
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in resp.headers["content-security-policy"]
    assert resp.headers["cache-control"] == "no-store"


# ---- static files ---------------------------------------------------------------------------


def test_root_serves_the_browser_client_with_a_content_security_policy(server):
    resp = request(server, "GET", "/")
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert b"<title>" in resp.body.lower() or b"<html" in resp.body.lower()
    csp = resp.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "object-src 'none'" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"


def test_vendored_socketio_client_is_served(server):
    resp = request(server, "GET", "/static/vendor/socket.io.min.js")
    assert resp.status == 200
    assert "javascript" in resp.headers["content-type"]
    assert "content-security-policy" in resp.headers


TRAVERSALS = [
    "/static/../../etc/passwd",
    "/static/../../../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/static/%252e%252e/%252e%252e/etc/passwd",
    "/static/....//....//....//etc/passwd",
    "/static/..%5c..%5c..%5c..%5cetc%5cpasswd",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/vendor/../../../../etc/passwd",
    "/static/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/../../etc/passwd",
    "//etc/passwd",
    "/static/../chatd/config.py",
    "/static/%2e%2e/chatd/config.py",
    "/static/../config/chatd.toml",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_static_path_traversal_is_refused_without_file_content(server, path):
    resp = request(server, "GET", path)
    assert resp.status in (400, 403, 404), (path, resp.status)
    for marker in (*PASSWD_MARKERS, b"CHATD_", b"[server]", b"import "):
        assert marker not in resp.body, (path, marker)


@pytest.mark.parametrize(
    "path", ["/static/leak.txt", "/static/etc/passwd", "/static/out/secret.txt", "/static/out/"]
)
def test_static_symlink_out_of_the_root_is_refused(fresh_worker, path):
    resp = request(fresh_worker, "GET", path)
    assert resp.status in (403, 404), (path, resp.status)
    assert b"root:" not in resp.body and b"secret" not in resp.body


def test_static_root_of_the_symlinked_worker_still_serves_its_index(fresh_worker):
    resp = request(fresh_worker, "GET", "/")
    assert resp.status == 200 and b"<title>test</title>" in resp.body


def test_static_missing_file_is_404_without_traceback(server):
    resp = request(server, "GET", f"/static/{uuid.uuid4().hex}.js")
    assert resp.status == 404
    assert b"Traceback" not in resp.body


def test_paths_of_this_checkout_are_not_leaked_in_errors(server):
    root = str(Path(__file__).resolve().parents[2]).encode()
    for path in ("/static/../../etc/passwd", "/nope", "/api/rooms/%24x/messages"):
        assert root not in request(server, "GET", path).body
