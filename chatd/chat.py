"""The chat write path and room joins, shared by sockets and REST.

Send: validate (done by protocol) -> assign seq -> insert into MongoDB -> publish -> ack.
A message is broadcast only after MongoDB has it, so an acked message is never lost and a
broadcast message always exists in history (DESIGN.md, Write path and guarantees).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from chatd import protocol
from chatd.config import Settings
from chatd.errors import NotFound, Unavailable
from chatd.metrics import Metrics
from chatd.models import Message, Room, utc_now
from chatd.protocol import JoinRequest, MessageRequest
from chatd.room_activity import RoomActivity
from chatd.store import Store

Emit = Callable[[str, Any, str], Awaitable[None]]

# Seq collisions only happen between workers sharing one room on FerretDB; each retry first
# catches the counter up to the stored maximum, so a few tries are plenty.
SEQ_ATTEMPTS = 20
# A retry finding its client_id claimed but not stored waits this long from the claim before
# storing it itself; the claiming send gives up before inserting after half of it. Two retries
# of one stale claim on two workers at once can still store twice if their seqs fall in two
# blocks of messages (Store.BLOCK_SEQS).
CLAIM_SETTLE_SECS = 30.0


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


def room_channel(room: str) -> str:
    """The Socket.IO room behind a chat room. The prefix keeps chat rooms apart from the
    per-sid rooms python-socketio makes, so joining a room named like a sid reads nothing."""
    return "room:" + room


@dataclass(frozen=True)
class JoinResult:
    counted: int  # the room's counter when the join read it
    created: bool
    history: list[Message]
    has_more: bool

    @property
    def last_seq(self) -> int:
        newest = self.history[-1].seq if self.history else 0
        return max(self.counted, newest)


@dataclass(frozen=True)
class SendResult:
    message: Message
    duplicate: bool


class Chat:
    def __init__(self, settings: Settings, store: Store, emit: Emit, metrics: Metrics) -> None:
        self._settings = settings
        self._store = store
        self._emit = emit
        self._metrics = metrics
        self._activity = RoomActivity(store)
        # Weak values: a room's lock lives while a send holds or awaits it, then goes.
        self._room_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def join(self, request: JoinRequest) -> JoinResult:
        """Create the room if new and read the history the joiner should get.

        The caller subscribes the socket to the room *before* calling this, so a message sent
        meanwhile arrives live, in history, or both (clients de-duplicate by seq), never neither.
        """
        last_seq, created = await self._store.open_room(request.room)
        if request.since is None:
            history, has_more = await self._store.messages_before(
                request.room, last_seq + 1, self._settings.limits_history
            )
        else:
            history, has_more = await self._store.messages_after(
                request.room, request.since, self._settings.limits_replay, last_seq
            )
        history, trimmed = within_bytes(
            history, self._settings.limits_replay_bytes, keep_newest=request.since is None
        )
        return JoinResult(
            counted=last_seq, created=created, history=history, has_more=has_more or trimmed
        )

    async def send(self, user: str, request: MessageRequest) -> SendResult:
        # One send at a time per room on this worker: concurrent seq updates of one room are
        # not isolated on FerretDB (Store.next_seq), local broadcasts leave in seq order, and
        # a retry racing its original on this worker finds it stored.
        async with self._room_lock(request.room):
            if request.client_id is None:
                return await self._store_message(user, request, "srv-" + uuid.uuid4().hex)
            if await self._store.claim_client_id(request.room, request.client_id):
                return await self._store_claimed(user, request, request.client_id)
            earlier = await self._store.find_by_client_id(request.room, request.client_id)
            if earlier is not None:
                return SendResult(earlier, duplicate=True)
            claimed = await self._store.claimed_at(request.room, request.client_id)
            if claimed is None:  # released by a send that failed before storing
                if not await self._store.claim_client_id(request.room, request.client_id):
                    raise Unavailable("this message is being sent by another request; retry")
                return await self._store_claimed(user, request, request.client_id)
            if utc_now() - claimed < timedelta(seconds=CLAIM_SETTLE_SECS):
                # The first send may still be storing it on another worker, into another
                # block of messages where no unique index would catch the second copy.
                raise Unavailable("an earlier send of this message is still in progress; retry")
            # Claimed long ago and never stored: the first send stopped after trying.
            return await self._store_message(user, request, request.client_id)

    async def _store_claimed(
        self, user: str, request: MessageRequest, client_id: str
    ) -> SendResult:
        """Store a message whose client_id this send has just claimed. A send that stops
        before trying an insert gives the claim back, so a retry need not wait; one that tried
        keeps it, as the insert may have been applied without an answer."""
        started = time.monotonic()
        tried = False

        def before_insert() -> None:
            nonlocal tried
            if time.monotonic() - started > CLAIM_SETTLE_SECS / 2:
                raise Unavailable("message store is busy, try again")
            tried = True

        try:
            return await self._store_message(user, request, client_id, before_insert)
        except BaseException:
            if not tried:
                with contextlib.suppress(Exception):
                    await self._store.release_claim(request.room, client_id)
            raise

    async def _store_message(
        self,
        user: str,
        request: MessageRequest,
        client_id: str,
        before_insert: Callable[[], None] = lambda: None,
    ) -> SendResult:
        for _ in range(SEQ_ATTEMPTS):
            now = utc_now()
            seq = await self._store.next_seq(request.room)
            before_insert()
            try:
                message = await self._store.insert_message(
                    request.room, user, request.text, seq, client_id, now
                )
            except DuplicateKeyError:
                if request.client_id is None:
                    # A fresh server-made client_id cannot clash: another worker took this
                    # seq first. Skipping the read matters on FerretDB, where it is a scan.
                    await self._store.catch_up_seq(request.room)
                    continue
                # Either another worker stored this seq first, or the same client_id raced
                # in from another connection (it won: answer with it).
                holder = await self._store.get_message(request.room, seq)
                if holder is not None and holder.client_id != client_id:
                    await self._store.catch_up_seq(request.room)
                    continue
                earlier = holder or await self._store.find_by_client_id(request.room, client_id)
                if earlier is None:
                    raise Unavailable("message store is unavailable, try again") from None
                return SendResult(earlier, duplicate=True)
            await self._emit(protocol.CHAT_MESSAGE, message.to_wire(), room_channel(request.room))
            self._metrics.messages.inc()
            self._activity.note(request.room, seq, now)
            return SendResult(message, duplicate=False)
        raise Unavailable("message store is busy, try again")

    async def close(self, grace_secs: float) -> None:
        await self._activity.close(grace_secs)

    def _room_lock(self, room: str) -> asyncio.Lock:
        lock = self._room_locks.get(room)
        if lock is None:
            lock = self._room_locks[room] = asyncio.Lock()
        return lock

    async def create_room(self, name: str) -> tuple[Room, bool]:
        return await self._store.ensure_room(name)

    async def page(
        self, room: str, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """One page of history for REST: newest-before `before`, or oldest-after `after`."""
        last_seq = await self._store.room_seq(room)
        if last_seq is None:
            raise NotFound(f"room {room!r} does not exist")
        if after is not None:
            return await self._store.messages_after(room, after, limit, last_seq)
        newest_first = last_seq + 1 if before is None else before
        return await self._store.messages_before(room, newest_first, limit)
