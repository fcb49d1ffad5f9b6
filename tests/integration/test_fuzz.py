"""Protocol fuzz: Hypothesis makes malformed Engine.IO and Socket.IO packets, WebSocket frames,
long-polling bodies and handshake query strings and sends them to a live worker over real
sockets (raw WebSocket frames and raw HTTP requests, no client library).

Properties, checked for every input:
- nothing the worker answers (HTTP status line, headers and body, every WebSocket frame) holds
  stack text or a Python exception name that the input did not itself contain;
- no HTTP answer is a 5xx, and the worker logs no ERROR line and no traceback;
- the fuzzed connection ends in a definite state within a few seconds: dropped by the server,
  or still answering (a probe event gets its ack, or a `connect_error`);
and every CHECK_EVERY inputs and at the end:
- the worker is alive and answers /readyz, two clients connected before the fuzz (one over
  WebSocket, one over long-polling) still chat, and a new client can join and chat;
- the worker's log grew by at most LOG_BYTES_PER_INPUT bytes per input, in lines of at most
  LOG_LINE_MAX_CHARS characters (refusals are rate-limited: logbudget.LOG_LINES_PER_WINDOW).

The run is reproducible: CHATD_FUZZ_EXAMPLES inputs (default 150, well under a minute),
derandomized, so CI sends the same inputs every time. Longer or different runs:

    CHATD_FUZZ_EXAMPLES=5000 scripts/test tests/integration/test_fuzz.py
    CHATD_FUZZ_EXAMPLES=2000 CHATD_FUZZ_SEED=7 scripts/test tests/integration/test_fuzz.py

(CHATD_FUZZ_SEED draws another reproducible set instead of the derandomized one; the test's
timeout grows with the number of examples.) A failure prints the smallest input Hypothesis
found that still fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, example, given, seed, settings
from hypothesis import strategies as st
from pymongo import MongoClient

from tests.conftest import Services, Worker, http_get

EXAMPLES = int(os.environ.get("CHATD_FUZZ_EXAMPLES", "150"))
SEED = os.environ.get("CHATD_FUZZ_SEED")
CHECK_EVERY = 25
PROBE_ACK = 987_654_321  # no strategy below makes an ack id this long
PROBE_SECS = 6.0  # a connection neither dropped nor answering by then is hung
LOG_BYTES_PER_INPUT = 400
LOG_LINE_MAX_CHARS = 600
FRAME_BYTES = 65_536  # the fuzz worker's limits.frame_bytes: big inputs stay cheap
PING_SECS = 3  # fuzz connections never answer pings; they go within ping + timeout
# Stack text and exception names, as Python and the libraries would print them.
STACK_TEXT = re.compile(
    r'Traceback \(most recent call last\)|File "[^"\n]*", line \d+|\bline \d+, in \w'
    r"|\b[A-Z]\w*(?:Error|Exception|Exit|Interrupt)\b"
)
LOG_PROBLEM = re.compile(r"^\S+ \S+ (?:ERROR|CRITICAL) |Traceback|^\S*(?:Error|Exception): ", re.M)
FUZZ_ENV = {
    "CHATD_LIMITS_FRAME_BYTES": str(FRAME_BYTES),
    "CHATD_LIMITS_PING_INTERVAL_SECS": str(PING_SECS),
    "CHATD_LIMITS_PING_TIMEOUT_SECS": str(PING_SECS),
    "CHATD_LIMITS_RATE_BURST": "500",
    "CHATD_LIMITS_RATE_PER_MINUTE": "100000",
}

if SEED is not None:  # pragma: no cover - only by hand
    pytestmark = pytest.mark.timeout(max(120, EXAMPLES * 2 + 60))
else:
    pytestmark = pytest.mark.timeout(max(120, EXAMPLES + 90))


# ---- raw sockets ------------------------------------------------------------------------------


class Closed(Exception):
    """The server closed the connection (or reset it)."""


@dataclass
class Exchange:
    """Everything one fuzzed input sent and got back."""

    sent: bytearray = field(default_factory=bytearray)
    received: list[bytes] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def text_sent(self) -> str:
        return bytes(self.sent).decode("utf-8", "replace")


def _recv_http(sock: socket.socket, deadline: float) -> tuple[int | None, bytes, bytes]:
    """(status, head, body) of one response on a `Connection: close` request."""
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError, BrokenPipeError):
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and b" 101 " in head.split(b"\r\n", 1)[0]:
                return 101, head, body
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if sep and length and len(body) >= int(length.group(1)):
                break
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return (int(match.group(1)) if match else None), head, body


def http_request(
    port: int,
    method: str,
    target: str,
    ex: Exchange,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = PROBE_SECS,
) -> tuple[int | None, bytes]:
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body
    ex.sent += request
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        status, head, answer = _recv_http(sock, deadline)
    ex.received += [head, answer]
    if status is not None:
        ex.statuses.append(status)
    return status, answer


class RawWebSocket:
    """A WebSocket client that sends any frame, well-formed or not (RFC 6455 §5.2)."""

    def __init__(self, port: int, query: str, ex: Exchange, headers: dict[str, str] | None = None):
        self.ex = ex
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=PROBE_SECS)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET /socket.io/?{query} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        ex.sent += request
        self.sock.sendall(request)
        self.status, head, self.buf = _recv_http(self.sock, time.monotonic() + PROBE_SECS)
        ex.received.append(head)
        if self.status is not None:
            ex.statuses.append(self.status)
        self.closed = self.status != 101
        if self.closed:
            ex.received.append(self.buf)

    def send_frame(
        self,
        payload: bytes,
        opcode: int = 0x1,
        fin: bool = True,
        rsv: int = 0,
        masked: bool = True,
        declared: int | None = None,
    ) -> None:
        size = len(payload) if declared is None else declared
        first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0xF)
        mask_bit = 0x80 if masked else 0
        if size < 126:
            head = bytes((first, mask_bit | size))
        elif size <= 0xFFFF:
            head = struct.pack("!BBH", first, mask_bit | 126, size)
        else:
            head = struct.pack("!BBQ", first, mask_bit | 127, size)
        if masked:
            key = os.urandom(4)
            body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            data = head + key + body
        else:
            data = head + payload
        self.ex.sent += payload
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.closed = True

    def send_text(self, text: str) -> None:
        self.send_frame(text.encode("utf-8", "surrogatepass"))

    def _need(self, count: int, deadline: float) -> bytes:
        while len(self.buf) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.closed = True
                raise Closed
            self.buf += chunk
        data, self.buf = self.buf[:count], self.buf[count:]
        return data

    def recv(self, deadline: float) -> str | bytes:
        """The next data frame's payload (text as str); raises Closed or TimeoutError."""
        if self.closed:
            raise Closed
        while True:
            first, second = self._need(2, deadline)
            opcode, size = first & 0xF, second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", self._need(2, deadline))
            elif size == 127:
                (size,) = struct.unpack("!Q", self._need(8, deadline))
            key = self._need(4, deadline) if second & 0x80 else b""
            payload = self._need(size, deadline)
            if key:
                payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            self.ex.received.append(payload)
            if opcode == 0x8:
                self.closed = True
                raise Closed
            if opcode == 0x1:
                text = payload.decode("utf-8", "replace")
                if text == "2":  # Engine.IO PING
                    self.send_text("3")
                    continue
                return text
            if opcode == 0x2:
                return payload

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# ---- what a probe finds ---------------------------------------------------------------------

