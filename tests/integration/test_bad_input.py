"""docs/guarantees.md G8: the injection corpus in every field of every event and REST parameter is
refused with a stable code, the same connection keeps working, and nothing reaches MongoDB."""

from __future__ import annotations

import asyncio
import copy
import http.client
import json
import re
import time
import urllib.parse
from typing import Any

import pytest

from chatd import names, protocol
from chatd.store.mongo import MESSAGES
from tests.conftest import Worker
from tests.integration.conftest import stored

# Values that must never be taken for a name, a text, a seq, an id or a flag.
CORPUS: dict[str, Any] = {
    "ne_null": {"$ne": None},
    "gt_empty": {"$gt": ""},
    "regex_all": {"$regex": ".*"},
    "where_sleep": {"$where": "sleep(1000)"},
    "function": {"$function": {"body": "function() { sleep(1000) }", "args": [], "lang": "js"}},
    "dollar_key": {"$set": {"room": "x"}},
    "dot_key": {"a.b": "c"},
    "dict_10k_keys": {f"k{i}": i for i in range(10_000)},
    "list": ["general", "x"],
    "list_of_operator": [{"$ne": None}],
    "empty_list": [],
    "int": 123,
    "float": 1.5,
    "null": None,
    "true": True,
}
# Strings that are the right type but not a valid value.
BAD_STRINGS: dict[str, Any] = {
    "dollar_string": "$ne",
    "trailing_newline": "general\n",
    "dot_dot": "../etc",
    "nul": "a\x00b",
    "empty": "",
}

# (event, field) -> corpus keys whose value is a valid value for that field, not an attack:
# null in an optional field means "absent", an int is a valid `since`, true a valid flag.
VALID_FOR_FIELD: dict[tuple[str, str], set[str]] = {
    ("joinRoom", "since"): {"null", "int"},
    ("chatMessage", "room"): {"null"},
    ("chatMessage", "client_id"): {"null"},
    ("typing", "room"): {"null"},
    ("typing", "typing"): {"true"},
}
FIELDS = [
    ("joinRoom", "username"),
    ("joinRoom", "room"),
    ("joinRoom", "since"),
    ("chatMessage", "room"),
    ("chatMessage", "message"),
    ("chatMessage", "client_id"),
    ("leaveRoom", "room"),
    ("typing", "room"),
    ("typing", "typing"),
]
# Strings that are valid for a field (any text is a valid message; `since` is not a string).
VALID_STRING_FOR_FIELD: dict[tuple[str, str], set[str]] = {
    ("chatMessage", "message"): {"dollar_string", "trailing_newline", "dot_dot"},
}
STABLE_CODES = {"invalid_payload", "too_long", "not_joined"}
ACKS_TIMEOUT_SECS = 15.0
WHERE_REFUSAL_MAX_SECS = 0.9  # a `$where: sleep(1000)` that ran would take at least 1 s
NAME_RE = re.compile(r"\w([\w .\-]*[\w.\-])?")


def base_payload(event: str, room: str) -> dict[str, Any]:
    payloads: dict[str, dict[str, Any]] = {
        "joinRoom": {"username": "ann", "room": room, "since": 0},
        "chatMessage": {"room": room, "message": "probe", "client_id": "probe-1"},
        "leaveRoom": {"room": room},
        "typing": {"room": room, "typing": True},
    }
    return payloads[event]


