"""MongoDB's own schema: `rooms` (one document per room) and one `messages` collection.

`messages` has two unique indexes, `(room, seq)` and `(room, client_key)`: the first makes a
seq impossible to store twice, the second makes a retried message impossible to store twice,
in any interleaving of workers. History and replays are range scans of the first. The number
of collections never grows with rooms or messages.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.write_concern import WriteConcern

from chatd.errors import Unavailable
from chatd.models import EDIT, MESSAGE, Message, Room, parse_iso, utc_now
from chatd.store import legacy
from chatd.store.base import Appended, NewMessage, Outcome, Owners, Store, mongo_errors

log = logging.getLogger(__name__)

MESSAGES = "messages"
SEQ_INDEX = "room_seq_unique"
CLIENT_KEY_INDEX = "room_client_key_unique"
DUPLICATE_KEY = 11000
# Rooms this worker has seen exist (rooms are never deleted), to skip the insert on join.
KNOWN_ROOMS_MAX = 100_000


def message_doc(m: NewMessage) -> dict[str, Any]:
    doc = {
        "_id": ObjectId(m.id),
        "room": m.room,
        "seq": m.seq,
        "user": m.user,
        "user_id": m.user_id,
        "message": m.text,
        "timestamp": m.timestamp,
        "client_id": m.client_id,
        "client_key": m.client_key,
    }
    if m.kind != MESSAGE:
        doc.update(kind=m.kind, target=m.target, target_seq=m.target_seq)
    return doc


def to_message(doc: dict[str, Any]) -> Message:
    return Message(
        id=str(doc["_id"]) if isinstance(doc["_id"], ObjectId) else doc["mid"],
        room=doc["room"],
        user=doc["user"],
        message=doc["message"],
        timestamp=doc["timestamp"],
        seq=int(doc["seq"]),
        client_id=doc["client_id"],
        user_id=doc.get("user_id", ""),
        kind=doc.get("kind", MESSAGE),
        target=doc.get("target", ""),
        target_seq=int(doc.get("target_seq", 0)),
        edited_at=doc.get("edited_at"),
        edit_seq=int(doc.get("edit_seq", 0)),
        deleted=bool(doc.get("deleted", False)),
        deleted_by=doc.get("deleted_by", ""),
    )


def edit_update(change: Message) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter and update applying an edit to its message's document: only to a message
    not deleted and not edited by a newer edit, whatever order workers apply edits in."""
    newer = [{"edit_seq": {"$lt": change.seq}}, {"edit_seq": {"$exists": False}}]
    update = {"message": change.message, "edited_at": change.timestamp, "edit_seq": change.seq}
    return {"deleted": {"$ne": True}, "$or": newer}, {"$set": update}


def delete_update(change: Message) -> dict[str, Any]:
    """A deleted message keeps no text."""
    return {"$set": {"deleted": True, "deleted_by": change.user_id, "message": ""}}


def to_owners(doc: dict[str, Any] | None) -> Owners:
    if doc is None:
        return Owners("", frozenset())
    moderators = doc.get("moderators")
    return Owners(
        owner=str(doc.get("owner", "")),
        moderators=frozenset(m for m in moderators if isinstance(m, str))
        if isinstance(moderators, list)
        else frozenset(),
    )


def to_room(doc: dict[str, Any]) -> Room:
    return Room(
        name=doc["name"],
        created_at=doc["created_at"],
        last_message_at=doc.get("last_message_at"),
        last_seq=int(doc.get("last_seq", 0)),
    )


def refused_key(error: dict[str, Any]) -> Outcome:
    """Which unique key refused one write of a bulk insert. MongoDB names it; FerretDB 1.24
    says only "duplicate key"."""
    pattern = error.get("keyPattern") or {}
    if "seq" in pattern or SEQ_INDEX in error.get("errmsg", ""):
        return Outcome.SEQ_TAKEN
    if "client_key" in pattern or CLIENT_KEY_INDEX in error.get("errmsg", ""):
        return Outcome.DUPLICATE
    return Outcome.CLASH


