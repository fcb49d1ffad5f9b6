"""Builds one worker (Tornado app + Socket.IO server) and owns its start-up and shutdown order.

Every long-lived part has a start and a close. `serve` starts them in order on one exit stack
and, after the drain, the stack closes them in reverse, each within what is left of
CLOSE_TIMEOUT_SECS; then `serve` returns and the interpreter exits with status 0. Only a stop
that still hangs past drain + close + EXIT_MARGIN_SECS ends otherwise: the watchdog names what
it was waiting for and exits with EXIT_STUCK.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import socketio
import tornado.web
from tornado.httpserver import HTTPServer

from chatd import engine, exitreport, http, protocol, redis_conn
from chatd.bus import PRESENCE_POOL_SIZE, REDIS_SOCKET_TIMEOUT_SECS, ChatRedisManager, Presence
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
from chatd.supervisor import Restarter

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECS = 2.0
REDIS_POOL_SIZE = 64
# Allocations between young-generation collections, then young collections per older one. A
# young collection walks what was allocated since the last: 50,000 made 17-23 ms pauses under
# load, 10,000 about 3 ms (up to 9); 5,000 halves that again (chatd_gc_pause_seconds).
GC_THRESHOLDS = (5_000, 20, 100)
# After the drain: what closing every part may take in all (writer, room list, bus, presence,
# archive, connections).
CLOSE_TIMEOUT_SECS = 2.0
# A part is given at least this, even once the budget is spent, to release its connections.
CLOSE_FLOOR_SECS = 0.1
# How long the tasks the parts left get to end by themselves, and then once cancelled.
SETTLE_SECS = 0.2
# What a stop may take beyond drain_secs + CLOSE_TIMEOUT_SECS before the watchdog ends it:
# with the defaults 5 + 2 + 1.5 s, below supervisord's stopwaitsecs of 10 s.
EXIT_MARGIN_SECS = 1.5
# The status of a stop that did not close everything (EX_SOFTWARE).
EXIT_STUCK = 70


@dataclass
class WorkerState:
    draining: bool = False


@dataclass
class Worker:
    app: tornado.web.Application
    sio: socketio.AsyncServer
    store: LayoutStore
    redis: redis_conn.RedisClient
    manager: ChatRedisManager
    presence: Presence
    events: Events
    metrics: Metrics
    state: WorkerState
    chat: Chat
    repair: GapRepair


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


def redis_client_name(settings: Settings) -> str:
    """What every Redis connection of this worker calls itself (`CLIENT LIST`)."""
    return f"chatd-w{settings.server_worker_id}-{os.getpid()}"


def build_worker(settings: Settings) -> Worker:
    metrics = Metrics()
    client_name = redis_client_name(settings)
    redis = redis_conn.make_client(
        settings,
        max_connections=REDIS_POOL_SIZE,
        timeout_secs=REDIS_TIMEOUT_SECS,
        client_name=client_name,
    )
    # supervisord tells its children where it listens; the embedded FerretDB is restarted
    # through it when its writes stay refused (docs/design.md, "FerretDB's wedge").
    restarter = Restarter(
        settings.mongo_restart_program,
        os.environ.get("SUPERVISOR_SERVER_URL", ""),
        redis,
        settings.redis_prefix,
        client_name,
    )

    async def on_wedged() -> None:
        metrics.store_wedged.inc()
        await restarter.restart()

    store = LayoutStore(
        settings.mongo_url,
        settings.mongo_db,
        settings.mongo_timeout_secs,
        settings.mongo_layout,
        redis,
        settings.redis_prefix,
        settings.redis_tail_messages,
        settings.redis_tail_ttl_secs,
        on_wedged,
    )
    seqs = Seqs(redis, settings.redis_prefix, store.max_seq)
    manager = ChatRedisManager(
        settings.redis_url,
        settings.redis_prefix,
        metrics,
        ROOM_PREFIX,
        client_name,
        cluster=settings.redis_cluster,
        cluster_nodes=settings.cluster_nodes,
    )
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
        on_timed_out=lambda transport: metrics.sessions_timed_out.labels(transport).inc(),
    )
    presence = Presence(
        redis_conn.make_client(
            settings,
            max_connections=PRESENCE_POOL_SIZE,
            timeout_secs=REDIS_SOCKET_TIMEOUT_SECS,
            client_name=client_name,
            decode_responses=True,
        ),
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
    manager.on_lost = store.redis_trouble
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
    return Worker(app, sio, store, redis, manager, presence, events, metrics, state, chat, repair)


def tune_gc() -> None:
    """Everything made at start-up lives as long as the process: freeze it out of the cyclic
    collector's view, and collect the young generation far less often. Stock thresholds made
    the collector walk every connection's objects every few seconds, in 60-140 ms pauses."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Watchdog:
    """The one way out of a stop that hangs (a task that ignores cancellation, a blocked event
    loop, the interpreter waiting on a thread): past its deadline it logs what the stop was
    doing and ends the process with EXIT_STUCK. A stop that does not hang never meets it."""

    def __init__(self) -> None:
        self.doing = "draining"

    def arm(self, secs: float) -> None:
        # A daemon thread: the interpreter does not wait for it on its way out.
        threading.Thread(
            target=self._watch, args=(secs,), name="exit-watchdog", daemon=True
        ).start()

    def _watch(self, secs: float) -> None:
        threading.Event().wait(secs)
        log.critical("stop still %s after %.1f s; exiting with %d", self.doing, secs, EXIT_STUCK)
        os._exit(EXIT_STUCK)


