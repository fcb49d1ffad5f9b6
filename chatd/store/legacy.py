"""Moving a database written by an older chatd into the layout this one runs.

Versions before the `messages` collection kept each room's messages in collections of its own
(`messages_<hash of the room>`, then one per 1,000 seqs: `messages_<hash>_1`, ...), with a seq
counter (`seq_<hash>`) and a claims collection (`client_ids_<hash>`) per room. Every message of
those is copied into `messages`, the collection both layouts store into, with its id, seq,
time and client_id kept. Copying goes collection by collection and is recorded in `meta`, so a
stop half-way resumes where it stopped; a copy repeated by another worker is refused by key.
The old collections are then dropped, except that the FerretDB layout keeps the per-room ones
as its archive (`chatd/store/ferret.py`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from typing import TYPE_CHECKING, Any

from bson import ObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError

from chatd.models import client_key

if TYPE_CHECKING:
    from chatd.store.mongo import MongoStore

log = logging.getLogger(__name__)

LAYOUT_ID = "layout"
LAYOUT_VERSION = 3
BLOCK_SEQS = 1000
COPY_CHUNK = 500
ROOM_MESSAGES = re.compile(r"messages_([0-9a-f]{24})(_[0-9]+)?")
ROOM_SIDECARS = re.compile(r"(seq|client_ids)_[0-9a-f]{24}")


def room_hash(room: str) -> str:
    return hashlib.sha256(room.encode()).hexdigest()[:24]


def block_collection(room: str, block: int) -> str:
    """Where messages with seqs block*BLOCK_SEQS+1 .. (block+1)*BLOCK_SEQS of `room` live in
    the per-room layout (the FerretDB archive keeps this naming)."""
    name = "messages_" + room_hash(room)
    return name if block == 0 else f"{name}_{block}"


def block_of(seq: int) -> int:
    return (max(seq, 1) - 1) // BLOCK_SEQS


def canonical(doc: dict[str, Any]) -> dict[str, Any]:
    """A message document of the per-room layout (`_id` room#seq, `mid`) as `messages` has it."""
    return {
        "_id": ObjectId(doc["mid"]) if ObjectId.is_valid(doc.get("mid", "")) else ObjectId(),
        "room": doc["room"],
        "seq": int(doc["seq"]),
        "user": doc["user"],
        "message": doc["message"],
        "timestamp": doc["timestamp"],
        "client_id": doc["client_id"],
        "client_key": client_key(doc["user"], doc["client_id"]),
    }


async def _insert_all(collection: Any, docs: list[dict[str, Any]]) -> None:
    """Insert, ignoring documents already there (a resumed or repeated copy)."""
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise


async def move_into(store: MongoStore) -> None:
    """Copy every message of the per-room layout into `messages`, then drop what the running
    layout no longer reads. Idempotent; each finished collection is recorded in `meta`, and
    the layout's version once all are."""
    state = await store.meta.find_one({"_id": LAYOUT_ID}) or {}
    if state.get("version", 0) >= LAYOUT_VERSION:
        return
    done = set(state.get("copied", []))
    names = await store.db.list_collection_names()
    keep_rooms = store.layout == "blocks"
    for name in sorted(names):
        if not ROOM_MESSAGES.fullmatch(name) or name in done:
            continue
        source = store.db[name]
        chunk: list[dict[str, Any]] = []
        copied = 0
        misplaced: list[dict[str, Any]] = []
        async for doc in source.find({}):
            chunk.append(canonical(doc))
            # The oldest layout kept every seq of a room in block 0's collection.
            if keep_rooms and block_collection(doc["room"], block_of(int(doc["seq"]))) != name:
                misplaced.append(doc)
            if len(chunk) >= COPY_CHUNK:
                await _insert_all(store.messages, chunk)
                copied += len(chunk)
                chunk = []
        if chunk:
            await _insert_all(store.messages, chunk)
            copied += len(chunk)
        for doc in misplaced:
            target = store.db[block_collection(doc["room"], block_of(int(doc["seq"])))]
            with contextlib.suppress(DuplicateKeyError):
                await target.insert_one(doc)
        if misplaced:
            ids = [d["_id"] for d in misplaced]
            await source.delete_many({"_id": {"$in": ids}})
        await store.meta.update_one(
            {"_id": LAYOUT_ID}, {"$addToSet": {"copied": name}}, upsert=True
        )
        if not keep_rooms:
            await source.drop()
        log.info("moved %d messages of %s into %s", copied, name, store.messages.name)
    for name in names:
        if ROOM_SIDECARS.fullmatch(name):
            await store.db[name].drop()
    await store.meta.update_one(
        {"_id": LAYOUT_ID},
        {"$set": {"version": LAYOUT_VERSION, "layout": store.layout}},
        upsert=True,
    )
