"""Identities, edits, deletions and room moderation, through real Socket.IO clients against
real workers (docs/identities.md): every rule refused with its code, the connection usable
after, and edits and deletions replayed by `since` and by REST in both store layouts."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import jwt
import pytest
import socketio

from tests.conftest import Client, Worker

SECRET = "test-deployment-secret-" + "x" * 24
SIGN_IN_SECRET = "test-login-secret-" + "y" * 24


@pytest.fixture(scope="module")
def open_server(start_worker: Callable[..., Worker]) -> Worker:
    return start_worker(CHATD_AUTH_TOKEN_SECRET=SECRET, CHATD_LIMITS_KICK_MINUTES="1")


@pytest.fixture(scope="module")
def sign_in_server(start_worker: Callable[..., Worker]) -> Worker:
    return start_worker(CHATD_AUTH_SECRET=SIGN_IN_SECRET)


def open_token(user_id: str, secret: str = SECRET, expires_in: int = 3600) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "aud": "chatd:open", "iat": now, "exp": now + expires_in}
    return jwt.encode(claims, secret, algorithm="HS256")


def login_token(user_id: str, name: str, roles: list[str] | None = None, **claims: Any) -> str:
    """What a deployment's own login issues."""
    body: dict[str, Any] = {"sub": user_id, "name": name, "exp": int(time.time()) + 600}
    if roles is not None:
        body["roles"] = roles
    body.update(claims)
    return jwt.encode(body, claims.pop("key", SIGN_IN_SECRET), algorithm="HS256")


async def refusal(url: str, auth: Any) -> Any:
    """What `connect_error` brings when a handshake with `auth` is refused: {message, data}."""
    sio = socketio.AsyncClient(reconnection=False)
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @sio.on("connect_error")
    async def on_error(data: Any = None) -> None:
        if not got.done():
            got.set_result(data)

    with contextlib.suppress(socketio.exceptions.ConnectionError):
        await sio.connect(url, auth=auth, wait_timeout=10, transports=["websocket"])
    try:
        return await asyncio.wait_for(got, 10)
    finally:
        with contextlib.suppress(Exception):
            await sio.disconnect()