def assert_clean_store(mongo, room: str, valid_texts: list[str]) -> None:
    """Exactly the valid messages were stored, and no stored value has the wrong type."""
    docs = stored(mongo, room)
    assert [d["message"] for d in docs] == valid_texts
    every = [
        doc
        for name in mongo.list_collection_names()
        if name == MESSAGES or name.startswith("messages_")
        for doc in mongo[name].find({})
    ]
    fields = {"_id", "room", "seq", "user", "message", "timestamp", "client_id", "client_key",
              "user_id"}  # fmt: skip
    # What edits and deletions (other tests') add: all set by the server, none by a client.
    changes = {"kind", "target", "target_seq", "edited_at", "edit_seq", "deleted", "deleted_by"}
    for doc in every:
        assert fields <= set(doc) - {"mid"} <= fields | changes, doc
        for key in ("room", "user", "message", "client_id"):
            assert isinstance(doc[key], str), doc
        assert type(doc["seq"]) is int
    for doc in mongo.rooms.find({}):
        # Every stored name is one the server's own rule allows, in its one spelling.
        assert isinstance(doc["name"], str), doc
        assert names.normalize_name(doc["name"], "room", protocol.ROOM_MAX_CHARS) == doc["name"]


class Prober:
    """One connection joined to one room. Each refusal is followed on the same connection by a
    valid message; all pairs are written at once (the server handles one connection's events
    in order) so the check costs one round trip rather than one per pair."""

    def __init__(self, c, room: str) -> None:
        self.c = c
        self.room = room
        self.valid_texts: list[str] = []

    async def refuse_all(self, cases: dict[str, tuple[str, tuple[Any, ...]]]) -> dict[str, str]:
        """cases: name -> (event, argument list). Returns name -> error code."""
        loop = asyncio.get_running_loop()
        pending = []
        for name, (event, args) in cases.items():
            refusal, follow_up = loop.create_future(), loop.create_future()
            # A tuple is always sent as the argument list, so (None,) is one explicit null.
            await self.c.sio.emit(event, tuple(args), callback=refusal.set_result)
            text = f"valid after {event} {name}"
            await self.c.sio.emit(
                "chatMessage", {"room": self.room, "message": text}, callback=follow_up.set_result
            )
            self.valid_texts.append(text)
            pending.append((name, refusal, follow_up))
        await asyncio.wait_for(
            asyncio.gather(*(f for _, r, v in pending for f in (r, v))), ACKS_TIMEOUT_SECS
        )
        codes = {}
        for name, refusal, follow_up in pending:
            ack = refusal.result()
            assert isinstance(ack, dict) and ack["ok"] is False, (name, ack)
            assert ack["error"]["code"] in STABLE_CODES, (name, ack)
            assert "Traceback" not in ack["error"]["message"]
            assert len(ack["error"]["message"]) < 300
            assert follow_up.result()["ok"] is True, (name, follow_up.result())
            codes[name] = ack["error"]["code"]
        return codes


async def prober(server: Worker, client, room: str) -> Prober:
    c = await client(server.url, transports=["websocket"])
    await c.join(room, "ann")
    return Prober(c, room)


@pytest.mark.parametrize(("event", "field"), FIELDS, ids=[f"{e}.{f}" for e, f in FIELDS])
async def test_injection_corpus_in_every_field_is_refused_and_connection_survives(
    server, client, room, mongo, event, field
):
    p = await prober(server, client, room)
    skip = VALID_FOR_FIELD.get((event, field), set())
    skip_strings = VALID_STRING_FOR_FIELD.get((event, field), set())
    values = {k: v for k, v in CORPUS.items() if k not in skip}
    if field == "since":
        values.update({"negative": -1, "bool_false": False, "string_int": "5", "huge": 2**63})
    else:
        values.update({k: v for k, v in BAD_STRINGS.items() if k not in skip_strings})
    cases = {}
    for name, value in values.items():
        payload = copy.deepcopy(base_payload(event, room))
        payload[field] = value
        cases[name] = (event, (payload,))
    codes = await p.refuse_all(cases)
    assert set(codes.values()) == {"invalid_payload"}, codes
    # Still a member: a join refused for the same room did not drop the membership.
    assert await p.c.call("typing", {"room": room, "typing": False}) == {"ok": True}
    assert_clean_store(mongo, room, p.valid_texts)


