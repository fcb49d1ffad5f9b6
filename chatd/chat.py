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
from typing import Any

from chatd import protocol
from chatd.config import Settings
from chatd.errors import NotFound, Unavailable
from chatd.metrics import Metrics
from chatd.models import Message, Room
from chatd.protocol import JoinRequest, MessageRequest
from chatd.repair import GapRepair
from chatd.room_activity import RoomActivity
from chatd.seqs import Seqs
from chatd.store.base import Store
from chatd.writer import SendResult, Writer

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

    async def join(self, request: JoinRequest) -> JoinResult:
        """Create the room if new and read the history the joiner should get. The caller
        subscribes the socket to the room before calling this."""
        created = await self._store.open_room(request.room)
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

    async def send(self, user: str, request: MessageRequest) -> SendResult:
        return await self._writer.send(request.room, user, request.text, request.client_id)

    async def _broadcast(self, messages: list[Message]) -> None:
        for message in messages:
            await self._emit(protocol.CHAT_MESSAGE, message.to_wire(), room_channel(message.room))
            self._metrics.messages.inc()
            self._activity.note(message.room, message.seq, message.timestamp)

    async def close(self, grace_secs: float) -> None:
        await self._writer.close(grace_secs / 2)
        await self._activity.close(grace_secs / 2)
        await self._repair.close()

    async def create_room(self, name: str) -> tuple[Room, bool]:
        created = await self._store.open_room(name)
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
