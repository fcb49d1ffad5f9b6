"""Builds one worker (Tornado app + Socket.IO server) and owns its start-up and shutdown order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from typing import Any

import engineio.payload
import socketio
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamBufferFullError
from tornado.websocket import WebSocketClosedError

from chatd import http
from chatd.bus import ChatRedisManager, Presence
from chatd.chat import Chat
from chatd.config import Settings
from chatd.errors import Unavailable
from chatd.events import Events
from chatd.log import startup_line
from chatd.metrics import Metrics
from chatd.store import Store

log = logging.getLogger(__name__)

# Stock Engine.IO answers 200 to a polling POST of more than 16 packets and discards them all
# (RELIABILITY.md finding 12): a client flushing its offline queue would lose messages. The
# byte limit (limits.frame_bytes) still bounds the POST.
engineio.payload.Payload.max_decode_packets = 10_000
INDEX_RETRY_MAX_SECS = 5.0
CLOSE_TIMEOUT_SECS = 2.0


@dataclass
class WorkerState:
    draining: bool = False


@dataclass
class Worker:
    app: tornado.web.Application
    sio: socketio.AsyncServer
    store: Store
    manager: ChatRedisManager
    presence: Presence
    events: Events
    metrics: Metrics
    state: WorkerState
    chat: Chat


def origin_allowed(origin: str | None, host: str | None, extra: list[str]) -> bool:
    """Same-origin, or listed in server.cors_origins. No Origin header (non-browser clients)
    is allowed: origin checks stop cross-site pages, they are not authentication."""
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if host and origin in (f"http://{host}", f"https://{host}"):
        return True
    return origin in extra


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def socket_handler(
    sio: socketio.AsyncServer, extra_origins: list[str], outbuf_bytes: int
) -> type[Any]:
    base: type[Any] = socketio.get_tornado_handler(sio)

    class SocketHandler(base):  # type: ignore[misc]
        async def get(self, *args: Any, **kwargs: Any) -> None:
            # Engine.IO rejects other protocol versions only after the 101 and then leaves the
            # socket open and idle (RELIABILITY.md finding 5); refuse them before upgrading.
            if self.get_query_argument("EIO", None) != "4":
                self.set_status(400)
                self.finish("unsupported Engine.IO protocol version")
                return
            await super().get(*args, **kwargs)

        async def open(self, *args: Any, **kwargs: Any) -> None:
            # Tornado's write buffer is unbounded and Engine.IO ignores flow control, so a
            # client that stops reading would grow the worker by the room's whole traffic
            # until the ping timeout (RELIABILITY.md finding 7). Cap it and cut the client.
            if self.ws_connection is not None:
                self.ws_connection.stream.max_write_buffer_size = outbuf_bytes
            # Without TCP_NODELAY an ack written right after a broadcast waits for the client's
            # delayed ACK: about 40 ms on every sequential send.
            self.set_nodelay(True)
            await super().open(*args, **kwargs)

        def write_message(self, message: Any, binary: bool = False) -> Any:
            try:
                sent = super().write_message(message, binary=binary)
            except StreamBufferFullError:
                log.warning(
                    "slow consumer from %s: over %d bytes unsent, closing",
                    self.request.remote_ip,
                    outbuf_bytes,
                )
                if self.ws_connection is not None:
                    self.ws_connection.stream.close()
                raise WebSocketClosedError() from None
            # Engine.IO drops this future; without a reader, every write pending when a client
            # goes away would log "Task exception was never retrieved".
            sent.add_done_callback(_retrieve_exception)
            return sent

        def check_origin(self, origin: str) -> bool:
            return origin_allowed(origin, self.request.host, extra_origins)

        def get_compression_options(self) -> dict[str, Any] | None:
            # permessage-deflate costs ~150 KB per idle connection (RELIABILITY.md finding 4)
            # and invites CRIME-style attacks; chat messages are small.
            return None

    return SocketHandler


class ChatServer(socketio.AsyncServer):  # type: ignore[misc]
    """Disconnects a client whose packet cannot be decoded, instead of logging a traceback per
    packet and keeping it (a 100k-deep JSON array raises RecursionError in the decoder).
    Binary packets are refused too: the chat protocol is JSON only."""

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if not isinstance(data, str) or data[:1] in ("5", "6"):
            await self._drop(eio_sid, "binary packet")
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, RecursionError) as exc:
            await self._drop(eio_sid, f"malformed packet ({type(exc).__name__})")

    async def _drop(self, eio_sid: str, why: str) -> None:
        log.info("%s from %s: disconnecting", why, eio_sid)
        socket = self.eio.sockets.pop(eio_sid, None)
        if socket is None:
            return
        # wait=False: waiting for the send queue to drain hangs on a polling client that does
        # not poll (RELIABILITY.md finding 3).
        await socket.close(wait=False, reason=self.eio.reason.SERVER_DISCONNECT)
        # Engine.IO only queues a CLOSE packet; ending the queue makes the WebSocket writer
        # close the connection now, not at the 45 s heartbeat (RELIABILITY.md finding 8).
        socket.queue.put_nowait(None)


def build_worker(settings: Settings) -> Worker:
    metrics = Metrics()
    store = Store(settings.mongo_url, settings.mongo_db, settings.mongo_timeout_secs)
    manager = ChatRedisManager(settings.redis_url, settings.redis_prefix, metrics)
    extra = settings.allowed_origins

    def cors_allowed(origin: str | None, environ: dict[str, Any]) -> bool:
        return origin_allowed(origin, environ.get("HTTP_HOST"), extra)

    sio = ChatServer(
        async_mode="tornado",
        client_manager=manager,
        cors_allowed_origins=cors_allowed,
        max_http_buffer_size=settings.limits_frame_bytes,
        ping_interval=settings.limits_ping_interval_secs,
        ping_timeout=settings.limits_ping_timeout_secs,
        logger=False,
        engineio_logger=False,
    )
    if settings.server_worker_id:
        # The front door routes a request carrying `sid=wN.` to worker N (sticky sessions
        # that still spread when every client shares one IP address).
        prefix = f"w{settings.server_worker_id}."
        generate = sio.eio.generate_id
        sio.eio.generate_id = lambda: prefix + generate()
    presence = Presence(
        settings.redis_url,
        settings.redis_prefix,
        manager.host_id,
        settings.redis_presence_ttl_secs,
    )

    async def emit(event: str, data: Any, room: str) -> None:
        await sio.emit(event, data, room=room)

    chat = Chat(settings, store, emit, metrics)
    events = Events(sio, chat, presence, settings, metrics)
    events.register()
    state = WorkerState()
    static = str(settings.static_path)
    wid = settings.server_worker_id
    app = tornado.web.Application(
        [
            (r"/socket.io/", socket_handler(sio, extra, settings.limits_outbuf_bytes)),
            (
                r"/api/rooms",
                http.RoomsHandler,
                {"chat": chat, "store": store, "presence": presence},
            ),
            (r"/api/rooms/([^/]+)/messages", http.RoomMessagesHandler, {"chat": chat}),
            (r"/api/limits", http.LimitsHandler, {"settings": settings}),
            (r"/healthz", http.HealthHandler, {"worker_id": wid}),
            (
                r"/readyz",
                http.ReadyHandler,
                {"store": store, "presence": presence, "worker_id": wid, "state": state},
            ),
            (r"/metrics", http.MetricsHandler, {"metrics": metrics}),
            (r"/()", http.StaticHandler, {"path": static, "default_filename": "index.html"}),
            (r"/static/(.*)", http.StaticHandler, {"path": static}),
        ],
        default_handler_class=http.NotFoundHandler,
        websocket_max_message_size=settings.limits_frame_bytes,
        websocket_ping_interval=None,
        compress_response=True,
    )
    return Worker(app, sio, store, manager, presence, events, metrics, state, chat)


async def _ensure_indexes(store: Store) -> None:
    """MongoDB may start after the worker; keep trying so a late database is not fatal."""
    delay = 0.5
    while True:
        try:
            await store.ensure_indexes()
            log.info("MongoDB indexes ready")
            return
        except Unavailable:
            await asyncio.sleep(delay)
            delay = min(delay * 2, INDEX_RETRY_MAX_SECS)


async def serve(settings: Settings) -> None:
    worker = build_worker(settings)
    server = HTTPServer(
        worker.app,
        # Equal to the Engine.IO limit: a bigger body is refused at once instead of being held
        # in memory by a hung polling request (RELIABILITY.md finding 3).
        max_body_size=settings.limits_frame_bytes,
        xheaders=settings.server_trust_proxy,
    )
    server.listen(settings.server_port, settings.server_host)
    # Start the bus listener now rather than on the first connection, so the listener metric
    # and cross-worker delivery are live from the start.
    worker.sio.manager_initialized = True
    worker.manager.initialize()
    worker.presence.start()
    indexes = asyncio.create_task(_ensure_indexes(worker.store))
    log.info("%s", startup_line(settings))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("draining: no new connections, finishing in-flight events")
    worker.state.draining = True
    server.stop()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(worker.events.idle.wait(), settings.server_drain_secs)
    indexes.cancel()
    try:
        await asyncio.wait_for(_close(worker), CLOSE_TIMEOUT_SECS)
    except TimeoutError:
        log.warning(
            "closing Redis and MongoDB took over %.0f s; exiting anyway", CLOSE_TIMEOUT_SECS
        )
    log.info("stopped")
    # Exit here, closing every client socket with the process: clients see a transport close
    # and reconnect by themselves, unlike after sio.disconnect (RELIABILITY.md finding 8).
    # os._exit also skips the event loop's wait for library tasks that ignore cancellation, so
    # a stop always ends within drain_secs + CLOSE_TIMEOUT_SECS, below stopwaitsecs.
    logging.shutdown()
    os._exit(0)


async def _close(worker: Worker) -> None:
    await worker.chat.close(CLOSE_TIMEOUT_SECS / 2)
    task = worker.manager.thread
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await worker.events.presence_fanout.close()
    await worker.manager.close()
    await worker.presence.close()
    await worker.store.close()


def run(settings: Settings) -> None:
    import uvloop

    uvloop.run(serve(settings))
