"""Parsing client payloads: types, lengths, allowed characters, defaults and error codes."""

from __future__ import annotations

from typing import Any

import pytest

from chatd import protocol
from chatd.errors import ChatError, InvalidPayload, TooLong
from chatd.protocol import (
    CLIENT_ID_MAX_CHARS,
    ROOM_MAX_CHARS,
    USERNAME_MAX_CHARS,
    JoinRequest,
    LeaveRequest,
    MessageRequest,
    TypingRequest,
)

MAX_CHARS = 2000

# The NoSQL-injection corpus (docs/guarantees.md G8), as values of a field.
OPERATOR_VALUES: list[Any] = [
    {"$ne": None},
    {"$gt": ""},
    {"$regex": ".*"},
    {"$where": "sleep(1000)"},
    {"$function": {"body": "function() { return true }", "args": [], "lang": "js"}},
    {"a.b": 1},
    {"$set": {"x": 1}},
    {f"k{i}": i for i in range(10_000)},
    ["general"],
    [],
    123,
    1.5,
    True,
    False,
]


def code_of(call: Any) -> str:
    with pytest.raises(ChatError) as info:
        call()
    return info.value.code


# ---- names (room, username) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "general",
        "a",
        "Room 1",
        "dev-ops",
        "v1.2",
        "_private",
        "café",
        "日本語",
        "x" * ROOM_MAX_CHARS,
        "a.",
        "a..b",
    ],
)
def test_room_name_accepts_letters_digits_space_dash_dot_underscore(name):
    assert protocol.parse_room(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        " lead",
        "trail ",
        ".",
        "..",
        ".hidden",
        "-dash",
        "a/b",
        "a\\b",
        "a$b",
        "a\nb",
        "room\n",
        "room\r\n",
        "a\tb",
        "a\x00b",
        "<script>",
        "a:b",
        "a?b",
        "a#b",
        "a%2e",
        "\u200b",
    ],
)
def test_room_name_with_forbidden_characters_is_invalid(name):
    assert code_of(lambda: protocol.parse_room(name)) == "invalid_payload"


def test_room_name_with_trailing_newline_is_invalid():
    # `$` in a regex also matches before a final newline; the name must match in full.
    with pytest.raises(InvalidPayload):
        protocol.parse_room("general\n")


def test_room_name_one_over_the_maximum_is_too_long():
    assert protocol.parse_room("r" * ROOM_MAX_CHARS) == "r" * ROOM_MAX_CHARS
    assert code_of(lambda: protocol.parse_room("r" * (ROOM_MAX_CHARS + 1))) == "too_long"


def test_username_at_maximum_is_accepted_and_one_over_is_too_long():
    assert protocol.parse_username("u" * USERNAME_MAX_CHARS) == "u" * USERNAME_MAX_CHARS
    assert code_of(lambda: protocol.parse_username("u" * (USERNAME_MAX_CHARS + 1))) == "too_long"


@pytest.mark.parametrize("value", [*OPERATOR_VALUES, None, b"general"])
def test_room_name_that_is_not_a_string_is_invalid(value):
    assert code_of(lambda: protocol.parse_room(value)) == "invalid_payload"


@pytest.mark.parametrize("value", [*OPERATOR_VALUES, None])
def test_username_that_is_not_a_string_is_invalid(value):
    assert code_of(lambda: protocol.parse_username(value)) == "invalid_payload"


def test_huge_name_is_too_long_before_the_pattern_runs():
    assert code_of(lambda: protocol.parse_room("a" * 1_000_000)) == "too_long"


@pytest.mark.parametrize("value", [0, 1, 2**53 - 1])
def test_parse_seq_accepts_non_negative_integers_below_2_to_the_53(value):
    assert protocol.parse_seq(value, "since") == value


@pytest.mark.parametrize("value", [-1, 2**53, True, False, 1.0, "1", None, [1], {"$gt": 0}])
def test_parse_seq_refuses_negatives_huge_bools_floats_and_strings(value):
    assert code_of(lambda: protocol.parse_seq(value, "since")) == "invalid_payload"


# ---- joinRoom -----------------------------------------------------------------------------


def test_parse_join_returns_typed_request_and_ignores_unknown_fields():
    request = protocol.parse_join(
        {"username": "ann", "room": "general", "$where": "sleep(1)", "extra": {"$ne": None}}
    )
    assert request == JoinRequest(username="ann", room="general", since=None)


@pytest.mark.parametrize("since", [0, 1, 42, 2**53 - 1])
def test_parse_join_accepts_non_negative_integer_since(since):
    assert protocol.parse_join({"username": "ann", "room": "g", "since": since}).since == since


def test_parse_join_with_null_since_means_no_since():
    assert protocol.parse_join({"username": "ann", "room": "g", "since": None}).since is None