async def rest(
    method: str, url: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


@pytest.fixture
async def room() -> str:
    return "r-" + uuid.uuid4().hex[:12]


def fail_code(ack: Any) -> str:
    assert ack["ok"] is False, ack
    return str(ack["error"]["code"])


async def usable(c: Client, room: str) -> None:
    """The connection still answers after a refusal."""
    ack = await c.send(room, "still here " + uuid.uuid4().hex[:6])
    assert ack["ok"], ack


# -- identities -------------------------------------------------------------------------------


async def test_a_client_without_a_token_is_a_fresh_identity_per_connection(
    open_server, client, room
):
    one = await client(open_server.url)
    two = await client(open_server.url)
    assert one.user_id != two.user_id
    assert one.session["token"] and one.session["name"] is None
    assert one.session["roles"] == []
    ack = await one.join(room, "ann")
    assert ack["user_id"] == one.user_id
    assert ack["role"] == "owner"  # it made the room
    sent = await one.send(room, "hi")
    [live] = await two.join(room, "bob") and await one.wait_for("chatMessage", bool)
    assert live["id"] == sent["id"] and live["user_id"] == one.user_id


async def test_two_connections_with_one_token_are_one_identity(open_server, client, room):
    first = await client(open_server.url)
    token = first.token
    tab = await client(open_server.url, auth={"token": token})
    assert tab.user_id == first.user_id
    watcher = await client(open_server.url)
    await watcher.join(room, "watcher")
    await first.join(room, "sam")
    await tab.join(room, "sam")
    presence = await watcher.wait_for(
        "presence", lambda p: p and [m["name"] for m in p[-1]["members"]] == ["sam", "watcher"]
    )
    assert [m["user_id"] for m in presence[-1]["members"]].count(first.user_id) == 1
    joins = [n for n in watcher.events["notification"] if n["type"] == "join"]
    assert [(n["user"], n["user_id"]) for n in joins] == [("sam", first.user_id)]
    # A message from the second tab is the same person's.
    await tab.send(room, "from the other tab")
    [message] = await first.wait_for("chatMessage", bool)
    assert message["user_id"] == first.user_id
    # One tab closing leaves the identity online: no "sam left" until the last one goes.
    await tab.sio.disconnect()
    await first.send(room, "still on")
    await watcher.wait_for("chatMessage", lambda ms: len(ms) == 2)
    assert not [n for n in watcher.events["notification"] if n["type"] == "leave"]
    await first.sio.disconnect()
    leaves = await watcher.wait_for(
        "notification", lambda ns: any(n["type"] == "leave" for n in ns)
    )
    assert [n["user_id"] for n in leaves if n["type"] == "leave"] == [first.user_id]


async def test_two_people_named_sam_are_two_identities(open_server, client, room):
    one = await client(open_server.url)
    two = await client(open_server.url)
    await one.join(room, "sam")
    await two.join(room, "sam")
    presence = await one.wait_for("presence", lambda p: p and len(p[-1]["members"]) == 2)
    members = presence[-1]["members"]
    assert [m["name"] for m in members] == ["sam", "sam"]
    assert {m["user_id"] for m in members} == {one.user_id, two.user_id}
    assert presence[-1]["users"] == ["sam"]
    # Both joins are announced: the second sam is not taken for the first.
    joins = [n for n in one.events["notification"] if n["type"] == "join"]
    assert [n["user_id"] for n in joins] == [two.user_id]
    await two.send(room, "I am the other sam")
    [message] = await one.wait_for("chatMessage", bool)
    assert message["user"] == "sam" and message["user_id"] == two.user_id


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(
            open_token("u_someone", secret="another-deployment-" + "z" * 24), id="foreign"
        ),
        pytest.param(open_token("u_someone", expires_in=-60), id="expired"),
        pytest.param(open_token("u_someone")[:-3] + "abc", id="tampered"),
        pytest.param("not a token", id="garbage"),
        pytest.param(jwt.encode({"sub": "u_x", "exp": 2**40}, SECRET), id="no-audience"),
    ],
)
async def test_a_token_that_does_not_verify_is_refused_at_the_handshake(open_server, token):
    data = await refusal(open_server.url, {"token": token})
    assert data["data"]["code"] == "unauthorized", data
    assert data["message"] == data["data"]["message"]


async def test_a_retried_client_id_matches_across_connections_of_one_name(
    open_server, client, room
):
    """Open mode scopes client_ids by name, as before identities: a stock client that
    reconnects is a new identity, and its retry must still find its message."""
    first = await client(open_server.url)
    await first.join(room, "ann")
    sent = await first.send(room, "once", client_id="c-1")
    await first.sio.disconnect()
    again_client = await client(open_server.url)
    await again_client.join(room, "ann")
    again = await again_client.send(room, "once", client_id="c-1")
    assert again["duplicate"] is True and again["id"] == sent["id"]
    other_name = await client(open_server.url)
    await other_name.join(room, "bob")
    theirs = await other_name.send(room, "once", client_id="c-1")
    assert theirs["duplicate"] is False and theirs["id"] != sent["id"]


async def test_with_sign_in_client_ids_are_scoped_by_identity(sign_in_server, client, room):
    ann = await client(sign_in_server.url, auth={"token": login_token("u_a1", "sam")})
    await ann.join(room, "x")
    sent = await ann.send(room, "once", client_id="c-1")
    tab = await client(sign_in_server.url, auth={"token": login_token("u_a1", "sam")})
    await tab.join(room, "x")
    again = await tab.send(room, "once", client_id="c-1")
    assert again["duplicate"] is True and again["id"] == sent["id"]
    # Another person who is also called sam gets a message of their own.
    other = await client(sign_in_server.url, auth={"token": login_token("u_b2", "sam")})
    await other.join(room, "x")
    theirs = await other.send(room, "once", client_id="c-1")
    assert theirs["duplicate"] is False and theirs["id"] != sent["id"]


