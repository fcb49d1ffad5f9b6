"""The wire: event names, payload parsing into typed requests, limits and ack helpers.

Raw client JSON enters here as `Any` and leaves as frozen dataclasses holding only
str/int/bool values, so nothing a client sends can reach a MongoDB query as an operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chatd import names
from chatd.errors import ChatError, InvalidPayload, TooLong

# Client -> server events (names from the original brief are kept on the wire).
JOIN_ROOM = "joinRoom"
CHAT_MESSAGE = "chatMessage"
LEAVE_ROOM = "leaveRoom"
TYPING = "typing"
EDIT_MESSAGE = "editMessage"
DELETE_MESSAGE = "deleteMessage"
SET_ROLE = "setRole"
MUTE_USER = "muteUser"
KICK_USER = "kickUser"
# Server -> client events.
SESSION = "session"
MESSAGE_EDITED = "messageEdited"
MESSAGE_DELETED = "messageDeleted"
KICKED = "kicked"
CHAT_HISTORY = "chat-history"
NOTIFICATION = "notification"
PRESENCE = "presence"
# {room}: this connection may have missed messages of the room; re-join it with `since`.
RESYNC = "resync"

# The live event each kind of log entry goes out as (models.MESSAGE, EDIT, DELETE).
EVENT_OF_KIND = {"message": CHAT_MESSAGE, "edit": MESSAGE_EDITED, "delete": MESSAGE_DELETED}
SEQ_EVENTS = frozenset(EVENT_OF_KIND.values())

ROOM_MAX_CHARS = 64
MUTE_MAX_MINUTES = 10_080
USER_ID_MAX_CHARS = 128
_MESSAGE_ID_RE = re.compile(r"[0-9a-f]{24}")
USERNAME_MAX_CHARS = 32
CLIENT_ID_MAX_CHARS = 64
_NAME_NORMALISING_SLACK = 4
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_.:\-]+")
# C0 controls other than tab and newline, DEL and the C1 range: never meaningful in chat text.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# JSON may carry unpaired surrogates ("\ud800"), which cannot be encoded as UTF-8 for BSON:
# they would fail the insert after a seq was taken and answer `internal`.
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
# Query parameters are ASCII digits only: str.isdigit() also accepts '²', which int() refuses,
# and int() refuses more than 4300 digits; 16 digits hold every seq (< 2**53).
_QUERY_INT_MAX_DIGITS = 16


@dataclass(frozen=True)
class JoinRequest:
    username: str
    room: str
    since: int | None


@dataclass(frozen=True)
class MessageRequest:
    room: str
    text: str
    client_id: str | None


@dataclass(frozen=True)
class EditRequest:
    room: str
    id: str
    text: str
    client_id: str | None


@dataclass(frozen=True)
class DeleteRequest:
    room: str
    id: str
    client_id: str | None


@dataclass(frozen=True)
class RoleRequest:
    room: str
    user_id: str
    moderator: bool


@dataclass(frozen=True)
class MuteRequest:
    room: str
    user_id: str
    minutes: int


@dataclass(frozen=True)
class KickRequest:
    room: str
    user_id: str


@dataclass(frozen=True)
class LeaveRequest:
    room: str


@dataclass(frozen=True)
class TypingRequest:
    room: str
    typing: bool


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def fail(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def fail_from(error: ChatError) -> dict[str, Any]:
    answer = fail(error.code, error.message)
    if error.field is not None:
        answer["error"]["field"] = error.field
    if error.until is not None:
        answer["error"]["until"] = error.until
    return answer


def _require_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidPayload("payload must be a JSON object")
    return data


def parse_name(value: Any, what: str, max_chars: int) -> str:
    """The name in its one canonical spelling (chatd/names.py says which names are allowed).
    A leading '.' is never allowed, so a room name cannot walk REST paths ('..')."""
    if not isinstance(value, str):
        raise InvalidPayload(f"{what} must be a string", field=what)
    # Normalising may shorten a name (NFD to NFC) but never by more than this.
    if len(value) > max_chars * _NAME_NORMALISING_SLACK:
        raise TooLong(f"{what} is longer than {max_chars} characters", field=what)
    try:
        return names.normalize_name(value, what, max_chars)
    except names.TooLongName as exc:
        raise TooLong(str(exc), field=what) from None
    except names.NameProblem as exc:
        raise InvalidPayload(str(exc), field=what) from None


def parse_room(value: Any) -> str:
    return parse_name(value, "room", ROOM_MAX_CHARS)


def parse_username(value: Any) -> str:
    return parse_name(value, "username", USERNAME_MAX_CHARS)


def parse_seq(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload(f"{what} must be a non-negative integer", field=what)
    if not 0 <= value < 2**53:
        raise InvalidPayload(f"{what} must be a non-negative integer", field=what)
    return value


def parse_join(data: Any, fixed_name: str | None = None) -> JoinRequest:
    """`fixed_name`: the name a sign-in token gives, which the payload's cannot change."""
    obj = _require_object(data)
    since = obj.get("since")
    return JoinRequest(
        username=fixed_name if fixed_name is not None else parse_username(obj.get("username")),
        room=parse_room(obj.get("room")),
        since=None if since is None else parse_seq(since, "since"),
    )


