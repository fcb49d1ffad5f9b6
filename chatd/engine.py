"""The one place that reaches into python-socketio, python-engineio and Tornado internals.

Everything here changes how the stock libraries treat a hostile or slow client; the rest of
chatd uses the public `socketio.AsyncServer` API and reads as if the libraries did this
themselves:

- every session's queued output is bounded in bytes (`limits.outbuf_bytes`) on both
  transports, and one long-polling response carries at most `limits.frame_bytes`;
- a polling session that stops polling is closed after ping interval + ping timeout;
- a WebSocket upgrade that Engine.IO would refuse after the 101 is refused before it;
- packets that cannot be decoded, and events named like the server's own (`connect`,
  `disconnect`, ...), drop the connection with one bounded log line;
- session ids carry the worker's prefix and nothing guessable after it;
- a WebSocket session has no send queue, writer task or reader loop: packets are framed and
  written where they are sent, frames reach the session as Tornado reads them, pings run on
  one wheel per worker (`ChatSocket`, `socket_handler`);
- a room emit is encoded and framed once and handed to every local member in one loop, with
  no task per recipient (`FastFanOut`).

The versions these assumptions were checked against are pinned in setup.cfg and checked at
start (`check_versions`); tests/unit/test_engine_contract.py tests each assumption.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

import engineio
import engineio.async_socket
import engineio.payload
import orjson
import socketio
import tornado.websocket
from engineio import packet as eio_packet
from tornado.iostream import StreamClosedError

from chatd import wsframe
from chatd.logbudget import LOG_LINE_MAX_CHARS, LogBudget, bounded
from chatd.origins import OriginPolicy

log = logging.getLogger(__name__)

# Checked at start: the internals used below are those of these release lines.
SUPPORTED = {"python-socketio": (5, 18), "python-engineio": (4, 15), "tornado": (6, 6)}
# Stock Engine.IO answers 200 to a polling POST of more than 16 packets and discards them all:
# a client flushing its offline queue would lose messages. The byte limit still bounds a POST.
MAX_DECODE_PACKETS = 10_000
# Names the Socket.IO protocol or its clients give a meaning of their own: a client event of
# one of these names would run the server's lifecycle handlers.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
PING_TICK_SECS = 1.0
# The wheel ticks this long after each whole second, so that a slot is never served early.
PING_TICK_SLACK_SECS = 0.005
# What `sio.get_environ(sid)` and the connect handler see of the handshake request.
KEPT_ENVIRON = ("REQUEST_METHOD", "QUERY_STRING", "REMOTE_ADDR", "HTTP_ORIGIN", "tornado.handler")
SID_RANDOM_BYTES = 16
# Engine.IO packets a client may send: CLOSE, PONG, MESSAGE, UPGRADE; PING only as the
# upgrade probe.
CLIENT_PACKET_TYPES = frozenset(
    {eio_packet.CLOSE, eio_packet.PONG, eio_packet.MESSAGE, eio_packet.UPGRADE}
)


def check_versions() -> None:
    """Refuse to start on a library release line whose internals were not checked."""
    wrong = []
    for name, (major, minor) in SUPPORTED.items():
        found = tuple(int(p) for p in version(name).split(".")[:2])
        if found != (major, minor):
            wrong.append(f"{name} {version(name)} (chatd supports {major}.{minor}.x)")
    if wrong:
        raise RuntimeError("unsupported library versions: " + ", ".join(wrong))


def configure() -> None:
    engineio.payload.Payload.max_decode_packets = MAX_DECODE_PACKETS
    # Given no logger of their own (logger=False), the libraries set these to ERROR and add
    # a stderr handler when their level is unset, so every error came out twice, once without
    # chatd's format. Set here first, they keep that level and log through chatd's handlers.
    for name in ("engineio.server", "socketio.server"):
        library_log = logging.getLogger(name)
        if library_log.level == logging.NOTSET:
            library_log.setLevel(logging.ERROR)
    for name in ("tornado.access", "tornado.general"):
        library_log = logging.getLogger(name)
        if not any(isinstance(f, _LibraryLines) for f in library_log.filters):
            library_log.addFilter(_LibraryLines(name))


class FastJson:
    """orjson behind the `json` module interface python-socketio and python-engineio call
    (`dumps(obj, separators=...)`, `loads(text)`): about 5 times faster than the standard
    library on the socket path and the bus. A document nested deeper than orjson's 1,024
    levels is refused like malformed JSON."""

    JSONDecodeError = orjson.JSONDecodeError

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(text: str | bytes) -> Any:
        return orjson.loads(text)


class ChatPacket(socketio.packet.Packet):  # type: ignore[misc]
    """Socket.IO's packet with the same binary test done without a list and a reduce per level
    of the payload: the stock one, run twice per emit, was 7 % of a busy worker's time."""

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, (bytes, bytearray)):
                return True
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                stack.extend(item.values())
        return False


