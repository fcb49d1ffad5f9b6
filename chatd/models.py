"""Message and Room: what the store returns and what goes on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def iso_millis(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds, e.g. 2026-11-28T09:48:55.123Z."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """The inverse of iso_millis."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def utc_now() -> datetime:
    # BSON dates hold milliseconds, so truncate now: the value acked is the value stored.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def client_key(sender: str, client_id: str) -> str:
    """The idempotency key of a message: its client_id, scoped by who sent it, so a client_id
    only ever matches that sender's own message (names never hold ':'; `identity_scope` and
    `kind_scope` make scopes no name can spell)."""
    return f"{sender}:{client_id}"


def identity_scope(user_id: str) -> str:
    """The key scope of a connection that presented a token: its identity, whatever name it
    uses. A control character keeps it apart from every name (names hold none)."""
    return f"\x1fid\x1f{user_id}"


def kind_scope(scope: str, kind: str) -> str:
    """Edits and deletions of one sender have client_ids of their own."""
    return scope if kind == MESSAGE else f"{scope}\x1f{kind}"


# What an entry of a room's log is: a message, or an edit or deletion of one. Edits and
# deletions take a seq in the room's order like messages, so `since` replays them.
MESSAGE, EDIT, DELETE = "message", "edit", "delete"


@dataclass(frozen=True)
class Message:
    """One entry of a room's log, in its current state (docs/identities.md, "History")."""

    id: str
    room: str
    user: str
    message: str
    timestamp: datetime
    seq: int
    client_id: str
    user_id: str = ""  # empty for messages stored before identities existed
    kind: str = MESSAGE
    # An edit or deletion: the id and seq of the message it changes.
    target: str = ""
    target_seq: int = 0
    # A message: its newest edit (seq 0: never edited), and whether it was deleted (then its
    # text is gone). An edit whose message was deleted is `deleted` too.
    edited_at: datetime | None = None
    edit_seq: int = 0
    deleted: bool = False
    deleted_by: str = ""

    def to_wire(self) -> dict[str, Any]:
        if self.kind == EDIT:
            if self.deleted:
                return {"type": EDIT, "room": self.room, "id": self.target, "seq": self.seq,
                        "deleted": True}  # fmt: skip
            return {
                "type": EDIT,
                "room": self.room,
                "id": self.target,
                "seq": self.seq,
                "message": self.message,
                "edited_at": iso_millis(self.timestamp),
                "user_id": self.user_id or None,
            }
        if self.kind == DELETE:
            return {
                "type": DELETE,
                "room": self.room,
                "id": self.target,
                "seq": self.seq,
                "deleted_by": self.user_id or None,
                "timestamp": iso_millis(self.timestamp),
            }
        if self.deleted:
            return {
                "id": self.id,
                "room": self.room,
                "seq": self.seq,
                "timestamp": iso_millis(self.timestamp),
                "deleted": True,
                "deleted_by": self.deleted_by or None,
            }
        wire: dict[str, Any] = {
            "id": self.id,
            "room": self.room,
            "user": self.user,
            "user_id": self.user_id or None,
            "message": self.message,
            "timestamp": iso_millis(self.timestamp),
            "seq": self.seq,
            "client_id": self.client_id,
        }
        if self.edit_seq:
            wire["edited_at"] = iso_millis(self.edited_at) if self.edited_at else None
            wire["edit_seq"] = self.edit_seq
        return wire


@dataclass(frozen=True)
class Room:
    name: str
    created_at: datetime
    last_message_at: datetime | None
    last_seq: int

    def to_wire(self, online: int) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": iso_millis(self.created_at),
            "last_message_at": iso_millis(self.last_message_at) if self.last_message_at else None,
            "last_seq": self.last_seq,
            "online": online,
        }