async def test_rate_limits_follow_the_identity_across_connections(start_worker, client, room):
    worker = start_worker(
        CHATD_AUTH_TOKEN_SECRET=SECRET,
        CHATD_LIMITS_RATE_BURST="4",
        CHATD_LIMITS_RATE_PER_MINUTE="1",
    )
    token = open_token("u_flooder")
    tabs = [await client(worker.url, auth={"token": token}) for _ in range(3)]
    for tab in tabs:
        await tab.join(room, "flood")
    acks = [await tabs[i % 3].send(room, f"m{i}") for i in range(6)]
    assert [a["ok"] for a in acks] == [True] * 4 + [False] * 2
    assert {a["error"]["code"] for a in acks[4:]} == {"rate_limited"}
    # Connections without a token are identities of their own, each with its own bucket.
    loose = [await client(worker.url) for _ in range(2)]
    for c in loose:
        await c.join(room, "loose")
    assert all([(await c.send(room, "a"))["ok"] for c in loose for _ in range(4)])


# -- edit and delete --------------------------------------------------------------------------


async def test_the_author_edits_and_everyone_sees_it(open_server, client, room):
    ann = await client(open_server.url)
    bob = await client(open_server.url)
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    sent = await ann.send(room, "helo")
    ack = await ann.call("editMessage", {"room": room, "id": sent["id"], "message": "hello"})
    assert ack["ok"] and ack["id"] == sent["id"] and ack["seq"] == sent["seq"] + 1, ack
    assert ack["edited_at"].endswith("Z")
    [edited] = await bob.wait_for("messageEdited", bool)
    assert edited == {
        "type": "edit",
        "room": room,
        "id": sent["id"],
        "seq": ack["seq"],
        "message": "hello",
        "edited_at": ack["edited_at"],
        "user_id": ann.user_id,
    }
    # Someone else may not edit it; an unknown or malformed id is refused; all usable after.
    code = fail_code(
        await bob.call("editMessage", {"room": room, "id": sent["id"], "message": "x"})
    )
    assert code == "forbidden"
    missing = {"room": room, "id": "0" * 24, "message": "x"}
    assert fail_code(await ann.call("editMessage", missing)) == "not_found"
    bad = {"room": room, "id": {"$ne": None}, "message": "x"}
    assert fail_code(await ann.call("editMessage", bad)) == "invalid_payload"
    assert fail_code(await ann.call("editMessage", {"room": room, "id": sent["id"]})) == (
        "invalid_payload"
    )
    await usable(bob, room)
    await usable(ann, room)


async def test_edits_after_the_window_are_forbidden(start_worker, client, room):
    worker = start_worker(CHATD_LIMITS_EDIT_MINUTES="0")
    ann = await client(worker.url)
    await ann.join(room, "ann")
    sent = await ann.send(room, "final")
    edit = {"room": room, "id": sent["id"], "message": "changed"}
    ack = await ann.call("editMessage", edit)
    assert fail_code(ack) == "forbidden" and "0 minutes" in ack["error"]["message"]
    await usable(ann, room)


async def test_only_the_author_or_a_moderator_deletes(open_server, client, room):
    owner = await client(open_server.url)
    ann = await client(open_server.url)
    bob = await client(open_server.url)
    await owner.join(room, "owner")
    await ann.join(room, "ann")
    await bob.join(room, "bob")
    first = await ann.send(room, "one")
    second = await ann.send(room, "two")
    assert fail_code(await bob.call("deleteMessage", {"room": room, "id": first["id"]})) == (
        "forbidden"
    )
    await usable(bob, room)
    mine = await ann.call("deleteMessage", {"room": room, "id": first["id"]})
    assert mine["ok"] and mine["id"] == first["id"], mine
    by_owner = await owner.call("deleteMessage", {"room": room, "id": second["id"]})
    assert by_owner["ok"], by_owner
    deleted = await bob.wait_for("messageDeleted", lambda d: len(d) == 2)
    assert [(d["id"], d["deleted_by"]) for d in deleted] == [
        (first["id"], ann.user_id),
        (second["id"], owner.user_id),
    ]
    assert deleted[0]["seq"] == mine["seq"] and deleted[0]["type"] == "delete"
    # Gone is gone: no edit, no second deletion.
    again = await ann.call("deleteMessage", {"room": room, "id": first["id"]})
    assert fail_code(again) == "not_found"
    edit = {"room": room, "id": first["id"], "message": "back"}
    assert fail_code(await ann.call("editMessage", edit)) == "not_found"


