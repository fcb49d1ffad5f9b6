"""The chat protocol on one real worker: joins, history, messages, seq, presence and leaves."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from chatd.store.mongo import MESSAGES
from tests.conftest import http_get
from tests.integration.conftest import stored

ISO_MILLIS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
SETTLE_SECS = 0.3  # time for a broadcast that should NOT arrive to show up anyway


async def send_many(c, room: str, texts: list[str]) -> list[dict[str, Any]]:
    """Emit every message at once (one connection's events are handled in send order) and
    wait for all the acks: one round trip instead of one per message."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in texts]
    for text, fut in zip(texts, futures, strict=True):
        await c.sio.emit("chatMessage", {"room": room, "message": text}, callback=fut.set_result)
    acks = list(await asyncio.wait_for(asyncio.gather(*futures), 20))
    assert all(a["ok"] for a in acks), acks
    assert [a["seq"] for a in acks] == sorted(a["seq"] for a in acks)
    return acks


# ---- join -----------------------------------------------------------------------------------


async def test_join_new_room_acks_empty_state_and_creates_the_room(server, client, room, mongo):
    ann = await client(server.url)
    ack = await ann.join(room, "ann")
    assert ack["ok"] is True
    assert ack["room"] == room
    assert ack["last_seq"] == 0
    assert ack["online"] == ["ann"]
    assert ack["created"] is True
    history = await ann.wait_for("chat-history", lambda h: len(h) == 1)
    assert history == [[]]
    assert mongo.rooms.count_documents({"name": room}) == 1


async def test_join_sends_latest_history_oldest_first(fast_server, client, room):
    ann = await client(fast_server.url)
    await ann.join(room, "ann")
    await send_many(ann, room, [f"m{i}" for i in range(1, 56)])
    bob = await client(fast_server.url)
    ack = await bob.join(room, "bob")
    assert ack["last_seq"] == 55
    assert ack["has_more"] is True
    assert ack["online"] == ["ann", "bob"]
    [history] = await bob.wait_for("chat-history", lambda h: len(h) == 1)
    # The latest 50 (limits.history), oldest first.
    assert [m["seq"] for m in history] == list(range(6, 56))
    assert [m["message"] for m in history] == [f"m{i}" for i in range(6, 56)]
    assert {m["user"] for m in history} == {"ann"}
    assert all(m["room"] == room and ISO_MILLIS_Z.fullmatch(m["timestamp"]) for m in history)


async def test_join_notifies_the_others_but_not_the_joiner(server, client, room):
    ann = await client(server.url)
    await ann.join(room, "ann")
    bob = await client(server.url)
    await bob.join(room, "bob")
    [note] = await ann.wait_for("notification", lambda n: len(n) == 1)
    assert note["type"] == "join"
    assert note["room"] == room
    assert note["user"] == "bob"
    assert "bob" in note["text"]
    assert ISO_MILLIS_Z.fullmatch(note["timestamp"])
    await asyncio.sleep(SETTLE_SECS)
    assert bob.events["notification"] == []


async def test_presence_lists_every_member_sorted(server, client, room):
    bob = await client(server.url)
    await bob.join(room, "bob")
    ann = await client(server.url)
    await ann.join(room, "ann")
    latest = await bob.wait_for("presence", lambda p: p and p[-1]["users"] == ["ann", "bob"])
    assert latest[-1]["room"] == room
    assert latest[-1]["users"] == ["ann", "bob"]
    members = latest[-1]["members"]
    assert [m["name"] for m in members] == ["ann", "bob"]
    assert len({m["user_id"] for m in members}) == 2
    # bob made the room: he owns it.
    assert [m["role"] for m in members] == ["member", "owner"]
    await ann.wait_for("presence", lambda p: p and p[-1]["users"] == ["ann", "bob"])


async def test_join_twice_is_idempotent_for_the_others(server, client, room):
    ann = await client(server.url)
    await ann.join(room, "ann")
    bob = await client(server.url)
    await bob.join(room, "bob")
    await ann.wait_for("notification", lambda n: len(n) == 1)
    await ann.wait_for("presence", lambda p: len(p) == 2)
    await ann.send(room, "before rejoin")
    again = await bob.join(room, "bob")
    assert again["online"] == ["ann", "bob"]
    assert again["last_seq"] == 1
    assert again["created"] is False
    # The rejoiner gets history again; the others see no second join.
    histories = await bob.wait_for("chat-history", lambda h: len(h) == 2)
    assert [m["message"] for m in histories[1]] == ["before rejoin"]
    await asyncio.sleep(SETTLE_SECS)
    assert len(ann.events["notification"]) == 1
    assert len(ann.events["presence"]) == 2
    # Still one membership: one message arrives once.
    await ann.send(room, "after rejoin")
    await bob.wait_for("chatMessage", lambda ms: len(ms) == 2)
    await asyncio.sleep(SETTLE_SECS)
    assert [m["message"] for m in bob.messages(room)] == ["before rejoin", "after rejoin"]


async def test_join_again_under_another_name_replaces_the_old_name_in_presence(
    server, client, room
):
    ann = await client(server.url)
    await ann.join(room, "ann")
    await ann.join(room, "annie")
    bob = await client(server.url)
    ack = await bob.join(room, "bob")
    assert ack["online"] == ["annie", "bob"]
    await ann.send(room, "hi")
    [message] = await bob.wait_for("chatMessage", lambda ms: len(ms) == 1)
    assert message["user"] == "annie"


# ---- messages -------------------------------------------------------------------------------


async def test_message_is_acked_then_broadcast_to_members_and_sender(server, client, room, mongo):
    ann = await client(server.url)
    bob = await client(server.url)
    outsider = await client(server.url)
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    await outsider.join(room + "-other", "olga")
    ack = await ann.send(room, "hello <b>world</b>")
    assert set(ack) >= {"ok", "id", "seq", "timestamp"}
    assert ack["ok"] is True and ack["seq"] == 1 and ack["duplicate"] is False
    assert ISO_MILLIS_Z.fullmatch(ack["timestamp"])
    expected = {
        "id": ack["id"],
        "room": room,
        "user": "ann",
        "message": "hello <b>world</b>",
        "timestamp": ack["timestamp"],
        "seq": 1,
    }
    for member in (ann, bob):
        [got] = await member.wait_for("chatMessage", lambda ms: len(ms) == 1)
        assert {k: got[k] for k in expected} == expected
    await asyncio.sleep(SETTLE_SECS)
    assert outsider.messages() == []
    [doc] = stored(mongo, room)
    assert str(doc["_id"]) == ack["id"]
    assert (doc["user"], doc["message"], doc["seq"]) == ("ann", "hello <b>world</b>", 1)


async def test_sender_name_comes_from_the_join_not_the_payload(server, client, room):
    ann = await client(server.url)
    await ann.join(room, "ann")
    ack = await ann.send(room, "hi", user="mallory", username="mallory", seq=99, id="x")
    assert ack["ok"] and ack["seq"] == 1 and ack["id"] != "x"
    [got] = await ann.wait_for("chatMessage", lambda ms: len(ms) == 1)
    assert got["user"] == "ann"


async def test_events_emitted_without_waiting_for_the_join_ack_are_handled_in_order(
    server, client, room
):
    # A client that joins and talks at once (or flushes a queue on reconnect) must not see
    # its message refused as not_joined because the join was still waiting on MongoDB.
    ann = await client(server.url)
    loop = asyncio.get_running_loop()
    joined, typed, sent, left = (loop.create_future() for _ in range(4))
    await ann.sio.emit("joinRoom", {"username": "ann", "room": room}, callback=joined.set_result)
    await ann.sio.emit("typing", {"room": room, "typing": True}, callback=typed.set_result)
    await ann.sio.emit("chatMessage", "right away", callback=sent.set_result)
    await ann.sio.emit("leaveRoom", {"room": room}, callback=left.set_result)
    acks = await asyncio.wait_for(asyncio.gather(joined, typed, sent, left), 10)
    assert [a["ok"] for a in acks] == [True, True, True, True], acks
    assert acks[2]["seq"] == 1


async def test_bare_string_chat_message_goes_to_the_last_joined_room(server, client, room, mongo):
    ann = await client(server.url)
    first, last = room + "-a", room + "-b"
    await ann.join(first, "ann")
    await ann.join(last, "ann")
    ack = await ann.call("chatMessage", "to the last room")
    assert ack["ok"], ack
    [got] = await ann.wait_for("chatMessage", lambda ms: len(ms) == 1)
    assert got["room"] == last
    no_room = await ann.call("chatMessage", {"message": "no room field"})
    assert no_room["ok"], no_room
    assert [d["message"] for d in stored(mongo, last)] == ["to the last room", "no room field"]
    assert stored(mongo, first) == []


async def test_bare_string_before_any_join_is_invalid(server, client):
    ann = await client(server.url)
    ack = await ann.call("chatMessage", "nobody hears this")
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload"


async def test_joining_a_room_named_like_another_clients_sid_reads_nothing_of_theirs(
    server, client, room
):
    bob = await client(server.url)
    for _ in range(20):  # a sid may start with '-', which no room name may
        sid = bob.sio.get_sid()
        if sid[0].isalnum():
            break
        await bob.sio.disconnect()
        bob = await client(server.url)
    eve = await client(server.url)
    await eve.join(sid, "eve")
    await bob.join(room, "bob")
    await bob.send(room, "private to the room")
    await bob.wait_for("chatMessage", lambda ms: len(ms) == 1)
    await asyncio.sleep(SETTLE_SECS)
    assert len(eve.events["chat-history"]) == 1  # her own join's, nothing of Bob's
    assert eve.messages() == []


async def test_sending_to_a_room_not_joined_is_refused_as_not_joined(server, client, room, mongo):
    ann = await client(server.url)
    bob = await client(server.url)
    await bob.join(room, "bob")
    await ann.join(room + "-mine", "ann")
    ack = await ann.send(room, "sneaky")
    assert ack == {"ok": False, "error": {"code": "not_joined", "message": ack["error"]["message"]}}
    await asyncio.sleep(SETTLE_SECS)
    assert bob.messages() == []
    assert stored(mongo, room) == []


async def test_seq_strictly_increases_under_concurrent_sends_from_several_clients(
    fast_server, client, room, mongo
):
    senders = [await client(fast_server.url) for _ in range(5)]
    for i, sender in enumerate(senders):
        await sender.join(room, f"user{i}")
    watcher = await client(fast_server.url)
    await watcher.join(room, "watcher")

    async def burst(i: int, sender) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(sender.send(room, f"{i}-{n}") for n in range(20))))

    results = await asyncio.gather(*(burst(i, s) for i, s in enumerate(senders)))
    acks = [ack for acks in results for ack in acks]
    assert all(a["ok"] for a in acks), [a for a in acks if not a["ok"]]
    seqs = sorted(a["seq"] for a in acks)
    assert seqs == list(range(1, 101))  # no duplicate, no reuse, no gap
    assert len({a["id"] for a in acks}) == 100
    seen = await watcher.wait_for("chatMessage", lambda ms: len(ms) == 100)
    assert [m["seq"] for m in seen] == list(range(1, 101))
    docs = stored(mongo, room)
    assert [d["seq"] for d in docs] == list(range(1, 101))
    # Each sender's own messages keep the order it sent them in.
    for i in range(5):
        mine = [d["message"] for d in docs if d["user"] == f"user{i}"]
        assert mine == [f"{i}-{n}" for n in range(20)]