def payloads(room: str) -> dict[str, tuple[Any, ...]]:
    """Argument lists that are not one JSON object: each must be refused by every event."""
    valid = {"room": room, "message": "hi", "username": "ann", "typing": True}
    return {
        "no_payload": (),
        "explicit_null": (None,),
        "int": (123,),
        "float": (1.5,),
        "true": (True,),
        "list": (["general"],),
        "list_wrapping_object": ([valid],),
        "operator_object": ({"$where": "sleep(1000)"},),
        "dict_10k_keys": ({f"k{i}": i for i in range(10_000)},),
        "extra_args": (valid, "extra"),
        "many_extra_args": tuple(valid for _ in range(50)),
    }


EVENTS = ["joinRoom", "chatMessage", "leaveRoom", "typing"]


@pytest.mark.parametrize("event", EVENTS)
async def test_non_object_payloads_and_extra_args_are_refused_and_connection_survives(
    server, client, room, mongo, event
):
    p = await prober(server, client, room)
    cases = {name: (event, args) for name, args in payloads(room).items()}
    if event == "typing":
        # An object whose keys are all unknown is a valid typing event: room and flag default.
        del cases["operator_object"], cases["dict_10k_keys"]
    if event == "chatMessage":
        # A bare string is a message for the last room, but not an empty or control one.
        cases.update({f"bare_{i}": (event, (v,)) for i, v in enumerate(["", " ", "\x07"])})
    codes = await p.refuse_all(cases)
    assert set(codes.values()) == {"invalid_payload"}, codes
    assert_clean_store(mongo, room, p.valid_texts)


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("joinRoom", {"username": "ann", "room": {"$where": "sleep(1000)"}}),
        ("joinRoom", {"username": "ann", "room": "r", "since": {"$where": "sleep(1000)"}}),
        ("chatMessage", {"room": {"$where": "sleep(1000)"}, "message": "x"}),
        ("chatMessage", {"room": "r", "message": "x", "client_id": {"$where": "sleep(1000)"}}),
    ],
)
async def test_where_operator_is_refused_without_being_run(server, client, event, payload):
    c = await client(server.url)
    started = time.monotonic()
    ack = await c.call(event, payload)
    assert time.monotonic() - started < WHERE_REFUSAL_MAX_SECS
    assert ack["error"]["code"] == "invalid_payload"


async def test_typing_with_only_unknown_keys_uses_the_last_room(server, client, room):
    p = await prober(server, client, room)
    bob = await client(server.url)
    await bob.join(room, "bob")
    assert await p.c.call("typing", {"$where": "sleep(1000)"}) == {"ok": True}
    got = await bob.wait_for("typing", lambda t: len(t) == 1)
    assert [{k: v for k, v in t.items() if k != "user_id"} for t in got] == [
        {"room": room, "user": "ann", "typing": True}
    ]


async def test_unknown_and_operator_keys_beside_valid_fields_are_ignored_not_stored(
    server, client, room, mongo
):
    p = await prober(server, client, room)
    ack = await p.c.call(
        "chatMessage",
        {
            "room": room,
            "message": "plain",
            "$set": {"user": "root"},
            "a.b": 1,
            "user": "root",
            "seq": 1,
            "timestamp": {"$gt": ""},
            "_id": "x",
        },
    )
    assert ack["ok"], ack
    [doc] = list(mongo[MESSAGES].find({"room": room}))
    assert (doc["user"], doc["message"], doc["seq"]) == ("ann", "plain", 1)
    assert set(doc) == {
        "_id", "room", "seq", "user", "user_id", "message", "timestamp", "client_id",
        "client_key",
    }  # fmt: skip
    assert str(doc["_id"]) == ack["id"] != "x"


async def test_null_in_an_optional_field_means_absent(server, client, room, mongo):
    c = await client(server.url)
    ack = await c.call("joinRoom", {"username": "ann", "room": room, "since": None})
    assert ack["ok"], ack
    sent = await c.call("chatMessage", {"room": None, "message": "hi", "client_id": None})
    assert sent["ok"], sent
    [doc] = list(mongo[MESSAGES].find({"room": room}))
    assert doc["client_id"].startswith("srv-")