PROBE_EVENT = f'42{PROBE_ACK}["typing",{{"room":"fuzz-probe","typing":true}}]'


def _answers_probe(frame: str | bytes) -> bool:
    """An ack of the probe, or the namespace refused: either way, the connection answers."""
    return isinstance(frame, str) and (frame.startswith(f"43{PROBE_ACK}") or frame[:2] == "44")


def _probe_steps(connected: bool) -> tuple[list[str], ...]:
    # On a connected namespace the probe event alone; if it gets no answer, the input may
    # have disconnected the namespace: a CONNECT and the probe again.
    return ([PROBE_EVENT], ["40", PROBE_EVENT]) if connected else (["40", PROBE_EVENT],)


def ws_outcome(ws: RawWebSocket, connected: bool) -> str:
    """'dropped' or 'answering'; fails when the connection is neither within PROBE_SECS."""
    deadline = time.monotonic() + PROBE_SECS
    try:
        for step in _probe_steps(connected):
            for text in step:
                ws.send_text(text)
            step_deadline = min(deadline, time.monotonic() + PROBE_SECS / 4)
            with contextlib.suppress(TimeoutError):
                while True:
                    if _answers_probe(ws.recv(step_deadline)):
                        return "answering"
        while True:
            if _answers_probe(ws.recv(deadline)):
                return "answering"
    except Closed:
        return "dropped"
    except TimeoutError:
        pytest.fail("the WebSocket was neither dropped nor answering after the input")