def parse_text(value: Any, max_chars: int) -> str:
    if not isinstance(value, str):
        raise InvalidPayload("message must be a string", field="message")
    if len(value) > max_chars:
        raise TooLong(f"message is longer than {max_chars} characters", field="message")
    if not names.has_visible_character(value):
        raise InvalidPayload("message is empty", field="message")
    if _CONTROL_RE.search(value):
        raise InvalidPayload("message contains control characters", field="message")
    if _SURROGATE_RE.search(value):
        raise InvalidPayload("message contains unpaired surrogates", field="message")
    return value


def parse_client_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidPayload("client_id must be a non-empty string", field="client_id")
    if len(value) > CLIENT_ID_MAX_CHARS:
        raise TooLong(
            f"client_id is longer than {CLIENT_ID_MAX_CHARS} characters", field="client_id"
        )
    if not _CLIENT_ID_RE.fullmatch(value):
        raise InvalidPayload(
            "client_id may hold only letters, digits, '_', '.', ':' and '-'", field="client_id"
        )
    return value


def parse_message(data: Any, last_room: str | None, max_chars: int) -> MessageRequest:
    """A bare string, or an object without `room`, goes to the room joined last."""
    if isinstance(data, str):
        data = {"message": data}
    obj = _require_object(data)
    raw_room = obj.get("room")
    if raw_room is None:
        if last_room is None:
            raise InvalidPayload("no room given and no room joined", field="room")
        room = last_room
    else:
        room = parse_room(raw_room)
    return MessageRequest(
        room=room,
        text=parse_text(obj.get("message"), max_chars),
        client_id=parse_client_id(obj.get("client_id")),
    )


def parse_leave(data: Any) -> LeaveRequest:
    return LeaveRequest(room=parse_room(_require_object(data).get("room")))


def parse_typing(data: Any, last_room: str | None) -> TypingRequest:
    obj = _require_object(data)
    raw_room = obj.get("room")
    if raw_room is None:
        if last_room is None:
            raise InvalidPayload("no room given and no room joined", field="room")
        room = last_room
    else:
        room = parse_room(raw_room)
    typing = obj.get("typing", True)
    if not isinstance(typing, bool):
        raise InvalidPayload("typing must be true or false", field="typing")
    return TypingRequest(room=room, typing=typing)


def _is_query_int(raw: str) -> bool:
    return raw.isascii() and raw.isdigit() and len(raw) <= _QUERY_INT_MAX_DIGITS


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    if not _is_query_int(raw) or not 1 <= int(raw) <= maximum:
        raise InvalidPayload(f"limit must be an integer 1..{maximum}", field="limit")
    return int(raw)


def parse_before(raw: str | None, what: str = "before") -> int | None:
    """A seq query parameter (`before` or `after`); None when absent."""
    if raw is None or raw == "":
        return None
    if not _is_query_int(raw):
        raise InvalidPayload(f"{what} must be a non-negative integer", field=what)
    return int(raw)


def parse_message_id(value: Any) -> str:
    if not isinstance(value, str) or not _MESSAGE_ID_RE.fullmatch(value):
        raise InvalidPayload("id must be a message id (24 hex digits)", field="id")
    return value


def parse_user_id(value: Any, what: str = "user_id") -> str:
    """A user id as the wire carries it: a moderation target, or a token's subject."""
    if not isinstance(value, str) or not value:
        raise InvalidPayload(f"{what} must be a non-empty string", field=what)
    if len(value) > USER_ID_MAX_CHARS:
        raise TooLong(f"{what} is longer than {USER_ID_MAX_CHARS} characters", field=what)
    if not value.isprintable():
        raise InvalidPayload(f"{what} holds unprintable characters", field=what)
    return value


def parse_edit(data: Any, max_chars: int) -> EditRequest:
    obj = _require_object(data)
    return EditRequest(
        room=parse_room(obj.get("room")),
        id=parse_message_id(obj.get("id")),
        text=parse_text(obj.get("message"), max_chars),
        client_id=parse_client_id(obj.get("client_id")),
    )


def parse_delete(data: Any) -> DeleteRequest:
    obj = _require_object(data)
    return DeleteRequest(
        room=parse_room(obj.get("room")),
        id=parse_message_id(obj.get("id")),
        client_id=parse_client_id(obj.get("client_id")),
    )


def parse_role(data: Any) -> RoleRequest:
    obj = _require_object(data)
    role = obj.get("role")
    if role not in ("moderator", "member"):
        raise InvalidPayload('role must be "moderator" or "member"', field="role")
    return RoleRequest(
        room=parse_room(obj.get("room")),
        user_id=parse_user_id(obj.get("user_id")),
        moderator=role == "moderator",
    )


def parse_mute(data: Any) -> MuteRequest:
    obj = _require_object(data)
    minutes = obj.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise InvalidPayload("minutes must be an integer", field="minutes")
    if not 0 <= minutes <= MUTE_MAX_MINUTES:
        raise InvalidPayload(f"minutes must be 0..{MUTE_MAX_MINUTES}", field="minutes")
    return MuteRequest(
        room=parse_room(obj.get("room")),
        user_id=parse_user_id(obj.get("user_id")),
        minutes=minutes,
    )


def parse_kick(data: Any) -> KickRequest:
    obj = _require_object(data)
    return KickRequest(room=parse_room(obj.get("room")), user_id=parse_user_id(obj.get("user_id")))
