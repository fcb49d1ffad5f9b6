"""A worker answers health checks and carries one message between two clients."""

from __future__ import annotations

from tests.conftest import http_get


def test_healthz_and_readyz_answer(server):
    assert http_get(server.url + "/healthz")[0] == 200
    assert http_get(server.url + "/readyz")[0] == 200


async def test_message_reaches_other_member(server, client, room):
    ann = await client(server.url)
    bob = await client(server.url)
    await bob.join(room, "bob")
    await ann.join(room, "ann")
    ack = await ann.send(room, "hello")
    assert ack["ok"] and ack["seq"] == 1
    got = await bob.wait_for("chatMessage", lambda ms: len(ms) == 1)
    assert got[0]["message"] == "hello" and got[0]["user"] == "ann"