async def test_one_senders_burst_of_unawaited_sends_keeps_send_order(
    fast_server, client, room, mongo
):
    ann = await client(fast_server.url)
    bob = await client(fast_server.url)
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    acks: dict[int, dict[str, Any]] = {}
    done = asyncio.Event()

    def on_ack(n: int) -> Callable[[Any], None]:
        def record(ack: Any) -> None:
            acks[n] = ack
            if len(acks) == 200:
                done.set()

        return record

    for n in range(200):
        await ann.sio.emit("chatMessage", {"room": room, "message": f"n{n}"}, callback=on_ack(n))
    await asyncio.wait_for(done.wait(), 20)
    assert all(acks[n]["ok"] for n in range(200))
    assert [acks[n]["seq"] for n in range(200)] == list(range(1, 201))
    got = await bob.wait_for("chatMessage", lambda ms: len(ms) == 200)
    assert [m["message"] for m in got] == [f"n{n}" for n in range(200)]
    assert [m["seq"] for m in got] == list(range(1, 201))
    assert [d["message"] for d in stored(mongo, room)] == [f"n{n}" for n in range(200)]


async def test_same_client_id_twice_stores_and_broadcasts_one_message(server, client, room, mongo):
    ann = await client(server.url)
    bob = await client(server.url)
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    cid = "cid-" + uuid.uuid4().hex
    first = await ann.send(room, "once", client_id=cid)
    retry = await ann.send(room, "once", client_id=cid)
    assert first["ok"] and retry["ok"]
    assert (retry["id"], retry["seq"], retry["timestamp"]) == (
        first["id"],
        first["seq"],
        first["timestamp"],
    )
    assert first["duplicate"] is False and retry["duplicate"] is True
    await bob.wait_for("chatMessage", lambda ms: len(ms) == 1)
    await asyncio.sleep(SETTLE_SECS)
    assert len(bob.messages(room)) == 1
    assert bob.messages(room)[0]["client_id"] == cid
    assert mongo[MESSAGES].count_documents({"room": room, "client_id": cid}) == 1
    # The next message takes the next seq: the retry did not use one up visibly.
    nxt = await ann.send(room, "next")
    assert nxt["seq"] > first["seq"]


