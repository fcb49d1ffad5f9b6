"""The store interface's contract, held by both layouts on the real MongoDB-protocol server and
a real Redis: what a batch stores, what its keys refuse, and history read back page by page,
exactly, however warm or cold the FerretDB layout's tail is."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from chatd.models import utc_now
from chatd.store.amendments import Amendments
from chatd.store.base import NewMessage, Outcome, Store
from chatd.store.ferret import FerretStore
from chatd.store.mongo import MongoStore
from chatd.store.roomlist import RoomList
from chatd.store.tail import Tail
from tests.conftest import Services

COUNT = 260


@contextlib.asynccontextmanager
async def made_store(
    services: Services, layout: str, listeners: list[monitoring.CommandListener] | None = None
) -> AsyncIterator[Store]:
    """A prepared store of `layout` on a database and a Redis prefix of its own, removed after."""
    prefix = f"{services.redis_prefix}c{uuid.uuid4().hex[:6]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        services.mongo_url, tz_aware=True, event_listeners=listeners or []
    )
    db = client[f"{services.mongo_db}_c_{uuid.uuid4().hex[:6]}"]
    redis = aioredis.Redis.from_url(services.redis_url)
    made: Store
    if layout == "single":
        made = MongoStore(db)
    else:
        made = FerretStore(
            db,
            Tail(redis, prefix, keep=100, ttl_secs=600),
            RoomList(redis, prefix),
            Amendments(redis, prefix, db["amendments"]),
        )
    made.prefix = prefix  # type: ignore[attr-defined]
    made.redis = redis  # type: ignore[attr-defined]
    try:
        await made.prepare()
        yield made
    finally:
        await made.close()
        async for key in redis.scan_iter(f"{prefix}:*"):
            await redis.delete(key)
        await redis.aclose()
        await client.drop_database(db.name)
        await client.close()


@pytest.fixture(params=["single", "blocks"])
async def store(request: Any, services: Services) -> AsyncIterator[Store]:
    async with made_store(services, request.param) as made:
        yield made


def message(room: str, seq: int, key: str | None = None) -> NewMessage:
    cid = key or f"c{seq}"
    return NewMessage(str(ObjectId()), room, seq, "ann", f"m{seq}", utc_now(), cid, f"ann:{cid}")


async def fill(store: Store, room: str, count: int, batch: int = 37) -> None:
    await store.open_room(room)
    for first in range(1, count + 1, batch):
        seqs = range(first, min(first + batch, count + 1))
        answers = await store.append([message(room, s) for s in seqs])
        assert {a.outcome for a in answers} == {Outcome.STORED}


async def pages_back(store: Store, room: str, limit: int) -> list[int]:
    seqs: list[int] = []
    before = None
    while True:
        page, more = await store.read_before(room, before, limit)
        assert len(page) <= limit
        seqs = [m.seq for m in page] + seqs
        if not more:
            return seqs
        before = page[0].seq


async def pages_forward(store: Store, room: str, limit: int, since: int = 0) -> list[int]:
    seqs: list[int] = []
    while True:
        page, more = await store.read_after(room, since, limit)
        seqs += [m.seq for m in page]
        if not more:
            return seqs
        since = page[-1].seq


async def forget_redis(store: Store) -> None:
    redis = store.redis  # type: ignore[attr-defined]
    async for key in redis.scan_iter(f"{store.prefix}:*"):  # type: ignore[attr-defined]
        await redis.delete(key)


@pytest.mark.parametrize("limit", [1, 7, 50, 200])
async def test_paging_back_and_forward_returns_every_message_once(store, room, limit):
    await fill(store, room, COUNT)
    assert await pages_back(store, room, limit) == list(range(1, COUNT + 1))
    assert await pages_forward(store, room, limit) == list(range(1, COUNT + 1))
    assert await store.max_seq(room) == COUNT


async def test_history_stays_exact_when_redis_forgets_everything(store, room):
    await fill(store, room, COUNT)
    await forget_redis(store)
    assert await pages_back(store, room, 50) == list(range(1, COUNT + 1))
    assert await pages_forward(store, room, 50, since=100) == list(range(101, COUNT + 1))
    await store.append([message(room, COUNT + 1)])
    latest, more = await store.read_before(room, None, 3)
    assert [m.seq for m in latest] == [COUNT - 1, COUNT, COUNT + 1] and more


async def test_a_seq_stored_before_is_refused_and_nothing_else_changes(store, room):
    await fill(store, room, 5)
    [answer] = await store.append([message(room, 3, key="fresh")])
    assert answer.outcome in (Outcome.SEQ_TAKEN, Outcome.CLASH)
    page, _ = await store.read_after(room, 0, 10)
    assert [m.message for m in page] == ["m1", "m2", "m3", "m4", "m5"]


async def test_a_client_key_stored_before_is_refused_and_found(store, room):
    await fill(store, room, 5)
    first = (await store.read_after(room, 3, 1))[0][0]
    [answer] = await store.append([message(room, 6, key="c4")])
    assert answer.outcome in (Outcome.DUPLICATE, Outcome.CLASH)
    found = await store.find_by_client_key(room, "ann:c4")
    assert found is not None and found.id == first.id and found.seq == 4
    assert await store.find_by_client_key(room, "bob:c4") is None


async def test_one_batch_stores_what_it_can_and_answers_each(store, room):
    await fill(store, room, 3)
    batch = [message(room, 4), message(room, 2, key="new"), message(room, 5, key="c1")]
    outcomes = [a.outcome for a in await store.append(batch)]
    assert outcomes[0] is Outcome.STORED
    assert outcomes[1] in (Outcome.SEQ_TAKEN, Outcome.CLASH)
    assert outcomes[2] in (Outcome.DUPLICATE, Outcome.CLASH)
    assert await pages_forward(store, room, 10) == [1, 2, 3, 4]


async def test_rooms_are_created_once(store, room):
    assert await store.open_room(room) is True
    assert await store.open_room(room) is False
    assert await store.has_room(room)
    assert not await store.has_room(room + "-nope")


async def test_room_list_is_most_recently_active_first_also_after_redis_forgets(store, room):
    names = [f"{room}-{i}" for i in range(5)]
    for name in names:
        await store.open_room(name)
    start = utc_now()
    for i, name in enumerate([names[2], names[0], names[4]]):
        await store.note_activity(name, i + 1, start + timedelta(seconds=1 + i))
    listed = [r.name for r in await store.list_rooms(200) if r.name.startswith(room)]
    assert listed[:3] == [names[4], names[0], names[2]]
    assert set(listed) == set(names)
    await forget_redis(store)
    again = [r.name for r in await store.list_rooms(200) if r.name.startswith(room)]
    assert again[:3] == [names[4], names[0], names[2]] and set(again) == set(names)


def change(room: str, seq: int, kind: str, target: NewMessage, text: str = "") -> NewMessage:
    return NewMessage(
        str(ObjectId()), room, seq, "ann", text, utc_now(), f"x{seq}", f"ann:x{seq}",
        user_id="u_ann", kind=kind, target=target.id, target_seq=target.seq,
    )  # fmt: skip


async def test_edits_and_deletions_apply_in_any_order_and_survive_redis_forgetting(store, room):
    await store.open_room(room)
    originals = [message(room, s) for s in range(1, 4)]
    await store.append(originals)
    kept, gone = originals[1], originals[2]
    newer_edit = change(room, 5, "edit", kept, "v3")
    older_edit = change(room, 4, "edit", kept, "v2")
    gone_edit = change(room, 6, "edit", gone, "secret")
    deletion = change(room, 7, "delete", gone)
    changes = [older_edit, newer_edit, gone_edit, deletion]
    assert {a.outcome for a in await store.append(changes)} == {Outcome.STORED}
    by_seq = {c.seq: c.stored() for c in changes}
    target = {m.seq: m.stored() for m in originals}
    # Workers may apply edits in either order, and twice: the newest one wins.
    for applied in (newer_edit, older_edit, newer_edit, gone_edit, deletion, gone_edit):
        await store.amend(target[applied.target_seq], by_seq[applied.seq])

    async def check() -> None:
        page, _ = await store.read_after(room, 0, 10)
        assert [m.seq for m in page] == list(range(1, 8))
        state = {m.seq: m for m in page}
        assert (state[2].message, state[2].edit_seq, state[2].deleted) == ("v3", 5, False)
        assert state[3].deleted and state[3].message == "" and state[3].deleted_by == "u_ann"
        assert state[6].kind == "edit" and state[6].deleted and state[6].message == ""
        assert state[4].message == "v2" and not state[4].deleted  # the log keeps each edit
        found = await store.find_message(room, kept.id)
        assert found is not None and found.message == "v3" and found.edit_seq == 5
        deleted = await store.find_message(room, gone.id)
        assert deleted is not None and deleted.deleted
        assert await store.find_message(room, older_edit.id) is None  # not a message
        assert await store.find_message(room, str(ObjectId())) is None

    await check()
    await forget_redis(store)
    await check()


class Commands(monitoring.CommandListener):
    """The commands a client sent, by name and collection."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append((event.command_name, str(event.command.get(event.command_name, ""))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_storm_of_joins_into_a_new_room_reads_nothing_but_its_creation(
    services: Services, room: str
):
    # The FerretDB layout: every join opens the room, reads its history and its newest seq.
    # Only the room's creation may reach the database: the rest is the (empty) warm tail.
    commands = Commands()
    async with made_store(services, "blocks", [commands]) as store:
        commands.sent.clear()

        async def join() -> tuple[int, int]:
            await store.open_room(room)
            history, _ = await store.read_before(room, None, 50)
            return len(history), await store.max_seq(room)

        assert await asyncio.gather(*(join() for _ in range(50))) == [(0, 0)] * 50
        assert commands.sent == [("insert", "rooms")]