@pytest.mark.parametrize("layout", ["blocks", "single"])
async def test_edits_and_deletions_are_replayed_by_since_and_by_rest(start_worker, client, layout):
    worker = start_worker(
        CHATD_MONGO_DB=f"chatd_test_amend_{layout}_{uuid.uuid4().hex[:6]}",
        CHATD_MONGO_LAYOUT=layout,
    )
    room = "r-" + uuid.uuid4().hex[:12]
    ann = await client(worker.url)
    await ann.join(room, "ann")
    kept = await ann.send(room, "draft")
    gone = await ann.send(room, "oops")
    away = await client(worker.url)
    joined = await away.join(room, "bob")
    since = joined["last_seq"]
    await away.sio.disconnect()
    first_edit = await ann.call("editMessage", {"room": room, "id": kept["id"], "message": "v2"})
    second_edit = await ann.call("editMessage", {"room": room, "id": kept["id"], "message": "v3"})
    gone_edit = await ann.call("editMessage", {"room": room, "id": gone["id"], "message": "oops!"})
    deletion = await ann.call("deleteMessage", {"room": room, "id": gone["id"]})
    assert all(a["ok"] for a in (first_edit, second_edit, gone_edit, deletion))

    back = await client(worker.url)
    await back.join(room, "bob", since=since)
    [replayed] = await back.wait_for("chat-history", bool)
    assert [(e.get("type"), e["seq"]) for e in replayed] == [
        ("edit", first_edit["seq"]),
        ("edit", second_edit["seq"]),
        ("edit", gone_edit["seq"]),
        ("delete", deletion["seq"]),
    ]
    assert [e.get("message") for e in replayed[:2]] == ["v2", "v3"]
    # The deleted message's edit keeps no text either.
    assert replayed[2] == {"type": "edit", "room": room, "id": gone["id"],
                           "seq": gone_edit["seq"], "deleted": True}  # fmt: skip

    fresh = await client(worker.url)
    await fresh.join(room, "carol")
    [history] = await fresh.wait_for("chat-history", bool)
    by_seq = {e["seq"]: e for e in history}
    assert by_seq[kept["seq"]]["message"] == "v3"
    assert by_seq[kept["seq"]]["edit_seq"] == second_edit["seq"]
    assert by_seq[gone["seq"]] == {
        "id": gone["id"], "room": room, "seq": gone["seq"],
        "timestamp": by_seq[gone["seq"]]["timestamp"], "deleted": True,
        "deleted_by": ann.user_id,
    }  # fmt: skip
    status, page = await rest("GET", f"{worker.url}/api/rooms/{room}/messages")
    assert status == 200
    assert page["messages"] == history
    status, after = await rest("GET", f"{worker.url}/api/rooms/{room}/messages?after={since}")
    assert [e["seq"] for e in after["messages"]] == [e["seq"] for e in replayed]


async def test_a_retried_edit_applies_once(open_server, client, room):
    ann = await client(open_server.url)
    await ann.join(room, "ann")
    sent = await ann.send(room, "x")
    edit = {"room": room, "id": sent["id"], "message": "y", "client_id": "edit-1"}
    first = await ann.call("editMessage", edit)
    again = await ann.call("editMessage", edit)
    assert again["ok"] and again["seq"] == first["seq"] and again["duplicate"] is True


# -- moderation -------------------------------------------------------------------------------


async def test_the_owner_names_moderators_and_only_the_owner_may(open_server, client, room):
    owner = await client(open_server.url)
    ann = await client(open_server.url)
    bob = await client(open_server.url)
    assert (await owner.join(room, "owner"))["role"] == "owner"
    assert (await ann.join(room, "ann"))["role"] == "member"
    await bob.join(room, "bob")
    refused = await ann.call("setRole", {"room": room, "user_id": bob.user_id, "role": "moderator"})
    assert fail_code(refused) == "forbidden"
    await usable(ann, room)
    named = await owner.call("setRole", {"room": room, "user_id": ann.user_id, "role": "moderator"})
    assert named == {"ok": True, "room": room, "user_id": ann.user_id, "role": "moderator"}
    presence = await bob.wait_for(
        "presence",
        lambda p: (
            bool(p)
            and any(
                m["user_id"] == ann.user_id and m["role"] == "moderator" for m in p[-1]["members"]
            )
        ),
    )
    assert presence
    notes = await bob.wait_for("notification", lambda ns: any(n["type"] == "role" for n in ns))
    assert [n["role"] for n in notes if n["type"] == "role"] == ["moderator"]
    # A moderator deletes other people's messages, but cannot touch the owner.
    theirs = await bob.send(room, "spam")
    assert (await ann.call("deleteMessage", {"room": room, "id": theirs["id"]}))["ok"]
    kick_owner = await ann.call("kickUser", {"room": room, "user_id": owner.user_id})
    assert fail_code(kick_owner) == "forbidden"
    bad_role = {"room": room, "user_id": bob.user_id, "role": "admin"}
    assert fail_code(await owner.call("setRole", bad_role)) == "invalid_payload"
    # And back to member.
    undone = {"room": room, "user_id": ann.user_id, "role": "member"}
    assert (await owner.call("setRole", undone))["role"] == "member"
    other = await bob.send(room, "more spam")
    assert fail_code(await ann.call("deleteMessage", {"room": room, "id": other["id"]})) == (
        "forbidden"
    )