async def test_same_client_id_raced_from_two_connections_stores_one_message(
    server, client, room, mongo
):
    ann1 = await client(server.url)
    ann2 = await client(server.url)
    await ann1.join(room, "ann")
    await ann2.join(room, "ann")
    cid = "race-" + uuid.uuid4().hex
    a, b = await asyncio.gather(
        ann1.send(room, "raced", client_id=cid), ann2.send(room, "raced", client_id=cid)
    )
    assert a["ok"] and b["ok"], (a, b)
    assert (a["id"], a["seq"]) == (b["id"], b["seq"])
    assert sorted([a["duplicate"], b["duplicate"]]) == [False, True]
    assert mongo[MESSAGES].count_documents({"room": room, "client_id": cid}) == 1
    await ann1.wait_for("chatMessage", lambda ms: len(ms) == 1)
    await asyncio.sleep(SETTLE_SECS)
    assert len(ann1.messages(room)) == 1


async def test_same_client_id_raced_from_two_workers_stores_one_message(
    workers, client, room, mongo
):
    w1, w2 = workers(2)
    for attempt in range(5):
        ann1 = await client(w1.url)
        ann2 = await client(w2.url)
        await ann1.join(room, "ann")
        await ann2.join(room, "ann")
        cid = f"race-{attempt}-" + uuid.uuid4().hex
        acks = await asyncio.gather(
            ann1.send(room, "raced", client_id=cid), ann2.send(room, "raced", client_id=cid)
        )
        # The one that finds the other still storing is told to retry, and then finds it.
        for i in range(2):
            for _ in range(50):
                if acks[i]["ok"]:
                    break
                assert acks[i]["error"]["code"] == "unavailable", acks[i]
                await asyncio.sleep(0.1)
                acks[i] = await (ann1, ann2)[i].send(room, "raced", client_id=cid)
        a, b = acks
        assert a["ok"] and b["ok"], (a, b)
        assert (a["id"], a["seq"]) == (b["id"], b["seq"])
        assert sorted([a["duplicate"], b["duplicate"]]) == [False, True]
        assert mongo[MESSAGES].count_documents({"client_id": cid}) == 1


