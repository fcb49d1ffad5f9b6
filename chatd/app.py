"""Builds one worker (Tornado app + Socket.IO server) and owns its start-up and shutdown order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import socketio
import tornado.web
from tornado.httpserver import HTTPServer

from chatd import engine, http, protocol
from chatd.bus import ChatRedisManager, Presence
from chatd.chat import ROOM_PREFIX, Chat
from chatd.config import Settings
from chatd.events import Events
from chatd.identity import Authenticator
from chatd.log import startup_line
from chatd.metrics import Metrics
from chatd.models import MESSAGE
from chatd.moderation import CONTROL_EVENT, Moderation
from chatd.origins import OriginPolicy
from chatd.repair import GapRepair
from chatd.seqs import Seqs
from chatd.shared_limits import IdentityLimits
from chatd.store import LayoutStore

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECS = 2.0
REDIS_POOL_SIZE = 64
# Allocations between young-generation collections, then young collections per older one. A
# young collection walks what was allocated since the last: 50,000 made 17-23 ms pauses under
# load, 10,000 about 3 ms (up to 9); 5,000 halves that again (chatd_gc_pause_seconds).
GC_THRESHOLDS = (5_000, 20, 100)
CLOSE_TIMEOUT_SECS = 2.0


@dataclass
class WorkerState:
    draining: bool = False


@dataclass
class Worker:
    app: tornado.web.Application
    sio: socketio.AsyncServer
    store: LayoutStore
    redis: aioredis.Redis
    manager: ChatRedisManager
    presence: Presence
    events: Events
    metrics: Metrics
    state: WorkerState
    chat: Chat


def event_of(payload: Any) -> str:
    """The live event a room log entry (its wire form) goes out as."""
    kind = payload.get("type", MESSAGE) if isinstance(payload, dict) else MESSAGE
    return protocol.EVENT_OF_KIND.get(kind, protocol.CHAT_MESSAGE)


def chat_admit(
    repair: GapRepair, on_control: Callable[[Any], None]
) -> Callable[[str, Any, Any], list[tuple[str, Any]]]:
    """Every entry of a room's log (message, edit, deletion) about to reach this worker's
    members of the room goes through the room's ledger; moderation notices are applied here
    and reach no client; everything else goes out as it is."""

    def admit(event: str, data: Any, room: Any) -> list[tuple[str, Any]]:
        if event == CONTROL_EVENT:
            on_control(data)
            return []
        if event not in protocol.SEQ_EVENTS or not isinstance(data, dict):
            return [(event, data)]
        seq = data.get("seq")
        if not isinstance(room, str) or type(seq) is not int:
            return [(event, data)]
        return [(event_of(p), p) for p in repair.admit(room, seq, data)]

    return admit


def build_worker(settings: Settings) -> Worker:
    metrics = Metrics()
    # A blocking pool: in a storm of joins, commands wait for a connection (up to the
    # timeout) instead of failing with "Too many connections".
    redis = aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=REDIS_POOL_SIZE,
            timeout=REDIS_TIMEOUT_SECS,
            socket_timeout=REDIS_TIMEOUT_SECS,
            socket_connect_timeout=REDIS_TIMEOUT_SECS,
        )
    )
    store = LayoutStore(
        settings.mongo_url,
        settings.mongo_db,
        settings.mongo_timeout_secs,
        settings.mongo_layout,
        redis,
        settings.redis_prefix,
        settings.redis_tail_messages,
        settings.redis_tail_ttl_secs,
    )
    seqs = Seqs(redis, settings.redis_prefix, store.max_seq)
    manager = ChatRedisManager(settings.redis_url, settings.redis_prefix, metrics, ROOM_PREFIX)
    origins = OriginPolicy(settings.allowed_origins)
    # The front door routes a request carrying `sid=wN.` to worker N (sticky sessions that
    # still spread when every client shares one IP address).
    prefix = f"w{settings.server_worker_id}." if settings.server_worker_id else ""
    sio = engine.make_server(
        manager,
        origins,
        prefix,
        frame_bytes=settings.limits_frame_bytes,
        outbuf_bytes=settings.limits_outbuf_bytes,
        ping_interval=settings.limits_ping_interval_secs,
        ping_timeout=settings.limits_ping_timeout_secs,
    )
    presence = Presence(
        settings.redis_url,
        settings.redis_prefix,
        manager.host_id,
        settings.redis_presence_ttl_secs,
    )

    async def emit(event: str, data: Any, room: str) -> None:
        await sio.emit(event, data, room=room)

    def redeliver(room: str, payloads: list[Any]) -> None:
        manager.deliver_now([(event_of(p), p) for p in payloads], room)

    async def resync(room: str) -> None:
        name = room[len(ROOM_PREFIX) :]
        await sio.emit(protocol.RESYNC, {"room": name}, room=room, ignore_queue=True)

    repair = GapRepair(store, redeliver, resync, metrics, settings.limits_replay)
    manager.on_unfollow = repair.unfollowed
    manager.on_resubscribed = repair.resubscribed
    chat = Chat(settings, store, seqs, emit, metrics, repair)
    auth = Authenticator(settings)
    mod = Moderation(store, redis, settings.redis_prefix)
    events = Events(
        sio,
        chat,
        presence,
        settings,
        metrics,
        auth,
        mod,
        IdentityLimits(redis, settings.redis_prefix),
    )
    events.register()
    manager.admit = chat_admit(repair, events.on_control)
    state = WorkerState()
    static = str(settings.static_path)
    wid = settings.server_worker_id
    app = tornado.web.Application(
        [
            (r"/socket.io/", engine.socket_handler(sio, origins, settings.limits_outbuf_bytes)),
            (
                r"/api/rooms",
                http.RoomsHandler,
                {
                    "auth": auth,
                    "chat": chat,
                    "store": store,
                    "presence": presence,
                    "origins": origins,
                },
            ),
            (
                r"/api/rooms/([^/]+)/messages",
                http.RoomMessagesHandler,
                {"auth": auth, "chat": chat},
            ),
            (
                r"/api/rooms/([^/]+)/moderation",
                http.ModerationHandler,
                {"auth": auth, "mod": mod},
            ),
            (r"/api/limits", http.LimitsHandler, {"auth": auth, "settings": settings}),
            (r"/healthz", http.HealthHandler, {"worker_id": wid}),
            (
                r"/readyz",
                http.ReadyHandler,
                {"store": store, "presence": presence, "worker_id": wid, "state": state},
            ),
            (
                r"/metrics",
                http.MetricsHandler,
                {"metrics": metrics, "allow": settings.metrics_networks},
            ),
            (r"/()", http.StaticHandler, {"path": static, "default_filename": "index.html"}),
            (r"/static/(.*)", http.StaticHandler, {"path": static}),
        ],
        default_handler_class=http.NotFoundHandler,
        websocket_max_message_size=settings.limits_frame_bytes,
        websocket_ping_interval=None,
        compress_response=True,
    )
    return Worker(app, sio, store, redis, manager, presence, events, metrics, state, chat)


def tune_gc() -> None:
    """Everything made at start-up lives as long as the process: freeze it out of the cyclic
    collector's view, and collect the young generation far less often. Stock thresholds made
    the collector walk every connection's objects every few seconds, in 60-140 ms pauses."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(settings: Settings) -> None:
    engine.check_versions()
    engine.configure()
    worker = build_worker(settings)
    server = HTTPServer(
        worker.app,
        # Equal to the Engine.IO limit: a bigger body is refused at once instead of being held
        # in memory by a hung polling request (docs/guarantees.md L4).
        max_body_size=settings.limits_frame_bytes,
        xheaders=settings.server_trust_proxy,
    )
    server.listen(settings.server_port, settings.server_host)
    # Start the bus listener now rather than on the first connection, so the listener metric
    # and cross-worker delivery are live from the start.
    worker.sio.manager_initialized = True
    worker.manager.initialize()
    tune_gc()
    worker.metrics.watch_gc()
    worker.metrics.watch_loop()
    worker.presence.start()
    await worker.store.start()
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
    try:
        await asyncio.wait_for(_close(worker), CLOSE_TIMEOUT_SECS)
    except TimeoutError:
        log.warning(
            "closing Redis and MongoDB took over %.0f s; exiting anyway", CLOSE_TIMEOUT_SECS
        )
    log.info("stopped")
    # Exit here, closing every client socket with the process: clients see a transport close
    # and reconnect by themselves, unlike after sio.disconnect (docs/guarantees.md L10).
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
    await worker.redis.aclose(close_connection_pool=True)


def run(settings: Settings) -> None:
    import uvloop

    uvloop.run(serve(settings))