def polling_outcome(port: int, sid: str, ex: Exchange, connected: bool) -> str:
    target = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    deadline = time.monotonic() + PROBE_SECS
    for step in _probe_steps(connected):
        status, _ = http_request(port, "POST", target, ex, "\x1e".join(step).encode())
        if status != 200:
            return "dropped"
        step_deadline = min(deadline, time.monotonic() + PROBE_SECS / 4)
        while time.monotonic() < step_deadline:
            status, body = http_request(
                port, "GET", target, ex, timeout=max(0.5, deadline - time.monotonic())
            )
            if status != 200:
                return "dropped"
            packets = body.decode("utf-8", "replace").split("\x1e")
            if any(p.startswith("1") for p in packets):  # Engine.IO CLOSE
                return "dropped"
            if any(_answers_probe(p) for p in packets):
                return "answering"
    pytest.fail("the polling session was neither closed nor answering after the input")


def polling_open(port: int, ex: Exchange, connect: bool) -> str:
    status, body = http_request(port, "GET", "/socket.io/?EIO=4&transport=polling", ex)
    assert status == 200, body[:200]
    sid = json.loads(body[1:])["sid"]
    if connect:
        target = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
        assert http_request(port, "POST", target, ex, b"40")[0] == 200
        assert http_request(port, "GET", target, ex)[1].startswith(b"40")
    return str(sid)


def ws_open(port: int, ex: Exchange, connect: bool) -> RawWebSocket:
    ws = RawWebSocket(port, "EIO=4&transport=websocket", ex)
    assert ws.status == 101
    deadline = time.monotonic() + PROBE_SECS
    opened = ws.recv(deadline)
    assert isinstance(opened, str) and opened.startswith("0"), opened
    if connect:
        ws.send_text("40")
        reply = ws.recv(deadline)
        assert isinstance(reply, str) and reply.startswith("40"), reply
    return ws


# ---- the inputs -------------------------------------------------------------------------------

EVENT_NAMES = st.sampled_from(
    [
        "joinRoom",
        "chatMessage",
        "leaveRoom",
        "typing",
        "connect",
        "disconnect",
        "connect_error",
        "disconnecting",
        "newListener",
        "removeListener",
        "message",
        "",
        "__proto__",
        "x" * 300,
    ]
) | st.text(max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24)
    | st.sampled_from(["general", "fuzz-room", "$ne", "a\x00b", "\u202e", "\ud800"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["room", "username", "message", "since", "client_id", "typing", "$gt"])
            | st.text(max_size=8),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


EVENT_BODY = st.builds(
    lambda name, args: _dumps([name, *args]), EVENT_NAMES, st.lists(JSON, max_size=3)
)
NESTED = st.integers(1, 3000).flatmap(
    lambda n: st.sampled_from(["[" * n + "]" * n, "[" * n, '{"a":' * n + "1" + "}" * n])
)
SIO_BODY = EVENT_BODY | JSON.map(_dumps) | NESTED | st.text(max_size=40)
SIO_PACKET = st.builds(
    lambda kind, attachments, namespace, ack, body: f"{kind}{attachments}{namespace}{ack}{body}",
    st.sampled_from(list("0123456")) | st.text(max_size=2),
    st.sampled_from(["", "", "", "1-", "0-", "-", "9" * 30 + "-"]),
    st.sampled_from(["", "", "", "/", "/,", "/admin,", "/nope,", ","]),
    st.sampled_from(["", "", "1", "007", "9" * 25, "9" * 5000]) | st.integers(0, 10**6).map(str),
    SIO_BODY,
)


PACKET = (
    SIO_PACKET.map(lambda p: "4" + p)
    | st.builds(lambda k, rest: k + rest, st.sampled_from(list("0123456789")), st.text(max_size=20))
    | st.sampled_from(
        ["", "2probe", "3probe", "5", "6", "1", "4", "40", "41", "42", "43", "2", "3"]
    )
    | st.text(max_size=40)
    | st.sampled_from(["4" + "x" * (FRAME_BYTES + 1), "42" + "[" * 100_000])
)
# Cut a packet anywhere, or put one odd character into it.
PACKET = PACKET | st.tuples(
    PACKET, st.integers(0, 60), st.sampled_from(["", "\x1e", "\x00", "\ufffd", "\\", '"', "]"])
).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :])