class _RefusalLog(LogBudget):
    def __call__(self, what: str, sid: str, detail: object) -> None:
        if self.admit():
            log.info("%s from %s: %s; disconnecting", what, sid, bounded(detail))

    def request(self, why: str) -> None:
        """An Engine.IO request refused with a 400 (bad version, transport or session)."""
        if self.admit():
            log.info("Engine.IO request refused: %s", bounded(why))


refused = _RefusalLog("protocol refusals", log)
# A client that opens polling sessions and walks away costs one line each otherwise.
idle_closes = LogBudget("closed polling sessions", log)


class _LibraryLines(logging.Filter):
    """Tornado writes a line for every refused request: `tornado.access` each 4xx with its
    whole URI (up to the 64 KB header limit), `tornado.general` each malformed HTTP message or
    WebSocket handshake. Below ERROR, at most LOG_LINES_PER_WINDOW of them pass per window,
    each cut to LOG_LINE_MAX_CHARS; errors (5xx, uncaught exceptions) all pass, whole."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.budget = LogBudget(f"{name} lines", log)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        if not self.budget.admit():
            return False
        text = record.getMessage()
        if len(text) > LOG_LINE_MAX_CHARS:
            record.msg, record.args = text[:LOG_LINE_MAX_CHARS] + "...", ()
        return True


def malformed_frame(message: str | bytes) -> str | None:
    """Why a WebSocket frame is not an Engine.IO packet a client may send, or None. Checked
    before Engine.IO decodes it, which raises on such frames outside any handler."""
    if isinstance(message, bytes):
        return None  # a binary MESSAGE: Socket.IO refuses it with the other binary packets
    # ASCII digits only: str.isdigit() is true of "³" and other digits int() refuses.
    if not message or not "0" <= message[0] <= "9":
        return "not an Engine.IO packet"
    kind = int(message[0])
    if kind in CLIENT_PACKET_TYPES or message == "2probe":
        return None
    return f"Engine.IO packet type {kind} is not one a client sends"


def _packet_bytes(item: Any) -> int:
    """UTF-8 bytes of a queued packet, worked out once per packet: a broadcast queues the same
    packet object for every member."""
    if item is None:
        return 0
    size: int | None = getattr(item, "chatd_bytes", None)
    if size is None:
        data = item.data
        if isinstance(data, str):
            size = len(data) if data.isascii() else len(data.encode())
        else:
            size = len(data) if isinstance(data, bytes) else 64
        item.chatd_bytes = size
    return size


def frame_of(pkt: Any) -> bytes:
    """The WebSocket frame of a packet, built once: a broadcast hands the same packet object
    to every member."""
    framed: bytes | None = getattr(pkt, "chatd_frame", None)
    if framed is None:
        framed = pkt.chatd_frame = wsframe.frame(pkt.encode())
    return framed


PING = eio_packet.Packet(eio_packet.PING)
NOOP = eio_packet.Packet(eio_packet.NOOP)
PONG_PROBE_FRAME = wsframe.frame(eio_packet.Packet(eio_packet.PONG, data="probe").encode())


class ByteQueue(asyncio.Queue[Any]):
    """An Engine.IO send queue that knows how many bytes it holds."""

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self.bytes = 0

    def _put(self, item: Any) -> None:
        self.bytes += _packet_bytes(item)
        super()._put(item)

    def _get(self) -> Any:
        item = super()._get()
        self.bytes -= _packet_bytes(item)
        return item

    def next_bytes(self) -> int | None:
        """Size of the packet a `get_nowait` would return, or None when empty."""
        items: deque[Any] = self._queue  # type: ignore[attr-defined]
        return _packet_bytes(items[0]) if items else None


class ChatSocket(engineio.async_socket.AsyncSocket):  # type: ignore[misc]
    """One Engine.IO session whose unsent output is bounded on every transport.

    Over WebSocket there is no queue and no writer task: once the WebSocket carries the
    session (`self.ws`), every packet is framed and written to the connection's stream where
    it is sent, so a broadcast costs each member one buffer write and order is the order of
    the calls. Tornado's write buffer, capped at `limits.outbuf_bytes`, is the bound. Pings
    are timers, not tasks. Long-polling sessions keep Engine.IO's queue, bounded in bytes.
    """

    _queue: ByteQueue | None = None

    def __init__(self, server: ChatEngine, sid: str) -> None:
        super().__init__(server, sid)
        self.cut = False
        self.polls = 0  # long-polling GETs in flight
        self.last_poll = time.monotonic()
        self.ws: Any = None  # the SocketHandler carrying the session, once it does
        self.ws_pending: Any = None  # a WebSocket between the upgrade's probe and its UPGRADE
        self.probed = False

    @property
    def queue(self) -> ByteQueue:
        """The long-polling transport's queue, made when first used: a session the WebSocket
        carries has none."""
        if self._queue is None:
            self._queue = ByteQueue()
        return self._queue

    @queue.setter
    def queue(self, _: Any) -> None:
        self._queue = None  # Engine.IO's own, unbounded one is not used

    def deliver(self, pkt: Any) -> None:
        """Send one packet now, without waiting: written to the WebSocket, or queued for
        the next poll."""
        if self.cut or self.closed:
            return
        if self.ws is not None:
            self.ws.write_frame(frame_of(pkt))
            return
        queue: ByteQueue = self.queue
        if queue.bytes + _packet_bytes(pkt) > self.server.outbuf_bytes:
            self.cut = True
            log.warning(
                "slow consumer %s (polling): over %d bytes unsent, closing",
                self.sid,
                self.server.outbuf_bytes,
            )
            # Not awaited here: this runs inside event handlers of this very session, and
            # closing runs its disconnect handler, which waits for them.
            self.server.start_background_task(self._close_cut)
            return
        queue.put_nowait(pkt)

    async def send(self, pkt: Any) -> None:
        if self.closed:
            return
        if self.ws is None and not await self.check_ping_timeout():
            return
        self.deliver(pkt)

    def schedule_ping(self) -> None:
        # Engine.IO sleeps in a task per session between pings; the server's wheel holds a
        # reference instead.
        if self.last_ping:
            self.last_ping = None
            self.server.pings.add(self, self.server.ping_interval)

    def ping_due(self) -> None:
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self.deliver(PING)
            self.server.pong_deadlines.add(self, self.server.ping_timeout)

    def pong_overdue(self) -> None:
        """A ping timeout after a PING: closed now if no PONG came, rather than at the
        heartbeat check's next round (up to another ping timeout later), so a client that
        vanished is gone within ping interval + ping timeout."""
        last = self.last_ping
        overdue = last is not None and time.time() - last > self.server.ping_timeout
        if overdue and not self.closing and not self.closed:
            self.server.start_background_task(self.check_ping_timeout)

    upgraded: bool
    connected: bool
    last_ping: float | None

    async def _websocket_handler(self, ws: Any) -> None:
        """Engine.IO's WebSocket transport without its reader loop and writer task: the
        handler passes each frame to `on_frame` as Tornado reads it, and writes go straight
        to the stream. Returns at once; the connection lives on in the handler."""
        handler = ws.tornado_handler
        handler.sock = self
        if self.connected:  # an upgrade from polling: the probe and UPGRADE come as frames
            self.upgrading = True
            self.ws_pending = handler
            return
        self.connected = True
        self._carry(handler)

    def _carry(self, handler: Any) -> None:
        """From now on the WebSocket carries the session. What the polling transport still
        holds is written first, in order."""
        self.upgraded = True
        self.upgrading = False
        self.ws_pending = None
        queue: ByteQueue = self.queue
        while not queue.empty():
            pkt = queue.get_nowait()
            queue.task_done()
            if pkt is not None:
                handler.write_frame(frame_of(pkt))
        if self.polls:  # a long-poll still waiting is answered, not left to time out
            queue.put_nowait(NOOP)
        else:
            self._queue = None
        self.ws = handler

    async def on_frame(self, handler: Any, message: str | bytes) -> None:
        if handler is self.ws_pending:
            self._upgrade_step(handler, message)
            return
        if handler is not self.ws:
            return
        try:
            await self.receive(eio_packet.Packet(encoded_packet=message))
        except engineio.exceptions.SocketIsClosedError:
            handler.close()
        except engineio.exceptions.UnknownPacketError:
            refused("packet no client sends", self.sid, message[:32])
            handler.close(1002, "protocol error")

    def _upgrade_step(self, handler: Any, message: str | bytes) -> None:
        if not self.probed and message == "2probe":
            self.probed = True
            handler.write_frame(PONG_PROBE_FRAME)
            self.deliver(NOOP)  # ends the long-poll in flight; the client then sends UPGRADE
        elif self.probed and message == "5":
            self._carry(handler)
        else:
            refused("failed WebSocket upgrade", self.sid, message[:32])
            self._upgrade_failed(handler)
            handler.close(1002, "protocol error")

    def _upgrade_failed(self, handler: Any) -> None:
        if handler is self.ws_pending:
            self.ws_pending = None
            self.upgrading = False
            self.probed = False

    def transport_closed(self, handler: Any) -> None:
        """The WebSocket went away (either side closed it, or its stream failed)."""
        if handler is self.ws_pending:
            self._upgrade_failed(handler)  # the session goes on polling
        elif handler is self.ws:
            self.server.start_background_task(self._transport_closed)

    async def _transport_closed(self) -> None:
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        if self.server.sockets.get(self.sid) is self:
            del self.server.sockets[self.sid]

    def end_transport(self) -> None:
        """Close the connection now, not at the next heartbeat."""
        handler = self.ws or self.ws_pending
        if handler is not None:
            handler.close()
        else:
            self.queue.put_nowait(None)  # ends a waiting long-poll

    async def _close_cut(self) -> None:
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
        queue: ByteQueue = self.queue
        while not queue.empty():
            queue.get_nowait()
            queue.task_done()
        queue.put_nowait(None)  # ends a waiting long-poll or the WebSocket writer

    async def poll(self) -> list[Any]:
        """Like Engine.IO's, but one response carries at most `frame_bytes` (always at least
        one packet); the rest waits for the next poll."""
        queue: ByteQueue = self.queue
        try:
            first = await asyncio.wait_for(
                queue.get(), self.server.ping_interval + self.server.ping_timeout
            )
            queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise engineio.exceptions.QueueEmpty() from None
        if first is None:
            return []
        packets = [first]
        size = _packet_bytes(first)
        while True:
            following = queue.next_bytes()
            if following is None or size + following > self.server.frame_bytes:
                break
            pkt = queue.get_nowait()
            queue.task_done()
            if pkt is None:
                queue.put_nowait(None)
                break
            packets.append(pkt)
            size += following
        return packets

    async def receive(self, pkt: Any) -> None:
        if pkt.packet_type not in CLIENT_PACKET_TYPES:
            raise engineio.exceptions.UnknownPacketError()
        await super().receive(pkt)

    async def handle_post_request(self, environ: dict[str, Any]) -> None:
        """A POST that is not a well-formed payload of client packets ends the session, with
        one log line and a 400 (Engine.IO's EngineIOError path), not a traceback and a 200."""
        try:
            await super().handle_post_request(environ)
        except (ValueError, UnicodeDecodeError, engineio.exceptions.UnknownPacketError) as exc:
            refused("malformed polling payload", self.sid, type(exc).__name__)
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
            raise engineio.exceptions.EngineIOError() from None

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        if reason == self.server.reason.PING_TIMEOUT and not (self.closed or self.closing):
            self.server.on_timed_out("websocket" if self.upgraded else "polling")
        # Waiting means waiting for the send queue to drain, which never happens on a polling
        # client that has stopped polling: its request, and its memory, would hang forever.
        # Over WebSocket nothing is queued: the CLOSE packet is written before the socket
        # closes.
        await super().close(wait=False, abort=abort, reason=reason)
        if self.ws is not None:
            self.ws.close()

    async def handle_get_request(self, environ: dict[str, Any]) -> Any:
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            return await super().handle_get_request(environ)  # the WebSocket, not a poll
        self.polls += 1
        try:
            return await super().handle_get_request(environ)
        finally:
            self.polls -= 1
            self.last_poll = time.monotonic()

    async def check_ping_timeout(self) -> bool:
        # A long-polling client that stops polling never reads its pings, yet blind PONGs
        # would keep it alive forever: it is gone once it has not polled for a heartbeat.
        idle = time.monotonic() - self.last_poll
        heartbeat = self.server.ping_interval + self.server.ping_timeout
        if not self.upgraded and not self.polls and idle > heartbeat and not self.closed:
            if idle_closes.admit():
                log.info("%s stopped polling %.0f s ago: closing", self.sid, idle)
            await self.close(wait=False, abort=True, reason=self.server.reason.PING_TIMEOUT)
            return False
        return bool(await super().check_ping_timeout())


class PingWheel:
    """Calls `due(sock)` for each session when its time comes, to the second: one timer for
    the server instead of a sleeping task (or a timer) per session. `early`: at most a second
    before its time (a PING, which must not come later than the client expects it); else at
    most a second after it (a deadline, which must not pass early)."""

    def __init__(self, due: Callable[[ChatSocket], None], early: bool) -> None:
        self._call = due
        self._round = math.floor if early else math.ceil
        self._due: dict[int, list[ChatSocket]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, sock: ChatSocket, delay: float) -> None:
        slot = self._round(time.monotonic() + delay)
        self._due.setdefault(slot, []).append(sock)
        if self._timer is None:
            self._arm()

    def _arm(self) -> None:
        # On whole seconds, so that a slot is served when it comes, not up to a tick later.
        now = time.monotonic()
        wait = math.floor(now) + PING_TICK_SECS - now
        self._timer = asyncio.get_running_loop().call_later(wait + PING_TICK_SLACK_SECS, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = time.monotonic()
        for slot in [slot for slot in self._due if slot <= now]:
            for sock in self._due.pop(slot):
                self._call(sock)
        if self._due and self._timer is None:
            self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()


class ChatEngine(engineio.AsyncServer):  # type: ignore[misc]
    """Engine.IO server making ChatSockets, with unguessable session ids."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pings = PingWheel(ChatSocket.ping_due, early=True)
        self.pong_deadlines = PingWheel(ChatSocket.pong_overdue, early=False)
        self.connections: set[Any] = set()  # the open WebSocket handlers
        # Told the transport of each session closed because its client went silent.
        self.on_timed_out: Callable[[str], None] = lambda transport: None

    start_service_task: bool
    sid_prefix = ""
    outbuf_bytes = 1_048_576
    frame_bytes = 1_000_000

    def generate_id(self) -> str:
        return self.sid_prefix + secrets.token_urlsafe(SID_RANDOM_BYTES)

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        # Engine.IO's POST path looks the session up without catching the KeyError it raises
        # for one closed but not yet forgotten (a client `ChatServer.drop` closed, posting
        # again): a 500 with a traceback logged at ERROR, per request. Forgotten first, such
        # a POST gets Engine.IO's 400 for an unknown session, as a GET does.
        request = getattr(args[0], "request", None) if args else None
        if request is not None and request.method == "POST":
            sid = args[0].get_query_argument("sid", None)
            sock = self.sockets.get(sid) if sid else None
            if sock is not None and sock.closed:
                del self.sockets[sid]
        return await super().handle_request(*args, **kwargs)

    def _log_error_once(self, message: str, message_key: str) -> None:
        # Engine.IO logs each kind of bad request at ERROR the first time (with the client's
        # text in it, unbounded: `Invalid session <sid>`), then at INFO every time. These are
        # the client's mistakes, answered 400: one bounded, rate-limited line instead.
        refused.request(message)

    async def _handle_connect(
        self, environ: dict[str, Any], transport: str, jsonp_index: int | None = None
    ) -> Any:
        """Engine.IO's open handshake (protocol v4), with a ChatSocket for the session."""
        if self.start_service_task:  # the heartbeat monitor, started with the first client
            self.start_service_task = False
            self.service_task_handle = self.start_background_task(self._service_task)
        sid = self.generate_id()
        sock = ChatSocket(self, sid)
        self.sockets[sid] = sock
        opened = eio_packet.Packet(
            eio_packet.OPEN,
            {
                "sid": sid,
                "upgrades": self._upgrades(sid, transport),
                "pingTimeout": int(self.ping_timeout * 1000),
                "pingInterval": int(self.ping_interval + self.ping_interval_grace_period) * 1000,
                "maxPayload": self.max_http_buffer_size,
            },
        )
        await sock.send(opened)
        accepted = await self._trigger_event("connect", sid, environ, run_async=False)
        if accepted is not None and accepted is not True:
            del self.sockets[sid]
            return self._unauthorized(accepted or None)
        sock.schedule_ping()
        if transport == "websocket":
            answer = await sock.handle_get_request(environ)
            if sock.closed and sid in self.sockets:
                del self.sockets[sid]
            return answer
        sock.connected = True
        try:
            return self._ok(await sock.poll(), jsonp_index=jsonp_index)
        except engineio.exceptions.QueueEmpty:
            return self._bad_request()

    def abort_transports(self) -> None:
        """Cut every WebSocket at the TCP level, after what was written to it: no CLOSE packet
        and no disconnect handler, so clients see their transport close and reconnect by
        themselves (docs/guarantees.md L10), and the worker does not announce each of them
        leaving on its way out. Long-polling requests are cut with the HTTP server's
        connections; `end_polls` then ends what waits for them."""
        self.pings.close()
        self.pong_deadlines.close()
        for handler in list(self.connections):
            handler.abort()

    def end_polls(self) -> None:
        """End every long-poll still waiting for output, its connection already gone."""
        for sock in self.sockets.values():
            if isinstance(sock, ChatSocket) and sock.polls:
                sock.cut = True
                sock.queue.put_nowait(None)

    def upgrade_refusal(self, query: dict[str, list[str]]) -> str | None:
        """Why Engine.IO would refuse this WebSocket upgrade after its 101, or None."""
        if query.get("EIO") != ["4"]:
            return "unsupported Engine.IO protocol version"
        if query.get("transport") != ["websocket"]:
            return "a WebSocket upgrade must say transport=websocket"
        if "j" in query:
            return "JSONP is for polling only"
        sids = query.get("sid")
        if sids is None:
            return None
        sock = self.sockets.get(sids[0])
        if sock is None or sock.closed or sock.closing:
            return "unknown session"
        if not sock.connected or sock.upgraded or sock.upgrading:
            return "this session cannot be upgraded now"
        return None


class ChatServer(socketio.AsyncServer):  # type: ignore[misc]
    """Socket.IO server on ChatEngine that drops clients sending what no correct client
    sends, instead of logging a traceback per packet and keeping them."""

    # Called with the sid once a connection is accepted and the client told so: the first
    # place where an emit to it arrives after its CONNECT packet.
    after_connect: Callable[[str], Awaitable[None]] | None = None

    def _engineio_server_class(self) -> type[ChatEngine]:
        return ChatEngine

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        await super()._handle_connect(eio_sid, namespace, data)
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace or "/")
        if sid is not None and self.after_connect is not None:
            await self.after_connect(sid)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        # Socket.IO keeps the environ of every connection for its lifetime; the whole of it
        # (every header, and a class the Tornado driver makes per request) is ~4 KB. The
        # request stays reachable through its handler.
        kept = {key: environ[key] for key in KEPT_ENVIRON if key in environ}
        await super()._handle_eio_connect(eio_sid, kept)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        # Binary packets are refused: the chat protocol is JSON only. Engine.IO hands over a
        # MESSAGE whose text parses as JSON (`4{}`, `4[1]`, `4true`, `4null`) decoded: no
        # Socket.IO packet is one, and slicing it for the log line raised TypeError.
        if isinstance(data, bytes) or (isinstance(data, str) and data[:1] in ("5", "6")):
            await self.drop(eio_sid, "binary packet", data[:32])
            return
        if not isinstance(data, str):
            await self.drop(eio_sid, "malformed packet", f"JSON {type(data).__name__}")
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, RecursionError, TypeError, KeyError, IndexError) as exc:
            # A 100k-deep JSON array raises RecursionError in the decoder.
            await self.drop(eio_sid, f"malformed packet ({type(exc).__name__})", data[:64])

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            await self.drop(eio_sid, "malformed event", data)
            return
        if data[0] in RESERVED_EVENTS:
            await self.drop(eio_sid, "reserved event name", data[0])
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def drop(self, eio_sid: str, why: str, what: Any) -> None:
        refused(why, eio_sid, what)
        # Left in `sockets`: Engine.IO forgets a closed socket by itself, and the rest of the
        # request that carried this packet needs to find it there.
        sock = self.eio.sockets.get(eio_sid)
        if sock is None or sock.closed:
            return
        # wait=False: waiting for the send queue to drain hangs on a polling client that does
        # not poll.
        await sock.close(wait=False, reason=self.eio.reason.SERVER_DISCONNECT)
        sock.end_transport()