async def test_same_client_id_in_another_room_is_another_message(server, client, room):
    ann = await client(server.url)
    await ann.join(room, "ann")
    await ann.join(room + "-2", "ann")
    a = await ann.send(room, "x", client_id="shared-id")
    b = await ann.send(room + "-2", "x", client_id="shared-id")
    assert a["ok"] and b["ok"] and a["id"] != b["id"] and not b["duplicate"]


async def test_join_with_since_replays_exactly_the_messages_after_it(server, client, room):
    ann = await client(server.url)
    await ann.join(room, "ann")
    await send_many(ann, room, [f"m{i}" for i in range(1, 11)])
    late = await client(server.url)
    ack = await late.join(room, "late", since=4)
    assert ack["last_seq"] == 10 and ack["has_more"] is False
    [history] = await late.wait_for("chat-history", lambda h: len(h) == 1)
    assert [m["seq"] for m in history] == [5, 6, 7, 8, 9, 10]
    assert [m["message"] for m in history] == [f"m{i}" for i in range(5, 11)]


async def test_join_with_since_at_the_latest_seq_replays_nothing(server, client, room):
    ann = await client(server.url)
    await ann.join(room, "ann")
    await send_many(ann, room, ["a", "b"])
    again = await client(server.url)
    await again.join(room, "ann2", since=2)
    await again.join(room + "-x", "ann2", since=0)
    histories = await again.wait_for("chat-history", lambda h: len(h) == 2)
    assert histories == [[], []]


