"""The online list under churn: few lists in a join storm, and always the right one at the end."""

from __future__ import annotations

import asyncio

from chatd.events import PRESENCE_INTERVAL_SECS

STORM = 40


async def test_a_join_in_a_quiet_room_is_sent_at_once(server, client, room):
    ann = await client(server.url)
    await ann.join(room, "ann")
    await ann.wait_for("presence", lambda p: len(p) == 1)
    # Well after the interval: the next join is not held back.
    await asyncio.sleep(PRESENCE_INTERVAL_SECS * 3)
    bob = await client(server.url)
    await bob.join(room, "bob")
    await ann.wait_for(
        "presence", lambda p: p[-1]["users"] == ["ann", "bob"], timeout=PRESENCE_INTERVAL_SECS
    )


async def test_a_join_storm_sends_few_lists_and_ends_with_everyone(server, client, room):
    watcher = await client(server.url)
    await watcher.join(room, "watcher")
    clients = await asyncio.gather(*(client(server.url) for _ in range(STORM)))
    names = [f"user{i:02d}" for i in range(STORM)]
    await asyncio.gather(*(c.join(room, n) for c, n in zip(clients, names, strict=True)))
    everyone = sorted(["watcher", *names])
    await watcher.wait_for("presence", lambda p: p[-1]["users"] == everyone)
    # One list per join would be STORM + 1; the joins took a few intervals at most.
    assert len(watcher.events["presence"]) < STORM / 2, len(watcher.events["presence"])
    # Nothing more arrives once the list is right.
    count = len(watcher.events["presence"])
    await asyncio.sleep(PRESENCE_INTERVAL_SECS * 3)
    assert len(watcher.events["presence"]) == count
    assert watcher.events["presence"][-1]["users"] == everyone


async def test_leaves_in_a_burst_end_with_the_right_list(server, client, room):
    watcher = await client(server.url)
    await watcher.join(room, "watcher")
    clients = await asyncio.gather(*(client(server.url) for _ in range(10)))
    await asyncio.gather(*(c.join(room, f"u{i}") for i, c in enumerate(clients)))
    await watcher.wait_for("presence", lambda p: len(p[-1]["users"]) == 11)
    await asyncio.gather(*(c.call("leaveRoom", {"room": room}) for c in clients[:5]))
    await asyncio.gather(*(c.sio.disconnect() for c in clients[5:8]))
    await watcher.wait_for("presence", lambda p: p[-1]["users"] == ["u8", "u9", "watcher"])
    await asyncio.sleep(PRESENCE_INTERVAL_SECS * 3)
    assert watcher.events["presence"][-1]["users"] == ["u8", "u9", "watcher"]


async def test_concurrent_joins_on_two_workers_end_with_both_names_everywhere(
    workers, client, room
):
    w1, w2 = workers(2)
    for attempt in range(5):
        name = f"{room}-{attempt}"
        ann = await client(w1.url)
        bob = await client(w2.url)
        await asyncio.gather(ann.join(name, "ann"), bob.join(name, "bob"))
        for c in (ann, bob):
            await c.wait_for(
                "presence",
                lambda p, n=name: (
                    [x["users"] for x in p if x["room"] == n][-1:] == [["ann", "bob"]]
                ),
            )
        await asyncio.sleep(PRESENCE_INTERVAL_SECS * 3)
        for c in (ann, bob):
            lists = [x["users"] for x in c.events["presence"] if x["room"] == name]
            assert lists[-1] == ["ann", "bob"], lists