@pytest.mark.parametrize(
    "since", [True, False, -1, 2**53, 1.0, 1.5, "1", "", [1], {"$gt": 0}, {"$ne": None}]
)
def test_parse_join_with_since_that_is_not_a_seq_is_invalid(since):
    data = {"username": "ann", "room": "g", "since": since}
    assert code_of(lambda: protocol.parse_join(data)) == "invalid_payload"


@pytest.mark.parametrize("data", [None, "general", 123, True, ["ann", "general"], [], 1.5])
def test_parse_join_with_non_object_payload_is_invalid(data):
    assert code_of(lambda: protocol.parse_join(data)) == "invalid_payload"


@pytest.mark.parametrize("missing", ["username", "room"])
def test_parse_join_without_required_field_is_invalid(missing):
    data = {"username": "ann", "room": "g"}
    del data[missing]
    assert code_of(lambda: protocol.parse_join(data)) == "invalid_payload"


# ---- chatMessage --------------------------------------------------------------------------


def test_parse_message_returns_typed_request():
    request = protocol.parse_message(
        {"room": "g", "message": "hi", "client_id": "c-1", "user": "mallory"}, None, MAX_CHARS
    )
    assert request == MessageRequest(room="g", text="hi", client_id="c-1")


def test_bare_string_chat_message_goes_to_last_room():
    assert protocol.parse_message("hello", "lobby", MAX_CHARS) == MessageRequest(
        room="lobby", text="hello", client_id=None
    )


def test_bare_string_chat_message_without_a_joined_room_is_invalid():
    assert code_of(lambda: protocol.parse_message("hello", None, MAX_CHARS)) == "invalid_payload"


@pytest.mark.parametrize("data", [{"message": "hi"}, {"message": "hi", "room": None}])
def test_chat_message_without_room_goes_to_last_room(data):
    assert protocol.parse_message(data, "lobby", MAX_CHARS).room == "lobby"


def test_chat_message_with_explicit_room_ignores_last_room():
    assert protocol.parse_message({"room": "other", "message": "hi"}, "lobby", MAX_CHARS).room == (
        "other"
    )


def test_chat_message_of_exactly_the_limit_is_accepted_and_one_more_is_too_long():
    assert protocol.parse_message({"room": "g", "message": "m" * 10}, None, 10).text == "m" * 10
    data = {"room": "g", "message": "m" * 11}
    assert code_of(lambda: protocol.parse_message(data, None, 10)) == "too_long"


def test_chat_message_limit_counts_characters_not_bytes():
    text = "é" * MAX_CHARS  # 2 bytes each in UTF-8
    assert protocol.parse_message({"room": "g", "message": text}, None, MAX_CHARS).text == text


@pytest.mark.parametrize("text", ["", " ", "\n\t ", "\u3000"])
def test_empty_or_blank_chat_message_is_invalid(text):
    data = {"room": "g", "message": text}
    assert code_of(lambda: protocol.parse_message(data, None, MAX_CHARS)) == "invalid_payload"


@pytest.mark.parametrize("text", ["a\x00b", "bell\x07", "esc\x1b[31m", "cr\r", "del\x7f", "c1\x85"])
def test_chat_message_with_control_characters_is_invalid(text):
    data = {"room": "g", "message": text}
    assert code_of(lambda: protocol.parse_message(data, None, MAX_CHARS)) == "invalid_payload"


def test_chat_message_keeps_tabs_newlines_markup_and_emoji_verbatim():
    text = 'line 1\n\tline 2 <b>bold</b> {"$ne": null} 😀'
    assert protocol.parse_message({"room": "g", "message": text}, None, MAX_CHARS).text == text


def test_chat_message_with_unpaired_surrogate_is_invalid():
    # Valid JSON ("\ud800") but not encodable as UTF-8, so MongoDB could never store it.
    data = {"room": "g", "message": "half \ud800 a pair"}
    assert code_of(lambda: protocol.parse_message(data, None, MAX_CHARS)) == "invalid_payload"


@pytest.mark.parametrize("value", [*OPERATOR_VALUES, None])
def test_chat_message_text_that_is_not_a_string_is_invalid(value):
    data = {"room": "g", "message": value}
    assert code_of(lambda: protocol.parse_message(data, None, MAX_CHARS)) == "invalid_payload"


@pytest.mark.parametrize("value", OPERATOR_VALUES)
def test_chat_message_with_operator_dict_or_non_string_room_is_rejected(value):
    data = {"room": value, "message": "hi"}
    assert code_of(lambda: protocol.parse_message(data, "lobby", MAX_CHARS)) == "invalid_payload"


@pytest.mark.parametrize("data", [None, 123, True, ["g", "hi"], [], 1.5])
def test_chat_message_with_non_object_non_string_payload_is_invalid(data):
    assert code_of(lambda: protocol.parse_message(data, "lobby", MAX_CHARS)) == "invalid_payload"