async def test_reconnect_with_since_recovers_every_missed_message(server, client, room):
    ann = await client(server.url)
    bob = await client(server.url)
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    await ann.send(room, "seen")
    [seen] = await bob.wait_for("chatMessage", lambda ms: len(ms) == 1)
    await bob.sio.disconnect()
    missed = await send_many(ann, room, ["missed 1", "missed 2", "missed 3"])
    bob2 = await client(server.url)
    await bob2.join(room, "bob", since=seen["seq"])
    [history] = await bob2.wait_for("chat-history", lambda h: len(h) == 1)
    assert [m["id"] for m in history] == [a["id"] for a in missed]


# ---- leave, disconnect, typing --------------------------------------------------------------


async def test_leave_room_notifies_the_others_and_updates_presence(server, client, room):
    ann = await client(server.url)
    bob = await client(server.url)
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    ack = await bob.call("leaveRoom", {"room": room})
    assert ack == {"ok": True, "room": room}
    notes = await ann.wait_for("notification", lambda n: any(x["type"] == "leave" for x in n))
    leave = next(x for x in notes if x["type"] == "leave")
    assert (leave["room"], leave["user"]) == (room, "bob")
    assert ISO_MILLIS_Z.fullmatch(leave["timestamp"])
    await ann.wait_for("presence", lambda p: p[-1]["users"] == ["ann"])
    # Bob hears nothing more from the room and can no longer send to it.
    await ann.send(room, "after bob left")
    refused = await bob.send(room, "still here?")
    assert refused["ok"] is False and refused["error"]["code"] == "not_joined"
    await asyncio.sleep(SETTLE_SECS)
    assert bob.messages(room) == []


async def test_leave_room_not_joined_is_refused(server, client, room):
    ann = await client(server.url)
    ack = await ann.call("leaveRoom", {"room": room})
    assert ack["ok"] is False and ack["error"]["code"] == "not_joined"


async def test_leaving_the_last_room_moves_bare_messages_to_the_previous_room(server, client, room):
    ann = await client(server.url)
    await ann.join(room + "-a", "ann")
    await ann.join(room + "-b", "ann")
    await ann.call("leaveRoom", {"room": room + "-b"})
    ack = await ann.call("chatMessage", "where does this go")
    assert ack["ok"], ack
    [got] = await ann.wait_for("chatMessage", lambda ms: len(ms) == 1)
    assert got["room"] == room + "-a"


async def test_disconnect_sends_a_leave_notification_to_the_others(server, client, room):
    ann = await client(server.url)
    bob = await client(server.url)
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    await bob.sio.disconnect()
    notes = await ann.wait_for("notification", lambda n: any(x["type"] == "leave" for x in n))
    assert [(x["type"], x["user"]) for x in notes] == [("join", "bob"), ("leave", "bob")]
    await ann.wait_for("presence", lambda p: p[-1]["users"] == ["ann"])


async def test_typing_is_broadcast_to_the_others_only(server, client, room, mongo):
    ann = await client(server.url)
    bob = await client(server.url)
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    assert await ann.call("typing", {"room": room, "typing": True}) == {"ok": True}
    assert await ann.call("typing", {"room": room, "typing": False}) == {"ok": True}
    got = await bob.wait_for("typing", lambda t: len(t) == 2)
    assert got == [
        {"room": room, "user": "ann", "user_id": ann.user_id, "typing": True},
        {"room": room, "user": "ann", "user_id": ann.user_id, "typing": False},
    ]
    await asyncio.sleep(SETTLE_SECS)
    assert ann.events["typing"] == []
    assert stored(mongo, room) == []


