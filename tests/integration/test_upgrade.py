"""A database written by the per-room layout of earlier versions keeps all its history: it is
moved into the layout the worker runs, once, resumably, and the rooms go on from their seqs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient

from chatd.store.legacy import BLOCK_SEQS, block_collection, room_hash
from tests.conftest import Services, http_get

OLD_TOP = BLOCK_SEQS + 5  # crosses the first block edge


@pytest.fixture
def old_db(services: Services) -> Iterator[tuple[str, Any]]:
    name = f"{services.mongo_db}_up_{uuid.uuid4().hex[:6]}"
    client: MongoClient[dict[str, Any]] = MongoClient(services.mongo_url)
    yield name, client[name]
    client.drop_database(name)
    client.close()


def seed_old(db: Any, room: str, top: int, blocks: bool) -> None:
    """A room as versions with per-room collections stored it: seq counter, claims, and the
    messages in blocks of BLOCK_SEQS (or, oldest of all, every seq in the first)."""
    now = datetime.now(UTC)
    db.rooms.insert_one(
        {"_id": room, "name": room, "created_at": now, "last_activity": now, "last_seq": top}
    )
    db[f"seq_{room_hash(room)}"].insert_one({"_id": "seq", "n": top})
    docs: dict[str, list[dict[str, Any]]] = {}
    for seq in range(1, top + 1):
        target = block_collection(room, (seq - 1) // BLOCK_SEQS if blocks else 0)
        docs.setdefault(target, []).append(
            {
                "_id": f"{room}#{seq}",
                "mid": uuid.uuid4().hex[:24],
                "room": room,
                "seq": seq,
                "user": "old",
                "message": f"m{seq}",
                "timestamp": now,
                "client_id": f"cid-{seq}",
            }
        )
    for name, batch in docs.items():
        db[name].insert_many(batch)
    db[f"client_ids_{room_hash(room)}"].insert_many(
        [{"_id": f"{room}#cid-{seq}", "room": room} for seq in range(1, top + 1)]
    )
    db.meta.update_one({"_id": "layout"}, {"$set": {"version": 2}}, upsert=True)


def all_pages(url: str, room: str) -> list[int]:
    seqs: list[int] = []
    before = ""
    while True:
        status, body = http_get(f"{url}/api/rooms/{room}/messages?limit=200{before}")
        assert status == 200, body
        page = json.loads(body)
        seqs = [m["seq"] for m in page["messages"]] + seqs
        if not page["has_more"]:
            return seqs
        before = f"&before={page['messages'][0]['seq']}"


@pytest.mark.parametrize("layout", ["blocks", "single"])
async def test_old_per_room_layout_is_moved_and_keeps_every_message(
    start_worker, client, old_db, layout
):
    name, db = old_db
    blocked, oldest = "r-blocked-" + uuid.uuid4().hex[:6], "r-oldest-" + uuid.uuid4().hex[:6]
    seed_old(db, blocked, OLD_TOP, blocks=True)
    seed_old(db, oldest, OLD_TOP, blocks=False)
    worker = start_worker(CHATD_MONGO_DB=name, CHATD_MONGO_LAYOUT=layout)
    for room in (blocked, oldest):
        assert all_pages(worker.url, room) == list(range(1, OLD_TOP + 1))
        assert db.messages.count_documents({"room": room}) == OLD_TOP
        ann = await client(worker.url)
        ack = await ann.join(room, "ann")
        assert ack["last_seq"] == OLD_TOP
        [history] = await ann.wait_for("chat-history", lambda h: len(h) == 1)
        assert history[-1]["message"] == f"m{OLD_TOP}"
        sent = await ann.send(room, "after the move")
        assert sent["ok"] and sent["seq"] > OLD_TOP
        # A retry of a message sent before the move is still one message.
        again = await ann.send(room, "m7", client_id="cid-7")
        assert again["ok"], again
    names = set(db.list_collection_names())
    assert not any(n.startswith(("seq_", "client_ids_")) for n in names)
    per_room = {n for n in names if n.startswith("messages_")}
    if layout == "single":
        assert per_room == set()  # MongoDB's schema: the collections do not grow with rooms
    else:
        assert block_collection(oldest, 1) in per_room  # the oldest layout moved into blocks
    assert db.meta.find_one({"_id": "layout"})["version"] == 3


async def test_a_move_stopped_half_way_carries_on_and_copies_each_message_once(
    start_worker, old_db
):
    name, db = old_db
    room = "r-half-" + uuid.uuid4().hex[:6]
    seed_old(db, room, OLD_TOP, blocks=True)
    # What a worker leaves when stopped during the move: some messages copied, none recorded.
    half = list(db[block_collection(room, 0)].find({}).sort("seq", 1).limit(300))
    db.messages.insert_many(
        [
            {
                "_id": ObjectId(d["mid"]),
                "room": room,
                "seq": d["seq"],
                "user": d["user"],
                "message": d["message"],
                "timestamp": d["timestamp"],
                "client_id": d["client_id"],
                "client_key": f"{d['user']}:{d['client_id']}",
            }
            for d in half
        ]
    )
    worker = start_worker(CHATD_MONGO_DB=name, CHATD_MONGO_LAYOUT="single")
    assert all_pages(worker.url, room) == list(range(1, OLD_TOP + 1))
    assert db.messages.count_documents({"room": room}) == OLD_TOP