async def test_operator_in_a_field_never_matches_other_rooms_or_users(server, client, room, mongo):
    # If `{"$ne": null}` reached a query as an operator, this client would read or write every
    # room; it must instead be told its payload is invalid and receive nothing.
    other = await client(server.url)
    await other.join(room + "-secret", "owner")
    await other.send(room + "-secret", "secret text")
    c = await client(server.url)
    for value in (CORPUS["ne_null"], CORPUS["regex_all"], CORPUS["gt_empty"]):
        ack = await c.call("joinRoom", {"username": "eve", "room": value})
        assert ack["error"]["code"] == "invalid_payload"
        ack = await c.call("chatMessage", {"room": value, "message": "x"})
        assert ack["error"]["code"] == "invalid_payload"
    assert c.events["chat-history"] == []
    assert c.messages() == []
    for name in mongo.list_collection_names():
        if name.startswith("messages_"):
            assert list(mongo[name].find({"user": "eve"})) == []


# ---- REST ------------------------------------------------------------------------------------


def get(worker: Worker, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def post(worker: Worker, path: str, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def as_query_text(value: Any) -> str:
    return urllib.parse.quote(json.dumps(value), safe="")


@pytest.fixture
def rest_room(server, room: str) -> str:
    status, _ = post(server, "/api/rooms", json.dumps({"name": room}).encode())
    assert status == 201
    return room


@pytest.mark.parametrize("param", ["before", "after", "limit"])
def test_injection_corpus_in_rest_query_parameters_is_400(server, rest_room, param):
    for name, value in [*CORPUS.items(), *BAD_STRINGS.items()]:
        if name in ("int", "empty") or (name == "dict_10k_keys"):
            continue  # 123 is a valid seq or limit, '' means absent; 10k keys exceed a URL
        status, body = get(
            server, f"/api/rooms/{rest_room}/messages?{param}={as_query_text(value)}"
        )
        assert status == 400, (param, name, status, body)
        error = json.loads(body)["error"]
        assert error["code"] == "invalid_payload" and param in error["message"]
        assert b"Traceback" not in body


def test_operator_shaped_query_parameter_names_are_ignored(server, rest_room):
    for query in (
        "before[$ne]=1",
        "limit[$gt]=0",
        "$where=sleep(1000)",
        "room[$ne]=x",
        "before.$ne=1",
    ):
        status, body = get(server, f"/api/rooms/{rest_room}/messages?{query}")
        assert status == 200, (query, body)
        assert json.loads(body) == {"room": rest_room, "messages": [], "has_more": False}


def test_injection_corpus_in_the_room_path_segment_is_400(server):
    for name, value in [*CORPUS.items(), *BAD_STRINGS.items()]:
        if name in ("empty", "dict_10k_keys"):
            continue  # an empty segment is another route; 10k keys exceed a URL
        text = value if isinstance(value, str) else json.dumps(value)
        status, body = get(server, f"/api/rooms/{urllib.parse.quote(text, safe='')}/messages")
        # 'null', 'true', '123' and '1.5' are plain (unknown) room names, nothing more.
        code = json.loads(body)["error"]["code"]
        if NAME_RE.fullmatch(text):
            assert (status, code) == (404, "not_found"), (name, body)
        else:
            assert (status, code) in {(400, "invalid_payload"), (400, "too_long")}, (name, body)


def test_injection_corpus_as_a_room_name_in_post_is_400(server, mongo):
    for name, value in [*CORPUS.items(), *BAD_STRINGS.items()]:
        status, body = post(server, "/api/rooms", json.dumps({"name": value}).encode())
        assert status == 400, (name, status, body)
        assert json.loads(body)["error"]["code"] == "invalid_payload"
    assert_clean_store(mongo, "never-created", [])