async def test_typing_in_a_room_not_joined_is_refused(server, client, room):
    ann = await client(server.url)
    ack = await ann.call("typing", {"room": room, "typing": True})
    assert ack["ok"] is False and ack["error"]["code"] == "not_joined"


# ---- seq durability -------------------------------------------------------------------------


async def test_seq_is_not_reused_after_every_redis_key_is_deleted(server, client, room, services):
    ann = await client(server.url)
    await ann.join(room, "ann")
    before = await send_many(ann, room, ["one", "two"])
    r = redis.Redis.from_url(services.redis_url)
    try:
        keys = list(r.scan_iter(f"{services.redis_prefix}:*"))
        assert keys, "expected presence keys under the run's prefix"
        r.delete(*keys)
        # The worker's own loops may write a key or two again at once (the epoch, presence);
        # what this is about is the room's seq counter and hot tail being gone.
        left = [k for k in r.scan_iter(f"{services.redis_prefix}:*") if b":presence:" not in k]
        assert all(room.encode() not in k for k in left), left
    finally:
        r.close()
    after = await ann.send(room, "three")
    # Never reused; the counter may skip ahead while it finds the stored seqs again.
    assert after["ok"] and after["seq"] > before[-1]["seq"]
    newcomer = await client(server.url)
    ack = await newcomer.join(room, "new")
    assert ack["last_seq"] == after["seq"]
    [history] = await newcomer.wait_for("chat-history", lambda h: len(h) == 1)
    assert [m["message"] for m in history] == ["one", "two", "three"]


async def test_seq_stays_unique_when_two_worker_processes_send_to_one_room_at_once(
    server, fast_server, client, room, mongo
):
    # Two processes taking seqs for one room at once: on FerretDB their counter updates race,
    # and the unique (room, seq) index plus a catch-up must still give every message its own.
    senders = [await client(w.url) for w in (server, fast_server, server, fast_server)]
    for i, sender in enumerate(senders):
        await sender.join(room, f"user{i}")
    results = await asyncio.gather(
        *(sender.send(room, f"{i}-{n}") for n in range(12) for i, sender in enumerate(senders))
    )
    assert all(a["ok"] for a in results), [a for a in results if not a["ok"]][:3]
    seqs = [a["seq"] for a in results]
    assert len(set(seqs)) == 48
    docs = stored(mongo, room)
    assert len(docs) == 48
    assert sorted(d["seq"] for d in docs) == sorted(seqs)
    for i in range(4):
        mine = [d["message"] for d in docs if d["user"] == f"user{i}"]
        assert mine == [f"{i}-{n}" for n in range(12)]


async def test_disconnect_while_joining_leaves_no_ghost_in_presence(server, client, room):
    # The disconnect lands while the join waits on MongoDB, at a few different moments.
    for i, delay in enumerate([0, 0.002, 0.005, 0.01, 0.02, 0.03]):
        ghost = await client(server.url)
        await ghost.sio.emit("joinRoom", {"username": f"ghost{i}", "room": room})
        await asyncio.sleep(delay)
        await ghost.sio.disconnect()
    await asyncio.sleep(SETTLE_SECS)
    watcher = await client(server.url)
    ack = await watcher.join(room, "watcher")
    assert ack["online"] == ["watcher"]


async def test_seq_counter_lives_in_redis_and_the_room_list_follows_it(
    server, client, room, services
):
    ann = await client(server.url)
    await ann.join(room, "ann")
    acks = await send_many(ann, room, ["a", "b", "c"])
    r = redis.Redis.from_url(services.redis_url)
    assert int(r.get(f"{services.redis_prefix}:seq:{{{room}}}")) == 3
    r.close()
    listed = None
    for _ in range(100):  # the room list is written off the send path
        _, body = await asyncio.to_thread(http_get, server.url + "/api/rooms")
        listed = next((x for x in json.loads(body)["rooms"] if x["name"] == room), None)
        if listed and listed["last_seq"] == 3:
            break
        await asyncio.sleep(0.05)
    assert listed is not None and listed["last_seq"] == 3, listed
    assert listed["last_message_at"] == acks[-1]["timestamp"]


