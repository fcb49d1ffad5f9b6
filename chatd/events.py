"""Socket.IO handlers: parse, call chat, emit, ack. camelCase event names live only here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import socketio

from chatd import moderation, protocol
from chatd.bus import Member, Presence, distinct
from chatd.chat import Author, Chat, room_channel
from chatd.config import Settings
from chatd.errors import (
    ChatError,
    Forbidden,
    InvalidPayload,
    Kicked,
    Muted,
    NotJoined,
    RateLimited,
    Unavailable,
)
from chatd.identity import Authenticator, Identity
from chatd.logbudget import LogBudget, bounded
from chatd.metrics import Metrics
from chatd.models import identity_scope, iso_millis, utc_now
from chatd.moderation import Moderation
from chatd.presence_fanout import PresenceFanout
from chatd.ratelimit import TokenBucket
from chatd.shared_limits import IdentityLimits
from chatd.store.base import Owners

log = logging.getLogger(__name__)
# Refusals are the client's mistakes (or a storm's): a few lines, then a count.
refusals = LogBudget("refused events and handshakes", log)

MAX_ROOMS_PER_CONNECTION = 50
JOIN_BURST, JOINS_PER_MINUTE = 10, 60
TYPING_BURST, TYPING_PER_MINUTE = 10, 120
# Events of one connection run one at a time. A client that fires faster than MongoDB answers
# gets refusals beyond this many queued events, instead of an unbounded queue...
MAX_WAITING_EVENTS = 256
# ...and an event that waited this long is answered `unavailable` without being applied: its
# sender has most likely given up on the ack, and a retry with the same client_id is safe.
EVENT_DEADLINE_SECS = 10.0
# A message is queued for the store under the connection's lock (that fixes its place in its
# sender's order) and its ack awaited outside it, so the connection's next events go on; past
# this many messages of one connection waiting on the store, the next is awaited in place.
MAX_STORING_PER_CONNECTION = 32
# A room's online list goes out at most this often per worker (see presence_fanout).
PRESENCE_INTERVAL_SECS = 0.5


@dataclass(frozen=True, slots=True)
class Later:
    """A handler's answer that is awaited after the connection's lock is released."""

    answer: Awaitable[dict[str, Any]]


Handler = Callable[[str, Any], Awaitable[dict[str, Any] | Later]]


def refusal(code: str, message: str) -> socketio.exceptions.ConnectionRefusedError:
    """A refused handshake as Socket.IO clients read it: `connect_error` with the message,
    and `data: {code, message}` (err.data in socket.io-client)."""
    return socketio.exceptions.ConnectionRefusedError(message, {"code": code, "message": message})


def iso_epoch(epoch: float) -> str:
    return iso_millis(datetime.fromtimestamp(epoch, UTC))


@dataclass(slots=True)
class Session:
    address: str
    identity: Identity
    messages: TokenBucket
    # Made at the first join or typing notice: most of an idle connection's memory is what it
    # holds before doing anything.
    joins: TokenBucket | None = None
    typing: TokenBucket | None = None
    joined: dict[str, str] = field(default_factory=dict)  # room -> username
    last_room: str | None = None
    muted: dict[str, float] = field(default_factory=dict)  # room -> until (epoch seconds)
    # python-socketio runs each event in its own task. Holding this lock around every event of
    # the connection handles them in the order they were sent: a chatMessage emitted right
    # after its joinRoom (without waiting for the ack) finds the room joined, and one sender's
    # seq order is its send order (docs/guarantees.md G4). Tasks reach the lock in arrival order.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0  # events queued behind `lock`
    storing: int = 0  # messages queued for the store, their acks not sent yet

    def take_join(self) -> bool:
        if self.joins is None:
            self.joins = TokenBucket(JOIN_BURST, JOINS_PER_MINUTE)
        return self.joins.take()

    def take_typing(self) -> bool:
        if self.typing is None:
            self.typing = TokenBucket(TYPING_BURST, TYPING_PER_MINUTE)
        return self.typing.take()

    def author(self, room: str) -> Author:
        """Who sends to `room`: the connection's name there, and the scope of its client_ids:
        the identity when a login vouches for it (its `name` is fixed), else the name, as
        before identities: a stock client's retry after a reconnect, where it is a new
        identity, still finds its message, and in open mode a name is no easier to claim
        than a token is to get."""
        name = self.joined[room]
        identity = self.identity
        scope = identity_scope(identity.user_id) if identity.name is not None else name
        return Author(name=name, user_id=identity.user_id, scope=scope)

    def check_not_muted(self, room: str) -> None:
        until = self.muted.get(room)
        if until is None:
            return
        if until > time.time():
            raise Muted("you are muted in this room", until=iso_epoch(until))
        del self.muted[room]


class Events:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        chat: Chat,
        presence: Presence,
        settings: Settings,
        metrics: Metrics,
        auth: Authenticator,
        mod: Moderation,
        limits: IdentityLimits,
    ) -> None:
        self._sio = sio
        self._chat = chat
        self._presence = presence
        self._auth = auth
        self._mod = mod
        self._limits = limits
        self._settings = settings
        self._metrics = metrics
        self._sessions: dict[str, Session] = {}
        self._per_address: dict[str, int] = {}
        self.presence_fanout = PresenceFanout(presence, self._emit_presence, PRESENCE_INTERVAL_SECS)
        self._kicks: set[asyncio.Task[None]] = set()
        self.inflight = 0
        # Set while no event or disconnect is being handled; shutdown waits on it to drain.
        self.idle = asyncio.Event()
        self.idle.set()

    def _begin(self) -> None:
        self.inflight += 1
        self.idle.clear()

    def _end(self) -> None:
        self.inflight -= 1
        if not self.inflight:
            self.idle.set()

    async def close(self) -> None:
        """Let disconnects in progress finish (the parts they use close next), then forget
        the connections (their transports are gone) and stop the online-list checks and the
        kicks still being applied."""
        try:
            await self.idle.wait()
        finally:
            self._sessions.clear()  # a moderation notice from the bus finds no one now
            await self.presence_fanout.close()
            for task in list(self._kicks):
                task.cancel()
            await asyncio.gather(*self._kicks, return_exceptions=True)

    def register(self) -> None:
        self._sio.on("connect", handler=self.connect)
        self._sio.on("disconnect", handler=self.disconnect)
        self._sio.on(protocol.JOIN_ROOM, handler=self._wrap(protocol.JOIN_ROOM, self.join_room))
        self._sio.on(
            protocol.CHAT_MESSAGE, handler=self._wrap(protocol.CHAT_MESSAGE, self.chat_message)
        )
        self._sio.on(protocol.LEAVE_ROOM, handler=self._wrap(protocol.LEAVE_ROOM, self.leave_room))
        self._sio.on(protocol.TYPING, handler=self._wrap(protocol.TYPING, self.typing))
        for event, handler in (
            (protocol.EDIT_MESSAGE, self.edit_message),
            (protocol.DELETE_MESSAGE, self.delete_message),
            (protocol.SET_ROLE, self.set_role),
            (protocol.MUTE_USER, self.mute_user),
            (protocol.KICK_USER, self.kick_user),
        ):
            self._sio.on(event, handler=self._wrap(event, handler))
        self._sio.after_connect = self.tell_session
        # Any other event name: answered, so a client waiting on its ack is not left hanging.
        self._sio.on("*", handler=self.unknown_event)

    async def unknown_event(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        self._metrics.errors.labels("unknown_event").inc()
        if refusals.admit():
            log.info("unknown event from sid=%s: %s", sid, bounded(event))
        return protocol.fail("unknown_event", f"no such event {event[:64]!r}")

    def _wrap(self, event: str, handler: Handler) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def handle(sid: str, *args: Any) -> dict[str, Any]:
            started = time.perf_counter()
            self._begin()
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
                    answer = await handler(sid, args[0] if args else None)
                finally:
                    session.lock.release()
                return await answer.answer if isinstance(answer, Later) else answer
            except ChatError as exc:
                self._metrics.errors.labels(exc.code).inc()
                if refusals.admit():
                    log.info("%s refused (sid=%s): %s %s", event, sid, exc.code, exc.message)
                return protocol.fail_from(exc)
            except Exception:
                self._metrics.errors.labels("internal").inc()
                log.exception("%s failed (sid=%s)", event, sid)
                return protocol.fail("internal", "internal error; the request was not applied")
            finally:
                self._end()
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
            if refusals.admit():
                log.info("connection from %s refused: %d already open here", address, cap)
            raise refusal("too_many_connections", "too many connections from here")
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            identity = await self._auth.identify(token)
        except ChatError as exc:
            self._metrics.errors.labels(exc.code).inc()
            if refusals.admit():
                log.info("connection from %s refused: %s %s", address, exc.code, exc.message)
            raise refusal(exc.code, exc.message) from None
        self._per_address[address] = self._per_address.get(address, 0) + 1
        self._sessions[sid] = Session(
            address=address,
            identity=identity,
            messages=TokenBucket(
                self._settings.limits_rate_burst, self._settings.limits_rate_per_minute
            ),
        )
        self._metrics.connected_clients.inc()
        log.debug("connect sid=%s from %s", sid, address)
        return True

    async def tell_session(self, sid: str) -> None:
        """Who this connection is, and the token to come back as."""
        session = self._sessions.get(sid)
        if session is None:
            return
        identity = session.identity
        await self._sio.emit(
            protocol.SESSION,
            {
                "user_id": identity.user_id,
                "token": identity.token,
                "name": identity.name,
                "roles": identity.roles,
            },
            to=sid,
            ignore_queue=True,
        )

    async def disconnect(self, sid: str, reason: Any = None) -> None:
        session = self._sessions.pop(sid, None)
        if session is None:
            return
        self._begin()
        try:
            await self._disconnected(sid, session)
        finally:
            self._end()

    async def _disconnected(self, sid: str, session: Session) -> None:
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
                    await self._announce_leave(sid, room, user, session.identity.user_id)
                except Exception:
                    log.exception("leave announcement failed (sid=%s room=%s)", sid, room)

    async def join_room(self, sid: str, data: Any) -> dict[str, Any]:
        session = self._session(sid)
        identity = session.identity
        request = protocol.parse_join(data, identity.name)
        if request.room not in session.joined and len(session.joined) >= MAX_ROOMS_PER_CONNECTION:
            raise InvalidPayload(f"at most {MAX_ROOMS_PER_CONNECTION} rooms per connection")
        # Every join counts, a re-join of a room already joined too: each one reads and sends
        # up to limits.replay_bytes of history.
        if not session.take_join() or not await self._identity_allows(identity, "join"):
            raise RateLimited("too many joins; slow down")
        in_force = await self._mod.in_force(request.room, identity.user_id)
        if in_force.kicked_until > time.time():
            raise Kicked(
                "you were removed from this room; try again later",
                until=iso_epoch(in_force.kicked_until),
            )
        await self._sio.enter_room(sid, room_channel(request.room))
        try:
            result = await self._chat.join(request, identity.user_id)
        except BaseException:
            if request.room not in session.joined:
                await self._sio.leave_room(sid, room_channel(request.room))
            raise
        if result.created:
            self._mod.forget(request.room)
        if in_force.muted_until > time.time():
            session.muted[request.room] = in_force.muted_until
        previous = session.joined.get(request.room)
        rejoin = previous == request.username
        if previous is not None and not rejoin:
            # Joining again under another name: presence keeps one entry per connection, so
            # the entry under the old name goes.
            await self._presence.remove(request.room, sid)
        session.joined[request.room] = request.username
        session.last_room = request.room
        # "X joined" only when this identity was not already online in the room from another
        # tab or device, or from the session a reconnect replaces.
        before = await self._presence.members(request.room)
        already_online = any(m.user_id == identity.user_id for m in before)
        await self._presence.add(request.room, sid, identity.user_id, request.username)
        # To this socket, which is on this worker: not through Redis, where every worker would
        # decode up to limits.replay_bytes of history for nobody.
        await self._sio.emit(
            protocol.CHAT_HISTORY,
            [m.to_wire() for m in result.history],
            to=sid,
            ignore_queue=True,
        )
        online = distinct([*before, Member(identity.user_id, request.username)])
        if not rejoin:
            if not already_online:
                await self._notify(sid, "join", request.room, request.username, identity.user_id)
            await self.presence_fanout.changed(request.room, online)
        owners = await self._mod.owners(request.room)
        return protocol.ok(
            room=request.room,
            last_seq=result.last_seq,
            online=sorted({m.name for m in online}),
            members=self._members_wire(owners, online),
            created=result.created,
            has_more=result.has_more,
            user_id=identity.user_id,
            role=moderation.role_of(owners, identity.user_id, identity.admin),
        )

    async def _identity_allows(self, identity: Identity, kind: str) -> bool:
        """The identity's shared bucket, for a connection that may be one of several."""
        if not identity.presented:
            return True
        if kind == "join":
            return await self._limits.take(kind, identity.user_id, JOIN_BURST, JOINS_PER_MINUTE)
        settings = self._settings
        return await self._limits.take(
            kind, identity.user_id, settings.limits_rate_burst, settings.limits_rate_per_minute
        )

    @staticmethod
    def _members_wire(owners: Owners, members: list[Member]) -> list[dict[str, Any]]:
        return [
            {"user_id": m.user_id or None, "name": m.name,
             "role": moderation.role_of(owners, m.user_id)}
            for m in members
        ]  # fmt: skip

    async def chat_message(self, sid: str, data: Any) -> Later | dict[str, Any]:
        session = self._session(sid)
        request = protocol.parse_message(
            data, session.last_room, self._settings.limits_message_chars
        )
        if request.room not in session.joined:
            raise NotJoined(f"join room {request.room!r} before sending to it")
        session.check_not_muted(request.room)
        await self._take_send(session)
        stored = self._chat.submit(session.author(request.room), request, sid)
        session.storing += 1

        async def answer() -> dict[str, Any]:
            try:
                result = await stored
            finally:
                session.storing -= 1
            message = result.message
            return protocol.ok(
                id=message.id,
                seq=message.seq,
                timestamp=iso_millis(message.timestamp),
                duplicate=result.duplicate,
            )

        if session.storing > MAX_STORING_PER_CONNECTION:
            return await answer()
        return Later(answer())

    async def _take_send(self, session: Session) -> None:
        if not session.messages.take() or not await self._identity_allows(session.identity, "send"):
            raise RateLimited("too many messages; slow down")

    async def edit_message(self, sid: str, data: Any) -> dict[str, Any]:
        session = self._session(sid)
        request = protocol.parse_edit(data, self._settings.limits_message_chars)
        if request.room not in session.joined:
            raise NotJoined(f"join room {request.room!r} first")
        session.check_not_muted(request.room)
        await self._take_send(session)
        result = await self._chat.edit(session.author(request.room), request)
        edit = result.message
        return protocol.ok(
            id=edit.target,
            seq=edit.seq,
            edited_at=iso_millis(edit.timestamp),
            duplicate=result.duplicate,
        )

    async def delete_message(self, sid: str, data: Any) -> dict[str, Any]:
        session = self._session(sid)
        request = protocol.parse_delete(data)
        if request.room not in session.joined:
            raise NotJoined(f"join room {request.room!r} first")
        await self._take_send(session)
        role = await self._mod.role(request.room, session.identity)
        result, target = await self._chat.delete(
            session.author(request.room), moderation.may_moderate(role), request
        )
        deletion = result.message
        if target.user_id != session.identity.user_id and not result.duplicate:
            # Removing someone else's message is a moderation action: kept, and told.
            await self._moderated(
                session, request.room, "delete", target.user_id, target.user, message=target.id
            )
        return protocol.ok(id=deletion.target, seq=deletion.seq, duplicate=result.duplicate)

    # -- moderation ---------------------------------------------------------------------------

    async def _actor(self, sid: str, room: str) -> tuple[Session, str]:
        session = self._session(sid)
        if room not in session.joined:
            raise NotJoined(f"join room {room!r} first")
        return session, await self._mod.role(room, session.identity)

    async def _target(self, room: str, user_id: str) -> tuple[str, str]:
        """The target's name in the room (its id when it is not online there) and role."""
        members = await self._presence.members(room)
        name = next((m.name for m in members if m.user_id == user_id), user_id)
        return name, moderation.role_of(await self._mod.owners(room), user_id)

    async def set_role(self, sid: str, data: Any) -> dict[str, Any]:
        request = protocol.parse_role(data)
        session, actor = await self._actor(sid, request.room)
        moderation.check_may_set_roles(actor)
        name, target = await self._target(request.room, request.user_id)
        if target == moderation.OWNER:
            raise Forbidden("the owner's role cannot be changed")
        await self._mod.set_moderator(request.room, request.user_id, request.moderator)
        await self._control(request.room, {"op": "roles"})
        role = moderation.MODERATOR if request.moderator else moderation.MEMBER
        await self._moderated(session, request.room, "role", request.user_id, name, role=role)
        members = await self._presence.members(request.room)
        await self._emit_presence(request.room, members)
        return protocol.ok(room=request.room, user_id=request.user_id, role=role)

    async def mute_user(self, sid: str, data: Any) -> dict[str, Any]:
        request = protocol.parse_mute(data)
        session, actor = await self._actor(sid, request.room)
        name, target = await self._target(request.room, request.user_id)
        moderation.check_may_act_on(actor, target, request.user_id == session.identity.user_id)
        until = await self._mod.mute(request.room, request.user_id, request.minutes)
        await self._control(
            request.room, {"op": "mute", "user_id": request.user_id, "until": until}
        )
        kind = "mute" if request.minutes else "unmute"
        await self._moderated(
            session, request.room, kind, request.user_id, name, minutes=request.minutes
        )
        return protocol.ok(
            room=request.room,
            user_id=request.user_id,
            until=iso_epoch(until) if until else None,
        )

    async def kick_user(self, sid: str, data: Any) -> dict[str, Any]:
        request = protocol.parse_kick(data)
        session, actor = await self._actor(sid, request.room)
        name, target = await self._target(request.room, request.user_id)
        moderation.check_may_act_on(actor, target, request.user_id == session.identity.user_id)
        minutes = self._settings.limits_kick_minutes
        until = await self._mod.kick(request.room, request.user_id, minutes)
        await self._control(
            request.room,
            {
                "op": "kick",
                "user_id": request.user_id,
                "until": until,
                "by": session.identity.user_id,
                "by_name": session.joined[request.room],
            },
        )
        await self._moderated(session, request.room, "kick", request.user_id, name, minutes=minutes)
        return protocol.ok(room=request.room, user_id=request.user_id, until=iso_epoch(until))

    async def _moderated(
        self, session: Session, room: str, kind: str, user_id: str, name: str, **details: Any
    ) -> None:
        """Keep the action, and tell the room."""
        by_name = session.joined[room]
        now = utc_now()
        await self._mod.record(
            {"room": room, "action": kind, "by": session.identity.user_id, "by_name": by_name,
             "target": user_id, "target_name": name, "at": now, **details}
        )  # fmt: skip
        texts = {
            "mute": f"{name} was muted by {by_name} for {details.get('minutes')} minutes",
            "unmute": f"{name} can write again ({by_name})",
            "kick": f"{name} was removed from the room by {by_name}",
            "role": f"{name} is now a {details.get('role')} ({by_name})",
            "delete": f"a message of {name} was deleted by {by_name}",
        }
        await self._sio.emit(
            protocol.NOTIFICATION,
            {"type": kind, "room": room, "user": name, "user_id": user_id,
             "by": session.identity.user_id, "by_name": by_name, **details,
             "text": texts[kind], "timestamp": iso_millis(now)},
            room=room_channel(room),
        )  # fmt: skip

    async def _control(self, room: str, data: dict[str, Any]) -> None:
        """To every worker with members in the room, through the room's channel; never to a
        client (the bus hands it to `on_control`)."""
        await self._sio.emit(
            moderation.CONTROL_EVENT, {**data, "room": room}, room=room_channel(room)
        )

    def on_control(self, data: Any) -> None:
        """A moderation notice from the room's channel: apply it to this worker's connections."""
        if not isinstance(data, dict) or not isinstance(data.get("room"), str):
            return
        room, op, user_id = data["room"], data.get("op"), data.get("user_id")
        if op == "roles":
            self._mod.forget(room)
            return
        until = data.get("until")
        if not isinstance(user_id, str) or not isinstance(until, int | float):
            return
        for sid, session in list(self._sessions.items()):
            if session.identity.user_id != user_id or room not in session.joined:
                continue
            if op == "mute":
                if until:
                    session.muted[room] = float(until)
                else:
                    session.muted.pop(room, None)
            elif op == "kick":
                by = {"by": data.get("by"), "by_name": data.get("by_name")}
                task = asyncio.get_running_loop().create_task(
                    self._kicked(sid, room, float(until), by)
                )
                self._kicks.add(task)
                task.add_done_callback(self._kicks.discard)

    async def _kicked(self, sid: str, room: str, until: float, by: dict[str, Any]) -> None:
        session = self._sessions.get(sid)
        if session is None:
            return
        try:
            async with session.lock:
                if session.joined.pop(room, None) is None:
                    return
                if session.last_room == room:
                    session.last_room = next(reversed(session.joined), None)
                await self._sio.leave_room(sid, room_channel(room))
                await self._sio.emit(
                    protocol.KICKED,
                    {"room": room, **by, "until": iso_epoch(until)},
                    to=sid,
                    ignore_queue=True,
                )
                await self._presence.remove(room, sid)
                await self.presence_fanout.changed(room, await self._presence.members(room))
        except Exception:
            log.exception("removing a kicked connection failed (sid=%s room=%s)", sid, room)

    async def leave_room(self, sid: str, data: Any) -> dict[str, Any]:
        session = self._session(sid)
        request = protocol.parse_leave(data)
        user = session.joined.pop(request.room, None)
        if user is None:
            raise NotJoined(f"not in room {request.room!r}")
        if session.last_room == request.room:
            session.last_room = next(reversed(session.joined), None)
        await self._sio.leave_room(sid, room_channel(request.room))
        await self._announce_leave(sid, request.room, user, session.identity.user_id)
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
            {
                "room": request.room,
                "user": user,
                "user_id": session.identity.user_id,
                "typing": request.typing,
            },
            room=room_channel(request.room),
            skip_sid=sid,
        )
        return protocol.ok()

    async def _announce_leave(self, sid: str, room: str, user: str, user_id: str) -> None:
        await self._presence.remove(room, sid)
        online = await self._presence.members(room)
        # Still online from another connection: no "X left".
        if not any(m.user_id == user_id for m in online):
            await self._notify(sid, "leave", room, user, user_id)
        await self.presence_fanout.changed(room, online)

    async def _emit_presence(self, room: str, members: list[Member]) -> None:
        try:
            owners = await self._mod.owners(room)
        except Unavailable:
            owners = Owners("", frozenset())
        await self._sio.emit(
            protocol.PRESENCE,
            {
                "room": room,
                "users": sorted({m.name for m in members}),
                "members": self._members_wire(owners, members),
            },
            room=room_channel(room),
        )

    async def _notify(self, sid: str, kind: str, room: str, user: str, user_id: str) -> None:
        verb = "joined" if kind == "join" else "left"
        await self._sio.emit(
            protocol.NOTIFICATION,
            {
                "type": kind,
                "room": room,
                "user": user,
                "user_id": user_id,
                "text": f"{user} {verb} the room",
                "timestamp": iso_millis(utc_now()),
            },
            room=room_channel(room),
            skip_sid=sid,
        )
