"""Room joins, sends and history pages, shared by sockets and REST.

Send: validated by protocol, then stored by the group-commit writer (`chatd/writer.py`),
broadcast once stored, and acked. A join subscribes first and reads history second, so a
message sent meanwhile arrives live, in history, or both (clients de-duplicate by seq), never
neither. docs/design.md has the whole write path.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from chatd import protocol
from chatd.config import Settings
from chatd.errors import Forbidden, NotFound, Unavailable
from chatd.metrics import Metrics
from chatd.models import DELETE, EDIT, Message, Room, utc_now
from chatd.protocol import DeleteRequest, EditRequest, JoinRequest, MessageRequest
from chatd.repair import GapRepair
from chatd.room_activity import RoomActivity
from chatd.seqs import Seqs
from chatd.store.base import Store
from chatd.writer import Entry, SendResult, Writer

Emit = Callable[[str, Any, str], Awaitable[None]]


def within_bytes(
    messages: list[Message], budget: int, keep_newest: bool
) -> tuple[list[Message], bool]:
    """The longest run of `messages` (oldest first) whose wire form fits `budget` bytes, from
    the newest end or the oldest; and whether any were left out. Always at least one."""
    ordered = reversed(messages) if keep_newest else iter(messages)
    kept: list[Message] = []
    used = 0
    for message in ordered:
        used += len(json.dumps(message.to_wire(), ensure_ascii=False).encode())
        if used > budget and kept:
            break
        kept.append(message)
    if keep_newest:
        kept.reverse()
    return kept, len(kept) < len(messages)


# The prefix keeps chat rooms apart from the per-sid rooms python-socketio makes, so joining a
# room named like a sid reads nothing; the bus gives each room with it a channel of its own.
ROOM_PREFIX = "room:"


def room_channel(room: str) -> str:
    """The Socket.IO room behind a chat room."""
    return ROOM_PREFIX + room


@dataclass(frozen=True)
class Author:
    """Who sends: the name shown in the room, the identity, and the scope of its client_ids
    (models.client_key)."""

    name: str
    user_id: str
    scope: str


@dataclass(frozen=True)
class JoinResult:
    last_seq: int
    created: bool
    history: list[Message]
    has_more: bool


class Chat:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        seqs: Seqs,
        emit: Emit,
        metrics: Metrics,
        repair: GapRepair,
    ) -> None:
        self._settings = settings
        self._store = store
        self._emit = emit
        self._metrics = metrics
        self._repair = repair
        self._activity = RoomActivity(store)
        self._writer = Writer(store, seqs, self._broadcast, metrics)

    async def join(self, request: JoinRequest, owner: str) -> JoinResult:
        """Create the room if new (owned by `owner`) and read the history the joiner should
        get. The caller subscribes the socket to the room before calling this."""
        created = await self._store.open_room(request.room, owner)
        if request.since is None:
            history, has_more = await self._store.read_before(
                request.room, None, self._settings.limits_history
            )
        else:
            history, has_more = await self._store.read_after(
                request.room, request.since, self._settings.limits_replay
            )
        history, trimmed = within_bytes(
            history, self._settings.limits_replay_bytes, keep_newest=request.since is None
        )
        newest = history[-1].seq if history else 0
        if has_more and request.since is not None:
            # A replay cut short: the room's newest stored seq, for the client to page to.
            newest = max(newest, await self._store.max_seq(request.room))
        await self._repair.joined(room_channel(request.room), request.room, newest or None)
        return JoinResult(
            last_seq=newest,
            created=created,
            history=history,
            has_more=has_more or trimmed,
        )

    def submit(self, author: Author, request: MessageRequest, origin: str) -> Awaitable[SendResult]:
        """Queue the message from connection `origin`; the awaitable answers once stored."""
        return self._writer.submit(
            Entry(
                request.room, author.name, author.user_id, request.text, request.client_id,
                author.scope, origin=origin,
            )
        )  # fmt: skip

    async def edit(self, author: Author, request: EditRequest) -> SendResult:
        """Only the author edits, within limits.edit_minutes of sending."""
        target = await self._target(request.room, request.id)
        if not author.user_id or target.user_id != author.user_id:
            raise Forbidden("only the author of a message may edit it")
        window = timedelta(minutes=self._settings.limits_edit_minutes)
        if utc_now() - target.timestamp > window:
            raise Forbidden(
                f"a message can be edited for {self._settings.limits_edit_minutes} minutes "
                "after it was sent"
            )
        result = await self._writer.send(
            Entry(
                request.room, author.name, author.user_id, request.text, request.client_id,
                author.scope, kind=EDIT, target=target.id, target_seq=target.seq,
            )
        )  # fmt: skip
        # Applied after the edit is stored (and again on a retry, which finds it stored): a
        # change is never applied to its message without being in the room's log.
        await self._store.amend(target, result.message)
        return result

    async def delete(
        self, author: Author, may_moderate: bool, request: DeleteRequest
    ) -> tuple[SendResult, Message]:
        """The author deletes, and so do the room's owner and moderators. Answers the
        deletion and the message it deleted."""
        target = await self._target(request.room, request.id)
        if not may_moderate and (not author.user_id or target.user_id != author.user_id):
            raise Forbidden("only the author or a moderator may delete a message")
        result = await self._writer.send(
            Entry(
                request.room, author.name, author.user_id, "", request.client_id, author.scope,
                kind=DELETE, target=target.id, target_seq=target.seq,
            )
        )  # fmt: skip
        await self._store.amend(target, result.message)
        return result, target

    async def _target(self, room: str, id: str) -> Message:
        target = await self._store.find_message(room, id)
        if target is None or target.deleted:
            raise NotFound(f"room {room!r} has no message {id}")
        return target

    async def _broadcast(self, messages: list[Message]) -> None:
        for message in messages:
            event = protocol.EVENT_OF_KIND[message.kind]
            await self._emit(event, message.to_wire(), room_channel(message.room))
            self._metrics.messages.inc()
            self._activity.note(message.room, message.seq, message.timestamp)

    def start(self) -> None:
        self._writer.start()
        self._activity.start()

    async def close(self, grace_secs: float) -> None:
        """Store what was sent, then write the room list notes it made, each within half of
        `grace_secs`."""
        await self._writer.close(grace_secs / 2)
        await self._activity.close(grace_secs / 2)

    async def create_room(self, name: str, owner: str = "") -> tuple[Room, bool]:
        created = await self._store.open_room(name, owner)
        room = await self._store.get_room(name)
        if room is None:
            raise Unavailable("room could not be read back")
        return room, created

    async def page(
        self, room: str, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """One page of history for REST: newest-before `before`, or oldest-after `after`."""
        if not await self._store.has_room(room):
            raise NotFound(f"room {room!r} does not exist")
        if after is not None:
            return await self._store.read_after(room, after, limit)
        return await self._store.read_before(room, before, limit)