class FastFanOut(socketio.AsyncManager):  # type: ignore[misc]
    """Local delivery of an emit: encoded and framed once, handed to every member's socket
    in one loop, with no task per recipient.

    Stock python-socketio starts a task per recipient, each of which queues the packet for
    the recipient's writer task. Mixed in under a pub/sub manager
    (`class M(AsyncRedisManager, FastFanOut)`), this is the `emit` its `super()` calls reach,
    both for what the bus brings and for `ignore_queue` emits.
    """

    # Asked before each local delivery of a single-argument emit, with (event, data, room):
    # returns the (event, payload) pairs to deliver now, in order ([(event, data)] to deliver
    # it as it is, [] to hold or drop it, more to release what it held).
    admit: Callable[[str, Any, Any], list[tuple[str, Any]]] | None = None

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if isinstance(data, tuple):
            args = list(data)
        elif data is not None:
            args = [data]
        else:
            args = []
        if callback is not None or ChatPacket.data_is_binary(args):
            await super().emit(event, data, namespace, room, skip_sid, callback, **kwargs)
            return
        if namespace not in self.rooms:
            return
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        if self.admit is None or len(args) != 1:
            self._fan_out(event, args, namespace, room, skip)
            return
        for admitted, payload in self.admit(event, data, room):
            self._fan_out(admitted, [payload], namespace, room, skip)

    def deliver_now(
        self, deliveries: list[tuple[str, Any]], room: Any, namespace: str = "/"
    ) -> None:
        """Deliver each (event, payload) to this worker's members of `room`, in order,
        without asking `admit` (for what it released itself)."""
        if namespace in self.rooms:
            for event, payload in deliveries:
                self._fan_out(event, [payload], namespace, room, [None])

    def _fan_out(
        self, event: str, args: list[Any], namespace: str, room: Any, skip: list[Any]
    ) -> None:
        encoded = self.server.packet_class(
            socketio.packet.EVENT, namespace=namespace, data=[event, *args], binary=False
        ).encode()
        pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        sockets = self.server.eio.sockets
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            sock = sockets.get(eio_sid)
            if sock is not None:
                sock.deliver(pkt)


