"""Edits and deletions in the FerretDB layout: an overlay read beside the messages.

The FerretDB layout reads history from copies (the Redis tail, the archive), and an update on
FerretDB 1.24 scans its collection under the database's write lock, so messages are never
changed in place there. What edits and deletions did to a room's messages is kept instead as
one state per changed message: in Redis, a hash per room (hash-tagged by room) read with every
history page, and durably in the `amendments` collection, from which a room's hash is loaded
again when Redis has lost it. Both are written so that applying changes in any order, or twice,
ends in the same state: a deletion is final, an edit counts only over an older one.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import replace
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from redis.exceptions import RedisError

from chatd.models import DELETE, EDIT, MESSAGE, Message, iso_millis, parse_iso
from chatd.redis_conn import RedisClient
from chatd.shared_run import SharedRuns
from chatd.store.base import mongo_errors

log = logging.getLogger(__name__)

LOADED = "loaded"
# KEYS[1] the room's hash; ARGV: seq of the message, kind, seq of the change, text, at, by.
# Answers the message's state after the change.
_AMEND = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
local state = {}
if current then state = cjson.decode(current) end
if state.deleted then return current end
if ARGV[2] == 'delete' then
  state = {deleted = true, deleted_by = ARGV[6]}
else
  if tonumber(state.edit_seq or '0') >= tonumber(ARGV[3]) then return current end
  state.message = ARGV[4]
  state.edited_at = ARGV[5]
  state.edit_seq = ARGV[3]
end
local encoded = cjson.encode(state)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
return encoded
"""
# Fill a room's hash from the collection without undoing a change applied meanwhile.
_LOAD = """
for i = 1, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'loaded', '1')
return 1
"""


def state_of(change: Message) -> dict[str, Any]:
    if change.kind == DELETE:
        return {"deleted": True, "deleted_by": change.user_id}
    return {
        "message": change.message,
        "edited_at": iso_millis(change.timestamp),
        "edit_seq": str(change.seq),
    }


def applied(m: Message, state: dict[str, Any] | None) -> Message:
    """`m` (a message, or an edit of the message `state` belongs to) in that state."""
    if state is None:
        return m
    if m.kind == EDIT:
        return replace(m, message="", deleted=True) if state.get("deleted") else m
    if state.get("deleted"):
        return replace(m, message="", deleted=True, deleted_by=str(state.get("deleted_by", "")))
    edit_seq = int(state.get("edit_seq", 0))
    if edit_seq <= m.edit_seq:
        return m
    return replace(
        m,
        message=str(state.get("message", m.message)),
        edited_at=parse_iso(str(state["edited_at"])),
        edit_seq=edit_seq,
    )


def keyed_seq(m: Message) -> int | None:
    """Which message's state decides how `m` reads."""
    if m.kind == MESSAGE:
        return m.seq
    if m.kind == EDIT:
        return m.target_seq
    return None


class Amendments:
    def __init__(
        self, redis: RedisClient, prefix: str, collection: AsyncCollection[dict[str, Any]]
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._collection = collection
        self._amend = redis.register_script(_AMEND)
        self._load = redis.register_script(_LOAD)
        self._filling: SharedRuns[str, None] = SharedRuns()

    def _key(self, room: str) -> str:
        return f"{self._prefix}:amended:{{{room}}}"

    async def record(self, target: Message, change: Message) -> None:
        """Durably first: a change that reached the collection survives Redis losing it."""
        await self._store(target, change)
        try:
            await self._amend(
                keys=[self._key(target.room)],
                args=[
                    target.seq,
                    change.kind,
                    change.seq,
                    change.message,
                    iso_millis(change.timestamp),
                    change.user_id,
                ],
            )
        except (RedisError, OSError) as exc:
            # The hash may now be missing this change: drop it, to be loaded afresh.
            log.warning("amendment overlay unavailable (%s)", type(exc).__name__)
            try:
                await self._redis.delete(self._key(target.room))
            except (RedisError, OSError):
                log.warning("could not drop the stale overlay of %r", target.room)

    async def _store(self, target: Message, change: Message) -> None:
        doc_id = f"{target.room}#{target.seq}"
        state = {**state_of(change), "room": target.room, "seq": target.seq}
        async with mongo_errors("record amendment"):
            if change.kind == DELETE:
                state["message"] = ""
                await self._collection.update_one({"_id": doc_id}, {"$set": state}, upsert=True)
                return
            newer = [{"edit_seq": {"$lt": str(change.seq).zfill(16)}}, {"edit_seq": None}]
            state["edit_seq"] = str(change.seq).zfill(16)
            # Refused as a duplicate: the message holds a newer edit, or was deleted.
            with contextlib.suppress(DuplicateKeyError):
                await self._collection.update_one(
                    {"_id": doc_id, "deleted": {"$ne": True}, "$or": newer},
                    {"$set": state},
                    upsert=True,
                )

    async def apply(self, room: str, messages: list[Message]) -> list[Message]:
        seqs = sorted({s for m in messages if (s := keyed_seq(m)) is not None})
        if not seqs:
            return messages
        states = await self._states(room, seqs)
        return [applied(m, states.get(keyed_seq(m) or -1)) for m in messages]

    async def _states(self, room: str, seqs: list[int]) -> dict[int, dict[str, Any]]:
        key = self._key(room)
        try:
            raw = await self._redis.hmget(key, [LOADED, *seqs])
            if raw[0] is None:
                await self._fill_once(room)
                raw = await self._redis.hmget(key, [LOADED, *seqs])
        except (RedisError, OSError) as exc:
            log.warning("amendment overlay unavailable (%s); reading MongoDB", type(exc).__name__)
            return await self._from_collection(room, seqs)
        return {s: json.loads(r) for s, r in zip(seqs, raw[1:], strict=True) if r is not None}

    async def _fill_once(self, room: str) -> None:
        """One fill per room at a time: the joins of a storm all find the hash unloaded."""
        await self._filling.run(room, lambda: self._fill(room))

    async def _fill(self, room: str) -> None:
        args: list[Any] = []
        for seq, state in (await self._from_collection(room, None)).items():
            args += [seq, json.dumps(state)]
        await self._load(keys=[self._key(room)], args=args)

    async def _from_collection(
        self, room: str, seqs: list[int] | None
    ) -> dict[int, dict[str, Any]]:
        query: dict[str, Any] = {"room": room}
        if seqs is not None:
            query["seq"] = {"$in": seqs}
        async with mongo_errors("read amendments"):
            docs = await self._collection.find(query).to_list(None)
        states: dict[int, dict[str, Any]] = {}
        for doc in docs:
            if doc.get("deleted"):
                state: dict[str, Any] = {"deleted": True, "deleted_by": doc.get("deleted_by", "")}
            else:
                state = {
                    "message": doc.get("message", ""),
                    "edited_at": doc.get("edited_at", ""),
                    "edit_seq": str(int(doc.get("edit_seq", "0"))),
                }
            states[int(doc["seq"])] = state
        return states