class Parts:
    """The worker's long-lived parts on one exit stack: each started in order, and closed in
    reverse when the stack closes, each within what is left of one budget."""

    def __init__(
        self, stack: contextlib.AsyncExitStack, budget_secs: float, watchdog: Watchdog
    ) -> None:
        self._stack = stack
        self._budget = budget_secs
        self._watchdog = watchdog
        self._deadline: float | None = None
        self.failed: list[str] = []

    async def start(
        self, name: str, start: Callable[[], object] | None, close: Callable[[], object]
    ) -> None:
        if start is not None:
            await _settled(start())
        self._stack.push_async_callback(self._close, name, close)

    async def _close(self, name: str, close: Callable[[], object]) -> None:
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = loop.time() + self._budget
        left = max(self._deadline - loop.time(), CLOSE_FLOOR_SECS)
        self._watchdog.doing = f"closing {name}"
        try:
            async with asyncio.timeout(left):
                await _settled(close())
        except TimeoutError:
            # Its graceful work (what it flushes or tells Redis) is cut short; what it
            # releases in `finally` is released all the same.
            log.warning("closing %s took over %.1f s; cut short", name, left)
        except Exception:
            log.exception("closing %s failed", name)
            self.failed.append(name)


async def _settled(result: object) -> None:
    if inspect.isawaitable(result):
        await result


class WebServer:
    """The worker's HTTP server: it listens from start until the drain, and its close cuts
    every client's connection at the TCP level, so clients reconnect by themselves."""

    def __init__(self, worker: Worker, settings: Settings) -> None:
        self._sio = worker.sio
        self._host = settings.server_host
        self._port = settings.server_port
        self._http = HTTPServer(
            worker.app,
            # Equal to the Engine.IO limit: a bigger body is refused at once instead of being
            # held in memory by a hung polling request (docs/guarantees.md L4).
            max_body_size=settings.limits_frame_bytes,
            xheaders=settings.server_trust_proxy,
        )

    def start(self) -> None:
        self._http.listen(self._port, self._host)

    def stop_accepting(self) -> None:
        self._http.stop()

    async def close(self) -> None:
        self._http.stop()
        # Engine.IO's heartbeat first: no session times out (and is announced as leaving)
        # while the worker goes.
        await self._sio.shutdown()
        engine_io: engine.ChatEngine = self._sio.eio
        engine_io.abort_transports()
        await self._http.close_all_connections()
        engine_io.end_polls()


async def start_parts(parts: Parts, worker: Worker, settings: Settings) -> WebServer:
    """In the order each needs the ones before it; the web server last, once everything it
    serves is up."""
    await parts.start("metrics watchers", worker.metrics.start, worker.metrics.close)
    await parts.start("Redis pool", None, lambda: redis_conn.close(worker.redis))
    # The store retries in the background until MongoDB answers; calls wait for it.
    await parts.start("store", worker.store.start, worker.store.close)
    await parts.start("bus", worker.manager.start, worker.manager.close)
    await parts.start("presence", worker.presence.start, worker.presence.close)
    await parts.start("gap repair", worker.repair.start, worker.repair.close)
    await parts.start(
        "writer and room list", worker.chat.start, lambda: worker.chat.close(CLOSE_TIMEOUT_SECS / 2)
    )
    await parts.start("socket events", None, worker.events.close)
    web = WebServer(worker, settings)
    await parts.start("web server", web.start, web.close)
    return web


async def drain(worker: Worker, web: WebServer, drain_secs: float) -> None:
    log.info("draining: no new connections, finishing in-flight events")
    worker.state.draining = True
    web.stop_accepting()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(worker.events.idle.wait(), drain_secs)


async def end_leftover_tasks() -> tuple[list[str], list[str]]:
    """Tasks still alive once every part is closed: given a moment to end by themselves (a
    request writing its last response), then cancelled. Answers those cancelled, and those
    still running after that."""
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current]
    if left:
        await asyncio.wait(left, timeout=SETTLE_SECS)
    cancelled = [t for t in left if not t.done()]
    for task in cancelled:
        log.warning("task %s outlived its part; cancelling it", exitreport.task_name(task))
        task.cancel()
    if cancelled:
        await asyncio.wait(cancelled, timeout=SETTLE_SECS)
    running = [t for t in cancelled if not t.done()]
    for task in running:
        log.error("task %s ignores cancellation", exitreport.task_name(task))
    for task in left:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: it is logged above or was the part's to log
    return [exitreport.task_name(t) for t in cancelled], [exitreport.task_name(t) for t in running]


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(settings: Settings) -> int:
    """Run one worker until SIGTERM or SIGINT; answers the process's exit status."""
    engine.check_versions()
    engine.configure()
    # Handled from the start: a stop during start-up drains and closes like any other.
    stop = stop_on_signals()
    report = exitreport.requested()
    sockets_before = exitreport.socket_inodes() if report else None
    worker = build_worker(settings)
    tune_gc()
    watchdog = Watchdog()
    async with contextlib.AsyncExitStack() as stack:
        parts = Parts(stack, CLOSE_TIMEOUT_SECS, watchdog)
        web = await start_parts(parts, worker, settings)
        log.info("%s", startup_line(settings))
        await stop.wait()
        watchdog.arm(settings.server_drain_secs + CLOSE_TIMEOUT_SECS + EXIT_MARGIN_SECS)
        await drain(worker, web, settings.server_drain_secs)
    watchdog.doing = "ending the tasks left"
    cancelled, running = await end_leftover_tasks()
    if report:
        exitreport.write(report, running, cancelled, exitreport.open_sockets(sockets_before))
    if parts.failed or running:
        log.error("stopped without closing %s", ", ".join(parts.failed + running))
        return EXIT_STUCK
    watchdog.doing = "exiting"
    log.info("stopped")
    return 0


def run(settings: Settings) -> int:
    import uvloop

    return uvloop.run(serve(settings))
