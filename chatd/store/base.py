"""What the chat logic asks of its message store, whatever the database behind it.

A store keeps rooms and messages. Messages arrive in batches (`append`): each gets a seq
chosen by the caller, and two unique keys decide what a batch may store, in every layout:
`(room, seq)`, so no seq is ever stored twice, and `(room, client_key)`, so one sender's
message is stored once however often it is retried. `append` answers per message.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from pymongo.errors import PyMongoError

from chatd.errors import Unavailable
from chatd.models import MESSAGE, Message, Room

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewMessage:
    """A message to store: `client_key` is the sender-scoped idempotency key."""

    id: str
    room: str
    seq: int
    user: str
    text: str
    timestamp: datetime
    client_id: str
    client_key: str
    user_id: str = ""
    kind: str = MESSAGE
    target: str = ""
    target_seq: int = 0

    def stored(self) -> Message:
        return Message(
            id=self.id,
            room=self.room,
            user=self.user,
            message=self.text,
            timestamp=self.timestamp,
            seq=self.seq,
            client_id=self.client_id,
            user_id=self.user_id,
            kind=self.kind,
            target=self.target,
            target_seq=self.target_seq,
        )


@dataclass(frozen=True)
class Owners:
    """Who moderates a room: its owner (empty for rooms older than identities) and the
    identities it named moderators."""

    owner: str
    moderators: frozenset[str]


class Outcome(Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # (room, client_key) was stored before: see `existing`
    SEQ_TAKEN = "seq_taken"  # (room, seq) holds another message: take a higher seq
    CLASH = "clash"  # refused by one of the two keys, the store cannot tell which


@dataclass(frozen=True)
class Appended:
    outcome: Outcome
    existing: Message | None = None


class Store(abc.ABC):
    """The interface `chatd.chat` uses. Implementations: `mongo.MongoStore` (MongoDB's own
    schema) and `ferret.FerretStore` (the same, with what FerretDB 1.24 needs to read fast)."""

    layout: str

    @abc.abstractmethod
    async def prepare(self) -> None:
        """Indexes, and moving data written by older versions (idempotent, resumable)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    @abc.abstractmethod
    async def open_room(self, name: str, owner: str = "") -> bool:
        """Create the room if it is new, owned by `owner`; True when this call created it."""

    @abc.abstractmethod
    async def get_room(self, name: str) -> Room | None: ...

    @abc.abstractmethod
    async def has_room(self, name: str) -> bool:
        """Cheaper than get_room where the layout allows (rooms are never deleted)."""

    @abc.abstractmethod
    async def list_rooms(self, limit: int) -> list[Room]:
        """Most recently active first."""

    @abc.abstractmethod
    async def append(self, batch: list[NewMessage]) -> list[Appended]:
        """Store the batch in as few writes as the layout allows; one answer per message.
        Raises Unavailable when the database did not answer: then nothing is known stored."""

    @abc.abstractmethod
    async def find_by_client_key(self, room: str, client_key: str) -> Message | None: ...

    @abc.abstractmethod
    async def max_seq(self, room: str) -> int:
        """The highest seq stored in the room, or a number at least that high (0 if none)."""

    @abc.abstractmethod
    async def read_after(self, room: str, since: int, limit: int) -> tuple[list[Message], bool]:
        """Oldest first: up to `limit` messages with seq > since; and whether there are more."""

    @abc.abstractmethod
    async def read_before(
        self, room: str, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Oldest first: the `limit` newest messages with seq < before (None: the newest);
        and whether older ones exist."""

    @abc.abstractmethod
    async def find_message(self, room: str, id: str) -> Message | None:
        """The room's message (kind message) with this id, in its current state."""

    @abc.abstractmethod
    async def amend(self, target: Message, change: Message) -> None:
        """Apply a stored edit or deletion (`change`) to its message: an edit only when it is
        newer than the message's newest, a deletion always (and to the message's edits).
        Idempotent: a retried change applies once."""

    @abc.abstractmethod
    async def owners(self, room: str) -> Owners: ...

    @abc.abstractmethod
    async def set_moderator(self, room: str, user_id: str, moderator: bool) -> None: ...

    @abc.abstractmethod
    async def log_moderation(self, entry: dict[str, Any]) -> None:
        """Keep a moderation action: {room, action, by, by_name, target, at, ...}."""

    @abc.abstractmethod
    async def moderation_log(self, room: str, limit: int) -> list[dict[str, Any]]:
        """Newest first."""

    def unsure(self) -> bool:
        """True while a read may lack stored messages that will be readable soon (the FerretDB
        layout re-writing what Redis did not take): a gap found now may close in a moment."""
        return False

    def redis_trouble(self) -> None:
        """Redis was lost, or its topology changed: what it held may lack recent writes."""
        return None

    @abc.abstractmethod
    async def note_activity(self, room: str, seq: int, at: datetime) -> None:
        """Record the room's newest message for the room list (may lag; `$max` semantics)."""


@asynccontextmanager
async def mongo_errors(what: str) -> AsyncIterator[None]:
    """PyMongo's errors (other than refused keys, which callers handle) as Unavailable."""
    try:
        yield
    except PyMongoError as exc:
        if getattr(exc, "code", None) == 11000:
            raise
        log.warning("MongoDB %s failed: %s", what, type(exc).__name__)
        raise Unavailable("message store is unavailable, try again") from exc