async def test_a_muted_identity_cannot_send_until_unmuted(open_server, client, room):
    owner = await client(open_server.url)
    troll = await client(open_server.url, auth={"token": open_token("u_troll_" + room)})
    await owner.join(room, "owner")
    await troll.join(room, "troll")
    member_try = await troll.call(
        "muteUser", {"room": room, "user_id": owner.user_id, "minutes": 5}
    )
    assert fail_code(member_try) == "forbidden"
    muted = await owner.call("muteUser", {"room": room, "user_id": troll.user_id, "minutes": 5})
    assert muted["ok"] and muted["until"].endswith("Z"), muted
    ack = await troll.send(room, "can you hear me")
    assert fail_code(ack) == "muted" and ack["error"]["until"] == muted["until"]
    # Another tab of the same identity, or a new connection, is muted too.
    tab = await client(open_server.url, auth={"token": troll.token})
    await tab.join(room, "troll")
    assert fail_code(await tab.send(room, "and now?")) == "muted"
    # Typing and reading still work; unmuting lets her write again.
    assert (await troll.call("typing", {"room": room, "typing": True}))["ok"]
    lifted = await owner.call("muteUser", {"room": room, "user_id": troll.user_id, "minutes": 0})
    assert lifted["ok"] and lifted["until"] is None
    await usable(troll, room)
    await usable(tab, room)
    bad = {"room": room, "user_id": troll.user_id, "minutes": -1}
    assert fail_code(await owner.call("muteUser", bad)) == "invalid_payload"


async def test_a_kicked_identity_leaves_and_cannot_come_back_for_a_while(open_server, client, room):
    owner = await client(open_server.url)
    troll = await client(open_server.url, auth={"token": open_token("u_kick_" + room)})
    watcher = await client(open_server.url)
    await owner.join(room, "owner")
    await troll.join(room, "troll")
    await watcher.join(room, "watcher")
    kicked = await owner.call("kickUser", {"room": room, "user_id": troll.user_id})
    assert kicked["ok"], kicked
    [notice] = await troll.wait_for("kicked", bool)
    assert notice["room"] == room and notice["by"] == owner.user_id
    assert notice["by_name"] == "owner" and notice["until"] == kicked["until"]
    await watcher.wait_for(
        "presence",
        lambda p: p and [m["name"] for m in p[-1]["members"]] == ["owner", "watcher"],
    )
    await owner.send(room, "after the kick")
    await watcher.wait_for(
        "chatMessage", lambda ms: any(m["message"] == "after the kick" for m in ms)
    )
    assert not [m for m in troll.messages(room) if m["message"] == "after the kick"]
    assert fail_code(await troll.send(room, "let me in")) == "not_joined"
    rejoin = await troll.call("joinRoom", {"room": room, "username": "troll"})
    assert fail_code(rejoin) == "kicked" and rejoin["error"]["until"] == kicked["until"]
    # Still connected and welcome elsewhere.
    await troll.join(room + "-elsewhere", "troll")