# ---- client_id ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "client_id", ["a", "c-1", "0b7e6a1c-5a2d-4f3e-9a3b-1c2d3e4f5a6b", "user:42.7_x", "x" * 64]
)
def test_client_id_accepts_letters_digits_and_separators(client_id):
    assert protocol.parse_client_id(client_id) == client_id


def test_absent_client_id_is_none():
    assert protocol.parse_client_id(None) is None
    assert protocol.parse_message({"room": "g", "message": "hi"}, None, MAX_CHARS).client_id is None


def test_client_id_over_the_maximum_is_too_long():
    assert code_of(lambda: protocol.parse_client_id("x" * (CLIENT_ID_MAX_CHARS + 1))) == "too_long"


@pytest.mark.parametrize(
    "client_id", ["", " ", "a b", "a/b", "a$b", "é", "id\n", "a\x00", "{}", "a,b", "a;b"]
)
def test_client_id_with_forbidden_characters_is_invalid(client_id):
    assert code_of(lambda: protocol.parse_client_id(client_id)) == "invalid_payload"


@pytest.mark.parametrize("value", OPERATOR_VALUES)
def test_client_id_that_is_not_a_string_is_invalid(value):
    assert code_of(lambda: protocol.parse_client_id(value)) == "invalid_payload"


# ---- leaveRoom and typing -----------------------------------------------------------------


def test_parse_leave_returns_the_room():
    assert protocol.parse_leave({"room": "g", "junk": 1}) == LeaveRequest(room="g")


@pytest.mark.parametrize("data", [None, "g", 1, ["g"], {}, {"room": None}, {"room": {"$ne": None}}])
def test_parse_leave_without_a_valid_room_is_invalid(data):
    assert code_of(lambda: protocol.parse_leave(data)) == "invalid_payload"


def test_parse_typing_returns_room_and_flag():
    assert protocol.parse_typing({"room": "g", "typing": False}, None) == TypingRequest("g", False)


def test_parse_typing_defaults_to_last_room_and_typing_true():
    assert protocol.parse_typing({}, "lobby") == TypingRequest("lobby", True)


def test_parse_typing_without_room_or_joined_room_is_invalid():
    assert code_of(lambda: protocol.parse_typing({"typing": True}, None)) == "invalid_payload"


@pytest.mark.parametrize("flag", [1, 0, "true", "false", None, [], {"$ne": None}, 1.0])
def test_parse_typing_flag_must_be_a_bool_not_an_int(flag):
    data = {"room": "g", "typing": flag}
    assert code_of(lambda: protocol.parse_typing(data, "g")) == "invalid_payload"


@pytest.mark.parametrize("data", [None, "g", 1, True, ["g"]])
def test_parse_typing_with_non_object_payload_is_invalid(data):
    assert code_of(lambda: protocol.parse_typing(data, "g")) == "invalid_payload"


# ---- REST query parameters ----------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [(None, 50), ("", 50), ("1", 1), ("200", 200)])
def test_parse_limit_defaults_and_accepts_one_to_maximum(raw, expected):
    assert protocol.parse_limit(raw, 50, 200) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "0",
        "201",
        "-1",
        "1.5",
        "abc",
        " 5",
        "5 ",
        "+5",
        "0x10",
        "²",
        "١٢",
        "9" * 5000,
        '{"$gt":0}',
        "[1]",
        "true",
    ],
)
def test_parse_limit_outside_range_or_not_ascii_digits_is_invalid(raw):
    assert code_of(lambda: protocol.parse_limit(raw, 50, 200)) == "invalid_payload"


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), ("0", 0), ("17", 17)])
def test_parse_before_accepts_absent_or_non_negative_integer(raw, expected):
    assert protocol.parse_before(raw) == expected


@pytest.mark.parametrize(
    "raw", ["-1", "1e3", "abc", "²", "٣", "9" * 17, "9" * 5000, '{"$ne":null}', "null", " 1"]
)
def test_parse_before_that_is_not_a_seq_is_invalid(raw):
    assert code_of(lambda: protocol.parse_before(raw)) == "invalid_payload"


def test_parse_before_error_names_the_parameter():
    with pytest.raises(InvalidPayload, match="after"):
        protocol.parse_before("x", "after")


# ---- acks ---------------------------------------------------------------------------------


def test_ok_ack_carries_fields():
    assert protocol.ok(room="g", last_seq=3) == {"ok": True, "room": "g", "last_seq": 3}


def test_fail_ack_carries_stable_code_and_message():
    assert protocol.fail_from(TooLong("too long")) == {
        "ok": False,
        "error": {"code": "too_long", "message": "too long"},
    }