@dataclass
class WsPackets:
    """Engine.IO text (or binary) frames on a WebSocket session."""

    packets: list[str | bytes]
    connect_first: bool

    def run(self, port: int, ex: Exchange) -> str:
        ws = ws_open(port, ex, self.connect_first)
        try:
            for packet in self.packets:
                if isinstance(packet, bytes):
                    ws.send_frame(packet, opcode=0x2)
                else:
                    ws.send_text(packet)
            return ws_outcome(ws, self.connect_first)
        finally:
            ws.close()


@dataclass
class Upgrade:
    """A polling session's upgrade to WebSocket (`2probe`, `3probe`, `5`) with packets out of
    place, before, between or after its steps."""

    packets: list[str]
    connect_first: bool

    def run(self, port: int, ex: Exchange) -> str:
        sid = polling_open(port, ex, self.connect_first)
        ws = RawWebSocket(port, f"EIO=4&transport=websocket&sid={sid}", ex)
        try:
            if ws.status != 101:
                return "refused"
            for packet in self.packets:
                ws.send_text(packet)
            return ws_outcome(ws, self.connect_first)
        finally:
            ws.close()


@dataclass
class WsFrames:
    """WebSocket frames RFC 6455 forbids or rarely sees: reserved opcodes and bits, unmasked,
    fragments, control frames too long, invalid UTF-8 in text, lengths far too big."""

    frames: list[tuple[int, bool, int, bool, bytes, int | None]]
    connect_first: bool

    def run(self, port: int, ex: Exchange) -> str:
        ws = ws_open(port, ex, self.connect_first)
        try:
            for opcode, fin, rsv, masked, payload, declared in self.frames:
                ws.send_frame(payload, opcode, fin, rsv, masked, declared)
            return ws_outcome(ws, self.connect_first)
        finally:
            ws.close()


@dataclass
class PollingBody:
    """A long-polling POST body on a live session."""

    body: bytes
    content_type: str | None
    connect_first: bool

    def run(self, port: int, ex: Exchange) -> str:
        sid = polling_open(port, ex, self.connect_first)
        target = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
        headers = {} if self.content_type is None else {"Content-Type": self.content_type}
        status, _ = http_request(port, "POST", target, ex, self.body, headers)
        assert status is not None, "no HTTP answer to a polling POST"
        if status != 200:
            return "refused"
        return polling_outcome(port, sid, ex, self.connect_first)


@dataclass
class Handshake:
    """The query string (and method, upgrade, origin) of an Engine.IO handshake request."""

    query: str
    method: str
    upgrade: bool
    origin: str | None
    with_sid: bool

    def run(self, port: int, ex: Exchange) -> str:
        query = self.query
        if self.with_sid:  # a live session's id, where the query names one
            query = query.replace("SID", polling_open(port, ex, connect=False))
        headers = {} if self.origin is None else {"Origin": self.origin}
        if self.upgrade and self.method == "GET":
            ws = RawWebSocket(port, query, ex, headers)
            try:
                assert ws.status is not None, "no HTTP answer to a WebSocket handshake"
                if ws.status != 101:
                    return "refused"
                return ws_outcome(ws, connected=False)
            finally:
                ws.close()
        status, _ = http_request(port, self.method, f"/socket.io/?{query}", ex, b"", headers)
        assert status is not None, "no HTTP answer to a handshake"
        return "opened" if status == 200 else "refused"


def _query_text(pairs: list[tuple[str, str]], encode: bool) -> str:
    if encode:
        return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    raw = "&".join(f"{k}={v}" for k, v in pairs)
    # A request line holds no spaces or control characters; anything else goes as it is.
    return "".join(
        c if 0x20 < ord(c) < 0x7F or ord(c) > 0xFF else f"%{ord(c) & 0xFF:02X}" for c in raw
    )


