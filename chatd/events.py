"""Socket.IO handlers: parse, call chat, emit, ack. camelCase event names live only here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import socketio

from chatd import protocol
from chatd.bus import Presence
from chatd.chat import Chat, room_channel
from chatd.config import Settings
from chatd.errors import ChatError, InvalidPayload, NotJoined, RateLimited, Unavailable
from chatd.metrics import Metrics
from chatd.models import iso_millis, utc_now
from chatd.presence_fanout import PresenceFanout
from chatd.ratelimit import TokenBucket

log = logging.getLogger(__name__)

MAX_ROOMS_PER_CONNECTION = 50
JOIN_BURST, JOINS_PER_MINUTE = 10, 60
TYPING_BURST, TYPING_PER_MINUTE = 10, 120
# Events of one connection run one at a time. A client that fires faster than MongoDB answers
# gets refusals beyond this many queued events, instead of an unbounded queue...
MAX_WAITING_EVENTS = 256
# ...and an event that waited this long is answered `unavailable` without being applied: its
# sender has most likely given up on the ack, and a retry with the same client_id is safe.
EVENT_DEADLINE_SECS = 10.0
# A room's online list goes out at most this often per worker (see presence_fanout).
PRESENCE_INTERVAL_SECS = 0.5

Handler = Callable[[str, Any], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class Session:
    address: str
    messages: TokenBucket
    # Made at the first join or typing notice: most of an idle connection's memory is what it
    # holds before doing anything.
    joins: TokenBucket | None = None
    typing: TokenBucket | None = None
    joined: dict[str, str] = field(default_factory=dict)  # room -> username
    last_room: str | None = None
    # python-socketio runs each event in its own task. Holding this lock around every event of
    # the connection handles them in the order they were sent: a chatMessage emitted right
    # after its joinRoom (without waiting for the ack) finds the room joined, and one sender's
    # seq order is its send order (docs/guarantees.md G4). Tasks reach the lock in arrival order.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0  # events queued behind `lock`

    def take_join(self) -> bool:
        if self.joins is None:
            self.joins = TokenBucket(JOIN_BURST, JOINS_PER_MINUTE)
        return self.joins.take()

    def take_typing(self) -> bool:
        if self.typing is None:
            self.typing = TokenBucket(TYPING_BURST, TYPING_PER_MINUTE)
        return self.typing.take()


class Events:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        chat: Chat,
        presence: Presence,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self._sio = sio
        self._chat = chat
        self._presence = presence
        self._settings = settings
        self._metrics = metrics
        self._sessions: dict[str, Session] = {}
        self._per_address: dict[str, int] = {}
        self.presence_fanout = PresenceFanout(presence, self._emit_presence, PRESENCE_INTERVAL_SECS)
        self.inflight = 0
        # Set while no event is being handled; shutdown waits on it to drain.
        self.idle = asyncio.Event()
        self.idle.set()

    def register(self) -> None:
        self._sio.on("connect", handler=self.connect)
        self._sio.on("disconnect", handler=self.disconnect)
        self._sio.on(protocol.JOIN_ROOM, handler=self._wrap(protocol.JOIN_ROOM, self.join_room))
        self._sio.on(
            protocol.CHAT_MESSAGE, handler=self._wrap(protocol.CHAT_MESSAGE, self.chat_message)
        )
        self._sio.on(protocol.LEAVE_ROOM, handler=self._wrap(protocol.LEAVE_ROOM, self.leave_room))
        self._sio.on(protocol.TYPING, handler=self._wrap(protocol.TYPING, self.typing))
        # Any other event name: answered, so a client waiting on its ack is not left hanging.
        self._sio.on("*", handler=self.unknown_event)

    async def unknown_event(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        self._metrics.errors.labels("unknown_event").inc()
        log.info("unknown event from sid=%s: %.64r", sid, event)
        return protocol.fail("unknown_event", f"no such event {event[:64]!r}")

    def _wrap(self, event: str, handler: Handler) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def handle(sid: str, *args: Any) -> dict[str, Any]:
            started = time.perf_counter()
            self.inflight += 1
            self.idle.clear()
            try:
                if len(args) > 1:
                    raise InvalidPayload("send one payload per event")
                session = self._session(sid)
                if session.waiting >= MAX_WAITING_EVENTS:
                    raise RateLimited("too many requests waiting on this connection; slow down")
                session.waiting += 1
                try:
                    await session.lock.acquire()
                finally:
                    session.waiting -= 1
                try:
                    if time.perf_counter() - started > EVENT_DEADLINE_SECS:
                        raise Unavailable("the server is busy; retry")
                    return await handler(sid, args[0] if args else None)
                finally:
                    session.lock.release()
            except ChatError as exc:
                self._metrics.errors.labels(exc.code).inc()
                log.info("%s refused (sid=%s): %s %s", event, sid, exc.code, exc.message)
                return protocol.fail_from(exc)
            except Exception:
                self._metrics.errors.labels("internal").inc()
                log.exception("%s failed (sid=%s)", event, sid)
                return protocol.fail("internal", "internal error; the request was not applied")
            finally:
                self.inflight -= 1
                if not self.inflight:
                    self.idle.set()
                self._metrics.event_seconds.labels(event).observe(time.perf_counter() - started)

        return handle

    def _session(self, sid: str) -> Session:
        session = self._sessions.get(sid)
        if session is None:
            raise InvalidPayload("connection is closing")
        return session

    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        handler = environ.get("tornado.handler")
        # REMOTE_ADDR is always 127.0.0.1 in the Tornado driver (docs/guarantees.md L8).
        address = handler.request.remote_ip if handler is not None else "?"
        cap = self._settings.limits_connections_per_ip
        if cap and self._per_address.get(address, 0) >= cap:
            log.info("connection from %s refused: %d already open on this worker", address, cap)
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": "too_many_connections", "message": "too many connections from here"}
            )
        self._per_address[address] = self._per_address.get(address, 0) + 1
        self._sessions[sid] = Session(
            address=address,
            messages=TokenBucket(
                self._settings.limits_rate_burst, self._settings.limits_rate_per_minute
            ),
        )
        self._metrics.connected_clients.inc()
        log.debug("connect sid=%s from %s", sid, address)
        return True

    async def disconnect(self, sid: str, reason: Any = None) -> None:
        session = self._sessions.pop(sid, None)
        if session is None:
            return
        left = self._per_address.get(session.address, 1) - 1
        if left > 0:
            self._per_address[session.address] = left
        else:
            self._per_address.pop(session.address, None)
        self._metrics.connected_clients.dec()
        # Wait for the event in progress: a join still waiting on MongoDB would otherwise add
        # this sid to presence after the leave below, a ghost the refresh loop keeps alive.
        async with session.lock:
            for room, user in list(session.joined.items()):
                try:
                    await self._announce_leave(sid, room, user)
                except Exception:
                    log.exception("leave announcement failed (sid=%s room=%s)", sid, room)

    async def join_room(self, sid: str, data: Any) -> dict[str, Any]:
        session = self._session(sid)
        request = protocol.parse_join(data)
        if request.room not in session.joined and len(session.joined) >= MAX_ROOMS_PER_CONNECTION:
            raise InvalidPayload(f"at most {MAX_ROOMS_PER_CONNECTION} rooms per connection")
        # Every join counts, a re-join of a room already joined too: each one reads and sends
        # up to limits.replay_bytes of history.
        if not session.take_join():
            raise RateLimited("too many joins; slow down")
        await self._sio.enter_room(sid, room_channel(request.room))
        try:
            result = await self._chat.join(request)
        except BaseException:
            if request.room not in session.joined:
                await self._sio.leave_room(sid, room_channel(request.room))
            raise
        previous = session.joined.get(request.room)
        rejoin = previous == request.username
        if previous is not None and not rejoin:
            # Joining again under another name: the old name leaves, or it would stay in
            # presence (Redis keeps one member per name) until this socket disconnects.
            await self._announce_leave(sid, request.room, previous)
        session.joined[request.room] = request.username
        session.last_room = request.room
        # "X joined" only when X was not already online in the room from another tab or device,
        # or from the session a reconnect replaces.
        before = await self._presence.users(request.room)
        already_online = request.username in before
        await self._presence.add(request.room, sid, request.username)
        # To this socket, which is on this worker: not through Redis, where every worker would
        # decode up to limits.replay_bytes of history for nobody.
        await self._sio.emit(
            protocol.CHAT_HISTORY,
            [m.to_wire() for m in result.history],
            to=sid,
            ignore_queue=True,
        )
        online = sorted({*before, request.username})
        if not rejoin:
            if not already_online:
                await self._notify(sid, "join", request.room, request.username)
            await self.presence_fanout.changed(request.room, online)
        return protocol.ok(
            room=request.room,
            last_seq=result.last_seq,
            online=online,
            created=result.created,
            has_more=result.has_more,
        )

    async def chat_message(self, sid: str, data: Any) -> dict[str, Any]:
        session = self._session(sid)
        request = protocol.parse_message(
            data, session.last_room, self._settings.limits_message_chars
        )
        user = session.joined.get(request.room)
        if user is None:
            raise NotJoined(f"join room {request.room!r} before sending to it")
        if not session.messages.take():
            raise RateLimited("too many messages; slow down")
        result = await self._chat.send(user, request)
        message = result.message
        return protocol.ok(
            id=message.id,
            seq=message.seq,
            timestamp=iso_millis(message.timestamp),
            duplicate=result.duplicate,
        )

    async def leave_room(self, sid: str, data: Any) -> dict[str, Any]:
        session = self._session(sid)
        request = protocol.parse_leave(data)
        user = session.joined.pop(request.room, None)
        if user is None:
            raise NotJoined(f"not in room {request.room!r}")
        if session.last_room == request.room:
            session.last_room = next(reversed(session.joined), None)
        await self._sio.leave_room(sid, room_channel(request.room))
        await self._announce_leave(sid, request.room, user)
        return protocol.ok(room=request.room)

    async def typing(self, sid: str, data: Any) -> dict[str, Any]:
        session = self._session(sid)
        request = protocol.parse_typing(data, session.last_room)
        user = session.joined.get(request.room)
        if user is None:
            raise NotJoined(f"join room {request.room!r} first")
        if not session.take_typing():
            raise RateLimited("too many typing events")
        await self._sio.emit(
            protocol.TYPING,
            {"room": request.room, "user": user, "typing": request.typing},
            room=room_channel(request.room),
            skip_sid=sid,
        )
        return protocol.ok()

    async def _announce_leave(self, sid: str, room: str, user: str) -> None:
        await self._presence.remove(room, sid)
        online = await self._presence.users(room)
        if user not in online:  # still online from another connection: no "X left"
            await self._notify(sid, "leave", room, user)
        await self.presence_fanout.changed(room, online)

    async def _emit_presence(self, room: str, users: list[str]) -> None:
        await self._sio.emit(
            protocol.PRESENCE, {"room": room, "users": users}, room=room_channel(room)
        )

    async def _notify(self, sid: str, kind: str, room: str, user: str) -> None:
        verb = "joined" if kind == "join" else "left"
        await self._sio.emit(
            protocol.NOTIFICATION,
            {
                "type": kind,
                "room": room,
                "user": user,
                "text": f"{user} {verb} the room",
                "timestamp": iso_millis(utc_now()),
            },
            room=room_channel(room),
            skip_sid=sid,
        )