class MongoStore(Store):
    layout = "single"

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        # An acked message must survive a crash: majority on a replica set, and on a
        # standalone server majority means journaled.
        durable = WriteConcern(w="majority")
        self.db = db
        self.rooms = db.get_collection("rooms", write_concern=durable)
        self.messages = db.get_collection(MESSAGES, write_concern=durable)
        self.meta = db.get_collection("meta", write_concern=durable)
        self.moderation = db.get_collection("moderation", write_concern=durable)
        self._known_rooms: set[str] = set()
        self._opening: dict[str, asyncio.Task[bool]] = {}

    async def prepare(self) -> None:
        async with mongo_errors("create indexes"):
            await self.rooms.create_index([("last_activity", DESCENDING)], name="activity")
            await self.messages.create_index(
                [("room", ASCENDING), ("seq", ASCENDING)], unique=True, name=SEQ_INDEX
            )
            await self.messages.create_index(
                [("room", ASCENDING), ("client_key", ASCENDING)],
                unique=True,
                name=CLIENT_KEY_INDEX,
            )
            # The edits of a message, found when it is deleted (only edits have `target`).
            await self.messages.create_index(
                [("room", ASCENDING), ("target", ASCENDING)], name="room_target", sparse=True
            )
            await self.moderation.create_index(
                [("room", ASCENDING), ("at", DESCENDING)], name="room_at"
            )
            await legacy.move_into(self)
            state = await self.meta.find_one({"_id": legacy.LAYOUT_ID}) or {}
            previous = state.get("layout", self.layout)
            if previous != self.layout:
                await self.adopt(previous)
                await self.meta.update_one(
                    {"_id": legacy.LAYOUT_ID}, {"$set": {"layout": self.layout}}
                )

    async def adopt(self, previous: str) -> None:
        """Take over a database the other layout wrote: `messages` holds every message in
        both, so only the FerretDB archive is left to drop."""
        for name in await self.db.list_collection_names():
            if legacy.ROOM_MESSAGES.fullmatch(name):
                await self.db[name].drop()
        # Edits and deletions the other layout kept beside the messages go into them.
        async for doc in self.db["amendments"].find({}):
            where = {"room": doc["room"], "seq": doc["seq"]}
            if doc.get("deleted"):
                await self.messages.update_one(
                    where,
                    {"$set": {"deleted": True, "deleted_by": doc.get("deleted_by", ""),
                              "message": ""}},
                )  # fmt: skip
                continue
            edit_seq = int(doc.get("edit_seq", "0"))
            edited_at = parse_iso(doc["edited_at"]) if doc.get("edited_at") else None
            await self.messages.update_one(
                where,
                {"$set": {"message": doc.get("message", ""), "edited_at": edited_at,
                          "edit_seq": edit_seq}},
            )  # fmt: skip

    async def close(self) -> None:
        """The client belongs to whoever opened it."""

    async def ping(self) -> bool:
        try:
            await self.db.command("ping")
        except PyMongoError:
            return False
        return True

    def _remember(self, room: str) -> None:
        if len(self._known_rooms) >= KNOWN_ROOMS_MAX:
            self._known_rooms.clear()
        self._known_rooms.add(room)

    async def open_room(self, name: str, owner: str = "") -> bool:
        if name in self._known_rooms:
            return False
        # The joins of a storm into a new room arrive together: one insert, the others wait
        # for it (and did not create the room).
        opening = self._opening.get(name)
        if opening is not None:
            await asyncio.shield(opening)
            return False
        opening = asyncio.get_running_loop().create_task(self._insert_room(name, owner))
        self._opening[name] = opening
        opening.add_done_callback(lambda _: self._opening.pop(name, None))
        return await asyncio.shield(opening)

    async def _insert_room(self, name: str, owner: str) -> bool:
        now = utc_now()
        doc = {"_id": name, "name": name, "created_at": now, "last_activity": now, "last_seq": 0}
        if owner:
            doc["owner"] = owner
        async with mongo_errors("open room"):
            try:
                # Insert first: a refused insert is a key lookup everywhere, even on FerretDB,
                # where reading the document would scan `rooms`.
                await self.rooms.insert_one(doc)
            except DuplicateKeyError:
                self._remember(name)
                return False
        self._remember(name)
        return True

    async def get_room(self, name: str) -> Room | None:
        async with mongo_errors("read room"):
            doc = await self.rooms.find_one({"_id": name})
        if doc is None:
            return None
        self._remember(name)
        return to_room(doc)

    async def has_room(self, name: str) -> bool:
        return name in self._known_rooms or await self.get_room(name) is not None

    async def list_rooms(self, limit: int) -> list[Room]:
        async with mongo_errors("list rooms"):
            cursor = self.rooms.find({}).sort("last_activity", DESCENDING).limit(limit)
            docs = await cursor.to_list(limit)
        return [to_room(d) for d in docs]

    async def append(self, batch: list[NewMessage]) -> list[Appended]:
        if not batch:
            return []
        answers = [Appended(Outcome.STORED)] * len(batch)
        try:
            await self.messages.insert_many([message_doc(m) for m in batch], ordered=False)
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                raise Unavailable("message store is unavailable, try again") from exc
            for error in exc.details.get("writeErrors", []):
                if error.get("code") != DUPLICATE_KEY:
                    raise Unavailable("message store is unavailable, try again") from exc
                answers[error["index"]] = Appended(refused_key(error))
        except PyMongoError as exc:
            log.warning("MongoDB insert of %d messages failed: %s", len(batch), type(exc).__name__)
            raise Unavailable("message store is unavailable, try again") from exc
        for i, answer in enumerate(answers):
            if answer.outcome is Outcome.DUPLICATE:
                existing = await self.find_by_client_key(batch[i].room, batch[i].client_key)
                answers[i] = Appended(Outcome.DUPLICATE, existing)
        return answers

    async def find_by_client_key(self, room: str, client_key: str) -> Message | None:
        async with mongo_errors("find message"):
            doc = await self.messages.find_one({"room": room, "client_key": client_key})
        return None if doc is None else to_message(doc)

    async def max_seq(self, room: str) -> int:
        async with mongo_errors("read newest seq"):
            doc = await self.messages.find_one({"room": room}, sort=[("seq", DESCENDING)])
        return 0 if doc is None else int(doc["seq"])

    async def read_after(self, room: str, since: int, limit: int) -> tuple[list[Message], bool]:
        async with mongo_errors("read history"):
            cursor = self.messages.find({"room": room, "seq": {"$gt": since}})
            docs = await cursor.sort("seq", ASCENDING).limit(limit + 1).to_list(limit + 1)
        return [to_message(d) for d in docs[:limit]], len(docs) > limit

    async def read_before(
        self, room: str, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        query: dict[str, Any] = {"room": room}
        if before is not None:
            query["seq"] = {"$lt": before}
        async with mongo_errors("read history"):
            cursor = self.messages.find(query).sort("seq", DESCENDING).limit(limit + 1)
            docs = await cursor.to_list(limit + 1)
        return [to_message(d) for d in reversed(docs[:limit])], len(docs) > limit

    async def note_activity(self, room: str, seq: int, at: datetime) -> None:
        async with mongo_errors("note room activity"):
            await self.rooms.update_one(
                {"_id": room},
                {"$max": {"last_seq": seq, "last_message_at": at, "last_activity": at}},
            )

    async def find_message(self, room: str, id: str) -> Message | None:
        async with mongo_errors("find message"):
            doc = await self.messages.find_one({"_id": ObjectId(id), "room": room})
        if doc is None or doc.get("kind", MESSAGE) != MESSAGE:
            return None
        return to_message(doc)

    async def amend(self, target: Message, change: Message) -> None:
        where = {"_id": ObjectId(target.id), "room": target.room}
        async with mongo_errors("amend message"):
            if change.kind == EDIT:
                condition, update = edit_update(change)
                await self.messages.update_one({**where, **condition}, update)
                return
            await self.messages.update_one(where, delete_update(change))
            await self.messages.update_many(
                {"room": target.room, "target": target.id, "kind": EDIT},
                {"$set": {"deleted": True, "message": ""}},
            )

    async def owners(self, room: str) -> Owners:
        async with mongo_errors("read room owners"):
            doc = await self.rooms.find_one({"_id": room}, projection={"owner": 1, "moderators": 1})
        return to_owners(doc)

    async def set_moderator(self, room: str, user_id: str, moderator: bool) -> None:
        change = {"$addToSet" if moderator else "$pull": {"moderators": user_id}}
        async with mongo_errors("set room role"):
            await self.rooms.update_one({"_id": room}, change)

    async def log_moderation(self, entry: dict[str, Any]) -> None:
        async with mongo_errors("record moderation"):
            await self.moderation.insert_one(dict(entry))

    async def moderation_log(self, room: str, limit: int) -> list[dict[str, Any]]:
        async with mongo_errors("read moderation log"):
            cursor = self.moderation.find({"room": room}, projection={"_id": 0})
            return await cursor.sort("at", DESCENDING).limit(limit).to_list(limit)