async def test_many_first_joins_on_two_workers_all_succeed(workers, client, room, mongo):
    # Every joiner races to create the room, its counter and its indexes.
    w1, w2 = workers(2)
    for attempt in range(3):
        name = f"{room}-{attempt}"
        clients = await asyncio.gather(*(client((w1, w2)[i % 2].url) for i in range(12)))
        acks = await asyncio.gather(
            *(
                c.call("joinRoom", {"username": f"u{i}", "room": name})
                for i, c in enumerate(clients)
            )
        )
        assert all(a["ok"] for a in acks), acks
        assert sum(a["created"] for a in acks) == 1, acks
        sent = await clients[0].send(name, "first")
        assert sent["ok"] and sent["seq"] == 1


async def test_stale_retry_on_another_worker_after_the_first_died_stores_nothing_twice(
    workers, client, room, mongo
):
    w1, w2 = workers(2)
    ann = await client(w1.url)
    await ann.join(room, "ann")
    cid = "stale-" + uuid.uuid4().hex
    first = await ann.send(room, "once", client_id=cid)
    assert first["ok"]
    w1.signal(9)
    w1.proc.wait(10)
    again = await client(w2.url)
    await again.join(room, "ann")
    retry = await again.send(room, "once", client_id=cid)
    assert (
        retry["ok"]
        and retry["duplicate"]
        and (retry["id"], retry["seq"])
        == (
            first["id"],
            first["seq"],
        )
    )
    assert mongo[MESSAGES].count_documents({"room": room, "client_id": cid}) == 1
    w1.start()


async def test_retry_after_redis_forgot_everything_stores_nothing_twice(
    server, client, room, mongo, services
):
    ann = await client(server.url)
    await ann.join(room, "ann")
    cid = "forgot-" + uuid.uuid4().hex
    first = await ann.send(room, "once", client_id=cid)
    r = redis.Redis.from_url(services.redis_url)
    try:
        keys = list(r.scan_iter(f"{services.redis_prefix}:*"))
        r.delete(*keys)
    finally:
        r.close()
    retry = await ann.send(room, "once", client_id=cid)
    assert retry["ok"] and retry["duplicate"] and retry["seq"] == first["seq"], retry
    assert mongo[MESSAGES].count_documents({"room": room, "client_id": cid}) == 1


async def test_join_history_goes_to_its_socket_without_crossing_redis(
    server, client, room, services
):
    import redis.asyncio as aioredis

    bus = aioredis.Redis.from_url(services.redis_url)
    pubsub = bus.pubsub()
    main = f"{services.redis_prefix}:socketio"
    await pubsub.subscribe(main, f"{main}:room:{room}")  # every channel the room's traffic uses
    try:
        ann = await client(server.url)
        await ann.join(room, "ann")
        await ann.send(room, "marker")
        published = []
        deadline = time.monotonic() + 10
        while not any(b"marker" in p for p in published):
            assert time.monotonic() < deadline, "the broadcast never reached Redis"
            got = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if got is not None:  # None: the subscription's own confirmation, or nothing yet
                published.append(got["data"])
        assert not any(b"chat-history" in p for p in published)
        [history] = ann.events["chat-history"]
        assert history == []
    finally:
        await pubsub.aclose()
        await bus.aclose()


async def test_a_new_rooms_first_message_takes_its_seq_from_redis(server, client, room, services):
    # A new room's counter is seeded with 0; it must be created at 0, or every first message
    # would fall back to the store's slower way of numbering.
    ann = await client(server.url)
    await ann.join(room, "ann")
    ack = await ann.send(room, "first")
    assert ack["ok"] and ack["seq"] == 1
    r = redis.Redis.from_url(services.redis_url)
    try:
        assert r.get(f"{services.redis_prefix}:seq:{{{room}}}") == b"1"
    finally:
        r.close()
    assert "seqs from the store" not in server.log()