async def test_the_moderation_log_is_for_moderators(open_server, client, room):
    owner = await client(open_server.url)
    troll = await client(open_server.url)
    await owner.join(room, "owner")
    await troll.join(room, "troll")
    await owner.call("muteUser", {"room": room, "user_id": troll.user_id, "minutes": 3})
    await owner.call("kickUser", {"room": room, "user_id": troll.user_id})
    url = f"{open_server.url}/api/rooms/{room}/moderation"
    status, body = await rest("GET", url, owner.token)
    assert status == 200, body
    assert [(a["action"], a["by"], a["target"]) for a in body["actions"]] == [
        ("kick", owner.user_id, troll.user_id),
        ("mute", owner.user_id, troll.user_id),
    ]
    assert body["actions"][1]["minutes"] == 3 and body["actions"][0]["at"].endswith("Z")
    assert (await rest("GET", url, troll.token))[0] == 403
    assert (await rest("GET", url))[0] == 401
    assert (await rest("GET", url, "forged.token.here"))[0] == 401


# -- sign-in ----------------------------------------------------------------------------------


async def test_sign_in_requires_a_token_from_the_login(sign_in_server, client, room):
    assert (await refusal(sign_in_server.url, None))["data"]["code"] == "unauthorized"
    forged = login_token("u_1", "ann", key="someone-elses-secret-" + "q" * 20)
    assert (await refusal(sign_in_server.url, {"token": forged}))["data"]["code"] == "unauthorized"
    expired = login_token("u_1", "ann", exp=int(time.time()) - 10)
    assert (await refusal(sign_in_server.url, {"token": expired}))["data"]["code"] == "unauthorized"
    ann = await client(sign_in_server.url, auth={"token": login_token("u_ann", "Ann Lee")})
    assert ann.session == {
        "user_id": "u_ann", "token": ann.token, "name": "Ann Lee", "roles": [],
    }  # fmt: skip
    # The name comes from the token, whatever the join says.
    ack = await ann.call("joinRoom", {"room": room, "username": "admin"})
    assert ack["ok"] and ack["members"] == [
        {"user_id": "u_ann", "name": "Ann Lee", "role": "owner"}
    ]
    sent = await ann.send(room, "signed")
    assert sent["ok"]
    url = f"{sign_in_server.url}/api/rooms/{room}/messages"
    assert (await rest("GET", url))[0] == 401
    assert (await rest("GET", f"{sign_in_server.url}/api/rooms"))[0] == 401
    status, page = await rest("GET", url, ann.token)
    assert status == 200 and page["messages"][-1]["user"] == "Ann Lee"


async def test_an_admin_moderates_every_room(sign_in_server, client, room):
    owner = await client(sign_in_server.url, auth={"token": login_token("u_o", "owner")})
    admin = await client(
        sign_in_server.url, auth={"token": login_token("u_root", "root", roles=["admin"])}
    )
    assert admin.session["roles"] == ["admin"]
    await owner.join(room, "x")
    assert (await admin.join(room, "x"))["role"] == "admin"
    sent = await owner.send(room, "mine")
    assert (await admin.call("deleteMessage", {"room": room, "id": sent["id"]}))["ok"]
    status, _ = await rest("GET", f"{sign_in_server.url}/api/rooms/{room}/moderation", admin.token)
    assert status == 200


@pytest.fixture
async def jwks_server() -> AsyncIterator[tuple[str, Any]]:
    """A deployment's login publishing an RSA key as a JWKS, on loopback."""
    from aiohttp import web
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.update(kid="login-1", use="sig", alg="RS256")

    async def keys(request: web.Request) -> web.Response:
        return web.json_response({"keys": [public]})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", keys)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/.well-known/jwks.json", key
    finally:
        await runner.cleanup()


async def test_sign_in_with_keys_the_login_publishes(start_worker, client, jwks_server, room):
    url, key = jwks_server
    worker = start_worker(CHATD_AUTH_JWKS_URL=url, CHATD_AUTH_AUDIENCE="chat")
    claims = {"sub": "u_rsa", "name": "Rita", "aud": "chat", "exp": int(time.time()) + 600}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "login-1"})
    rita = await client(worker.url, auth={"token": token})
    assert rita.session["name"] == "Rita"
    wrong_audience = jwt.encode({**claims, "aud": "other"}, key, algorithm="RS256",
                                headers={"kid": "login-1"})  # fmt: skip
    assert (await refusal(worker.url, {"token": wrong_audience}))["data"]["code"] == "unauthorized"
    hmac = jwt.encode(claims, "a-shared-secret-" + "s" * 20, algorithm="HS256")
    assert (await refusal(worker.url, {"token": hmac}))["data"]["code"] == "unauthorized"
