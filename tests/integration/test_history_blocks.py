"""A room's messages live in blocks of BLOCK_SEQS seqs: reads, retries and replays that cross a
block, and rooms stored by versions that kept every message in one collection."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from chatd.store import (
    BLOCK_SEQS,
    COUNTER_ID,
    counter_collection,
    markers_collection,
    messages_collection,
)
from tests.conftest import http_get

BEFORE_EDGE = 3  # messages seeded below the first block edge


def seed(mongo: Any, room: str, top: int, blocks: bool) -> None:
    """A room holding seqs 1..top, as chatd stores them (blocks) or as older versions did."""
    now = datetime.now(UTC)
    mongo.rooms.insert_one(
        {"_id": room, "name": room, "created_at": now, "last_activity": now, "last_seq": top}
    )
    mongo[counter_collection(room)].insert_one({"_id": COUNTER_ID, "n": top})
    docs: dict[str, list[dict[str, Any]]] = {}
    for seq in range(1, top + 1):
        block = (seq - 1) // BLOCK_SEQS if blocks else 0
        docs.setdefault(messages_collection(room, block), []).append(
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
        mongo[name].insert_many(batch)
    # Each client_id was claimed when sent (older versions wrote the same key, with the seq).
    mongo[markers_collection(room)].insert_many(
        [{"_id": f"{room}#cid-{seq}", "room": room, "seq": seq} for seq in range(1, top + 1)]
    )


def page(url: str, room: str, **params: int) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    status, body = http_get(f"{url}/api/rooms/{room}/messages?{query}")
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


async def test_sends_reads_and_retries_cross_a_block_edge(fast_server, client, room, mongo):
    top = BLOCK_SEQS - BEFORE_EDGE
    seed(mongo, room, top, blocks=True)
    ann = await client(fast_server.url)
    assert (await ann.join(room, "ann"))["last_seq"] == top
    acks = [await ann.send(room, f"n{i}", client_id=f"new-{i}") for i in range(6)]
    assert [a["seq"] for a in acks] == list(range(top + 1, top + 7))
    assert mongo[messages_collection(room, 1)].count_documents({}) == 3
    # A retry of a message in the block before the newest is still found.
    retry = await ann.send(room, "n0", client_id="new-0")
    assert retry["duplicate"] and retry["seq"] == top + 1
    old = await ann.send(room, "m5", client_id="cid-5")
    assert old["duplicate"] and old["seq"] == 5

    late = await client(fast_server.url)
    ack = await late.join(room, "late", since=BLOCK_SEQS - 5)
    history = await late.wait_for("chat-history", lambda h: len(h) == 1)
    assert [m["seq"] for m in history[0]] == list(range(BLOCK_SEQS - 4, top + 7))
    assert ack["last_seq"] == top + 6

    fresh = await client(fast_server.url)
    await fresh.join(room, "fresh")
    history = await fresh.wait_for("chat-history", lambda h: len(h) == 1)
    assert [m["seq"] for m in history[0]][-1] == top + 6
    assert len(history[0]) == 50

    body = await asyncio.to_thread(page, fast_server.url, room, before=BLOCK_SEQS + 2, limit=6)
    assert [m["seq"] for m in body["messages"]] == list(range(BLOCK_SEQS - 4, BLOCK_SEQS + 2))
    assert body["has_more"]


async def test_a_room_stored_in_one_collection_is_moved_into_blocks_at_start(
    start_worker, client, room, mongo
):
    top = BLOCK_SEQS + 5
    seed(mongo, room, top, blocks=False)
    mongo.meta.delete_many({})
    worker = start_worker()
    for _ in range(100):
        if mongo.meta.find_one({"_id": "layout"}):
            break
        await asyncio.sleep(0.1)
    assert mongo[messages_collection(room, 0)].count_documents({}) == BLOCK_SEQS
    moved = mongo[messages_collection(room, 1)].find({}).sort("seq", 1)
    assert [d["seq"] for d in moved] == list(range(BLOCK_SEQS + 1, top + 1))

    ann = await client(worker.url)
    await ann.join(room, "ann", since=BLOCK_SEQS - 2)
    history = await ann.wait_for("chat-history", lambda h: len(h) == 1)
    assert [m["seq"] for m in history[0]] == list(range(BLOCK_SEQS - 1, top + 1))
    sent = await ann.send(room, "next")
    assert sent["seq"] == top + 1
    retry = await ann.send(room, "again", client_id=f"cid-{top}")
    assert retry["duplicate"] and retry["seq"] == top
