"""Join and leave notices follow the user, not each connection; refusals name their field."""

from __future__ import annotations

import asyncio


async def test_second_connection_of_an_online_user_announces_no_second_join(server, client, room):
    watcher = await client(server.url)
    await watcher.join(room, "watcher")
    tab1 = await client(server.url)
    # A second tab presents the first one's token: the same identity.
    tab2 = await client(server.url, auth={"token": tab1.token})
    await tab1.join(room, "ann")
    await watcher.wait_for("notification", lambda ns: len(ns) == 1)
    await tab2.join(room, "ann")
    await tab2.call("leaveRoom", {"room": room})
    await asyncio.sleep(0.3)
    assert [(n["type"], n["user"]) for n in watcher.events["notification"]] == [("join", "ann")]
    await tab1.call("leaveRoom", {"room": room})
    notes = await watcher.wait_for("notification", lambda ns: len(ns) == 2)
    assert [(n["type"], n["user"]) for n in notes] == [("join", "ann"), ("leave", "ann")]


async def test_someone_else_taking_an_online_name_is_announced(server, client, room):
    watcher = await client(server.url)
    await watcher.join(room, "watcher")
    victim = await client(server.url)
    await victim.join(room, "victim")
    impostor = await client(server.url)
    await impostor.join(room, "victim")
    notes = await watcher.wait_for("notification", lambda ns: len(ns) == 2)
    assert [(n["type"], n["user"], n["user_id"]) for n in notes] == [
        ("join", "victim", victim.user_id),
        ("join", "victim", impostor.user_id),
    ]
    presence = await watcher.wait_for("presence", lambda p: bool(p) and len(p[-1]["members"]) == 3)
    assert sorted(m["user_id"] for m in presence[-1]["members"] if m["name"] == "victim") == (
        sorted([victim.user_id, impostor.user_id])
    )


async def test_refusals_name_the_field_at_fault(server, client, room):
    c = await client(server.url)
    bad_name = await c.call("joinRoom", {"username": "<img src=x>", "room": room})
    assert bad_name["error"] == {
        "code": "invalid_payload",
        "message": bad_name["error"]["message"],
        "field": "username",
    }
    long_room = await c.call("joinRoom", {"username": "ann", "room": "r" * 65})
    assert long_room["error"]["code"] == "too_long" and long_room["error"]["field"] == "room"
    await c.join(room, "ann")
    empty = await c.send(room, "   ")
    assert empty["error"]["field"] == "message"