def make_server(
    client_manager: Any,
    origins: OriginPolicy,
    sid_prefix: str,
    frame_bytes: int,
    outbuf_bytes: int,
    ping_interval: int,
    ping_timeout: int,
    on_timed_out: Callable[[str], None] | None = None,
) -> ChatServer:
    def cors_allowed(origin: str | None, environ: dict[str, Any]) -> bool:
        return origins.allows(origin, environ.get("HTTP_HOST"))

    sio = ChatServer(
        async_mode="tornado",
        client_manager=client_manager,
        cors_allowed_origins=cors_allowed,
        max_http_buffer_size=frame_bytes,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        logger=False,
        engineio_logger=False,
        serializer=ChatPacket,
        json=FastJson,
    )
    sio.eio.sid_prefix = sid_prefix
    sio.eio.outbuf_bytes = outbuf_bytes
    sio.eio.frame_bytes = frame_bytes
    if on_timed_out is not None:
        sio.eio.on_timed_out = on_timed_out
    return sio


def socket_handler(sio: ChatServer, origins: OriginPolicy, outbuf_bytes: int) -> type[Any]:
    """The Tornado handler of /socket.io/."""
    base: type[Any] = socketio.get_tornado_handler(sio)
    engine: ChatEngine = sio.eio
    turn = wsframe.Turn()

    class SocketHandler(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.receive_queue = None  # frames go to the session as they are read
            self.sock: ChatSocket | None = None
            self.pending: list[bytes] | None = None  # frames written this event-loop turn
            # Kept past `ws_connection`, which Tornado drops as soon as a close begins, while
            # the connection lives on until the client answers it (or for 5 s).
            self.tcp: Any = None

        def prepare(self) -> None:
            # Before Engine.IO and before Tornado's own WebSocket origin check, which skips
            # requests claiming `Sec-Fetch-Site: same-origin` and compares case-insensitively.
            if not origins.allows(self.request.headers.get("Origin"), self.request.host):
                self.set_status(403)
                self.finish("origin not allowed")

        async def get(self, *args: Any, **kwargs: Any) -> None:
            args = self.request.arguments.items()
            query = {k: [v.decode("latin-1") for v in vs] for k, vs in args}
            if self.request.headers.get("Upgrade", "").lower() == "websocket":
                # Engine.IO would answer these after the 101 by leaving the socket open and
                # silent, with an unbounded inbound queue; refuse them before upgrading.
                refusal = engine.upgrade_refusal(query)
                if refusal is not None:
                    self.set_status(400)
                    self.finish(refusal)
                    return
                # Tornado's, not the Engine.IO handler's wrapper of it: this coroutine lives as
                # long as the connection, and each layer of it costs every connection memory.
                await tornado.websocket.WebSocketHandler.get(self, *args, **kwargs)
                return
            await super().get(*args, **kwargs)

        async def open(self, *args: Any, **kwargs: Any) -> None:
            # Tornado's write buffer is unbounded, so a client that stops reading would grow
            # the worker by the room's whole traffic until the ping timeout. Capped, it is
            # cut (`write_frame`).
            if self.ws_connection is not None:
                self.tcp = self.ws_connection.stream
                self.tcp.max_write_buffer_size = outbuf_bytes
            # Without TCP_NODELAY an ack written right after a broadcast waits for the client's
            # delayed ACK: about 40 ms on every sequential send.
            self.set_nodelay(True)
            engine.connections.add(self)
            # Engine.IO's handler starts a task for this; it returns as soon as the session is
            # taken (ChatSocket._websocket_handler), and Tornado holds frames until it has.
            await engine.handle_request(self)

        def abort(self) -> None:
            """Close the TCP connection after what was written, leaving the session alone."""
            self.sock = None
            self.flush_frames()
            if self.tcp is not None:
                self.tcp.close()

        def write_frame(self, data: bytes) -> None:
            """Queue one frame; what the turn queued leaves together at its end."""
            pending = self.pending
            if pending is None:
                self.pending = [data]
                turn.at_end(self.flush_frames)
            else:
                pending.append(data)

        def flush_frames(self) -> None:
            frames, self.pending = self.pending, None
            connection = self.ws_connection
            if not frames or connection is None or connection.is_closing():
                return
            try:
                wsframe.write(
                    connection.stream, frames[0] if len(frames) == 1 else b"".join(frames)
                )
            except wsframe.SlowConsumer:
                log.warning(
                    "slow consumer %s from %s: over %d bytes unsent, closing",
                    self.sock.sid if self.sock is not None else "-",
                    self.request.remote_ip,
                    outbuf_bytes,
                )
            except StreamClosedError:
                pass  # on_close follows

        def close(self, code: int | None = None, reason: str | None = None) -> None:
            self.flush_frames()  # what was written before the close goes before it
            super().close(code, reason)

        async def on_message(self, message: str | bytes) -> None:
            problem = malformed_frame(message)
            if problem is not None:
                refused(problem, self.get_query_argument("sid", "-") or "-", message[:32])
                self.close(1002, "protocol error")
                return
            if self.sock is None:  # Engine.IO refused the session in open()
                self.close(1011, "no session")
                return
            # Awaited by Tornado before it reads the next frame: a client that sends faster
            # than its packets are handled is read more slowly, not buffered.
            await self.sock.on_frame(self, message)

        async def get_next_message(self) -> Any:
            raise RuntimeError("frames go to ChatSocket.on_frame")

        def on_close(self) -> None:
            engine.connections.discard(self)
            if self.sock is not None:
                self.sock.transport_closed(self)

        def check_origin(self, origin: str) -> bool:
            return origins.allows(origin, self.request.host)

        def get_compression_options(self) -> dict[str, Any] | None:
            # permessage-deflate costs ~150 KB per idle connection and invites CRIME-style
            # attacks; chat messages are small.
            return None

    return SocketHandler