QUERY_KEYS = st.sampled_from(
    ["EIO", "transport", "sid", "j", "t", "b64", "EIO", "transport"]
) | st.text(max_size=6)
QUERY_VALUES = st.sampled_from(
    [
        "4",
        "3",
        "5",
        "",
        "04",
        "4.0",
        "-4",
        "polling",
        "websocket",
        "bogus",
        "SID",
        "w3.",
        "w1.x",
        "0",
        "1e9",
    ]
) | st.text(max_size=12)
# Mostly a valid start, so the fuzz gets past the version and transport checks.
QUERY_START = st.sampled_from(
    [
        [],
        [("EIO", "4")],
        [("EIO", "4"), ("transport", "polling")],
        [("EIO", "4"), ("transport", "websocket")],
        [("EIO", "4"), ("transport", "polling"), ("sid", "SID")],
        [("EIO", "4"), ("transport", "websocket"), ("sid", "SID")],
    ]
)
QUERY_PAIRS = st.builds(
    lambda start, extra: start + extra,
    QUERY_START,
    st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=4),
)
HANDSHAKES = st.builds(
    Handshake,
    st.builds(_query_text, QUERY_PAIRS, st.booleans()),
    st.sampled_from(["GET", "GET", "POST", "OPTIONS", "PUT"]),
    st.booleans(),
    st.none() | st.sampled_from(["http://evil.example", "null", "", "http://127.0.0.1"]),
    st.booleans(),
)
WS_PACKETS = st.builds(
    WsPackets,
    st.lists(PACKET | st.binary(max_size=40), min_size=1, max_size=4),
    st.booleans(),
)
FRAME = st.tuples(
    st.sampled_from([0x0, 0x1, 0x1, 0x2, 0x3, 0x7, 0x8, 0x9, 0xA, 0xB, 0xF]),
    st.booleans(),
    st.sampled_from([0, 0, 0, 1, 2, 4, 7]),
    st.sampled_from([True, True, True, False]),
    st.binary(max_size=200) | PACKET.map(lambda p: p.encode("utf-8", "surrogatepass")),
    st.sampled_from([None, None, None, None, 2**63 - 1, FRAME_BYTES + 1, 2**32]),
)
WS_FRAMES = st.builds(WsFrames, st.lists(FRAME, min_size=1, max_size=3), st.booleans())
POLLING_BODIES = st.builds(
    PollingBody,
    st.lists(PACKET, min_size=1, max_size=5).map(
        lambda ps: "\x1e".join(ps).encode("utf-8", "surrogatepass")
    )
    | st.binary(max_size=200)
    | st.text(max_size=30).map(lambda t: ("b" + t).encode("utf-8", "surrogatepass"))
    | st.binary(max_size=60).map(lambda b: b"b" + base64.b64encode(b))
    | st.sampled_from([b"", b"\x1e", b"\x1e\x1e", b"4" + b"x" * (FRAME_BYTES + 1), b"\xff\xfe"]),
    st.none() | st.sampled_from(["text/plain;charset=UTF-8", "application/octet-stream", "x/y"]),
    st.booleans(),
)
UPGRADES = st.builds(
    Upgrade,
    st.lists(st.sampled_from(["2probe", "5", "2probe", "5", "3", "6", "2"]) | PACKET, max_size=4),
    st.booleans(),
)
CASES = st.one_of(WS_PACKETS, WS_PACKETS, POLLING_BODIES, HANDSHAKES, WS_FRAMES, UPGRADES)


# ---- the run --------------------------------------------------------------------------------


class WorkerLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = self.offset = path.stat().st_size

    def new(self) -> str:
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        return data.decode("utf-8", "replace")

    def growth(self) -> int:
        return self.path.stat().st_size - self.start


def assert_no_stack_text(ex: Exchange) -> None:
    sent = ex.text_sent()
    for chunk in ex.received:
        text = chunk.decode("utf-8", "replace")
        for match in STACK_TEXT.finditer(text):
            if match.group(0) not in sent:  # an echo of the input is not a leak
                pytest.fail(f"stack text {match.group(0)!r} reached the client: {text[:300]!r}")
    bad = [s for s in ex.statuses if s >= 500]
    assert not bad, f"HTTP {bad} to a fuzzed request"


