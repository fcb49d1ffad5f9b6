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
    only ever matches that sender's own message (names never hold ':')."""
    return f"{sender}:{client_id}"


@dataclass(frozen=True)
class Message:
    id: str
    room: str
    user: str
    message: str
    timestamp: datetime
    seq: int
    client_id: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room,
            "user": self.user,
            "message": self.message,
            "timestamp": iso_millis(self.timestamp),
            "seq": self.seq,
            "client_id": self.client_id,
        }


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