def fuzz(worker: Worker, check: Callable[[int], None], tally: Counter[str]) -> int:
    """Runs the Hypothesis search in this (non-event-loop) thread; returns the inputs run."""
    log = WorkerLog(worker.log_path)
    count = itertools.count(1)
    ran = [0]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        print_blob=True,
    )
    @given(case=CASES)
    # Inputs that found defects (fixed in chatd/engine.py), run first every time.
    @example(case=WsPackets(['4{"a":1}', "4true"], connect_first=True))  # JSON-decoded MESSAGE
    @example(case=WsPackets(["\u00b3!"], connect_first=True))  # a digit int() refuses
    @example(case=PollingBody(b"b8DqdbQ==", None, connect_first=True))  # POST after a drop
    @example(case=Handshake("", "GET", upgrade=False, origin=None, with_sid=False))
    @example(
        case=Handshake("EIO=4&transport=polling&sid=" + "x" * 5000, "POST", False, None, False)
    )
    def one(case: Any) -> None:
        n = ran[0] = next(count)
        ex = Exchange()
        outcome = case.run(worker.port, ex)
        tally[f"{type(case).__name__}: {outcome}"] += 1
        assert_no_stack_text(ex)
        new = log.new()
        problem = LOG_PROBLEM.search(new)
        assert problem is None, f"the worker logged a problem:\n{new[-3000:]}"
        if n % CHECK_EVERY == 0:
            check(n)

    if SEED is not None:  # pragma: no cover - only by hand
        one = seed(int(SEED))(one)
    one()
    return ran[0]


@pytest.fixture
def fuzz_worker(start_worker: Callable[..., Worker], services: Services) -> Iterator[Worker]:
    """A worker of its own (its log holds only the fuzz), on a database of its own: fuzzed
    joins may create rooms that other tests' checks of the whole database do not expect."""
    database = f"{services.mongo_db}_fuzz"
    worker = start_worker(worker_id=3, CHATD_MONGO_DB=database, **FUZZ_ENV)
    yield worker
    worker.stop()
    mongo: MongoClient[dict[str, Any]] = MongoClient(services.mongo_url)
    with contextlib.suppress(Exception):
        mongo.drop_database(database)
    mongo.close()


async def test_malformed_protocol_input_never_crashes_leaks_or_floods(
    fuzz_worker: Worker, client: Callable[..., Any], room: str
) -> None:
    worker = fuzz_worker
    loop = asyncio.get_running_loop()
    over_ws = await client(worker.url, transports=["websocket"])
    over_polling = await client(worker.url, transports=["polling"])
    await over_ws.join(room, "good-ws")
    await over_polling.join(room, "good-polling")

    async def still_chatting(tag: str) -> None:
        for sender, reader in ((over_ws, over_polling), (over_polling, over_ws)):
            text = f"{tag} from {sender.sio.transport()}"
            assert (await sender.send(room, text))["ok"]
            await reader.wait_for(
                "chatMessage", lambda ms, t=text: any(m["message"] == t for m in ms)
            )
        newcomer = await client(worker.url)
        await newcomer.join(room, f"new-{tag}")
        assert (await newcomer.send(room, f"{tag} from a newcomer"))["ok"]
        await newcomer.sio.disconnect()
        assert over_ws.sio.connected and over_polling.sio.connected

    def check(n: int) -> None:
        assert worker.proc is not None and worker.proc.poll() is None, "the worker died"
        assert http_get(worker.url + "/readyz", timeout=5)[0] == 200
        asyncio.run_coroutine_threadsafe(still_chatting(f"check{n}"), loop).result(30)

    tally: Counter[str] = Counter()
    log = WorkerLog(worker.log_path)
    started = time.monotonic()
    ran = await asyncio.to_thread(fuzz, worker, check, tally)
    elapsed = time.monotonic() - started
    await asyncio.to_thread(check, ran)
    print(
        f"fuzz: {ran} inputs in {elapsed:.1f} s, worker log +{log.growth()} bytes; outcomes "
        f"{dict(sorted(tally.items()))}"
    )
    assert sum(v for k, v in tally.items() if k.endswith(("dropped", "refused"))) > 0
    assert sum(v for k, v in tally.items() if k.endswith("answering")) > 0
    text = log.path.read_bytes()[log.start :].decode("utf-8", "replace")
    assert LOG_PROBLEM.search(text) is None, text[-3000:]
    assert log.growth() <= LOG_BYTES_PER_INPUT * ran, (log.growth(), ran, text[-3000:])
    assert max((len(line) for line in text.splitlines()), default=0) <= LOG_LINE_MAX_CHARS
