"""The message store behind one interface (`base.Store`), in the layout the database needs.

`mongo.layout` chooses: `single` is MongoDB's own schema (`mongo.MongoStore`); `blocks` adds
what FerretDB 1.24 needs to read fast (`ferret.FerretStore`); `auto`, the default, asks the
server (`buildInfo`) and takes `blocks` for FerretDB and `single` for anything else. The
database may come up after the worker, so the choice is made by `start()` in the background,
and calls wait for it up to the store timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from chatd.errors import Unavailable
from chatd.models import Message, Room
from chatd.redis_conn import RedisClient
from chatd.store.amendments import Amendments
from chatd.store.base import Appended, NewMessage, Owners, Store
from chatd.store.ferret import FerretStore
from chatd.store.mongo import MongoStore
from chatd.store.roomlist import RoomList
from chatd.store.tail import Tail
from chatd.store.wedge import WriteWatch, ferret_client

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "single", "blocks")
RETRY_MAX_SECS = 5.0


class LayoutStore(Store):
    """Picks and prepares the layout at start, then hands every call to it."""

    def __init__(
        self,
        url: str,
        db_name: str,
        timeout_secs: float,
        layout: str,
        redis: RedisClient,
        redis_prefix: str,
        tail_messages: int,
        tail_ttl_secs: int,
        on_wedged: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        timeout_ms = int(timeout_secs * 1000)
        # timeoutMS bounds every operation (pymongo CSOT), so a dead MongoDB turns into an
        # `unavailable` ack within the limit instead of the 30 s server-selection default.
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url,
            tz_aware=True,
            timeoutMS=timeout_ms,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            appname="chatd",
        )
        self._db = self.client[db_name]
        self._url = url
        # FerretDB gets a client of its own, without timeoutMS (chatd/store/wedge.py).
        self._ferret: AsyncMongoClient[dict[str, Any]] | None = None
        self._on_wedged = on_wedged
        self._timeout = timeout_secs
        self._wanted = layout
        self._tail = Tail(redis, redis_prefix, tail_messages, tail_ttl_secs)
        self._room_list = RoomList(redis, redis_prefix)
        self._redis = redis
        self._prefix = redis_prefix
        self._impl: Store | None = None
        self._ready = asyncio.Event()
        self._starting: asyncio.Task[None] | None = None
        self.layout = layout

    async def start(self) -> None:
        self._starting = asyncio.get_running_loop().create_task(self._start())

    async def _start(self) -> None:
        delay = 0.5
        while True:
            impl: Store | None = None
            try:
                impl = await self._choose()
                await impl.prepare()
            except (Unavailable, PyMongoError) as exc:
                if impl is not None:
                    await impl.close()  # its background tasks, started by prepare
                log.info("MongoDB not ready (%s); retrying", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECS)
                continue
            assert impl is not None
            self._impl = impl
            self.layout = impl.layout
            self._ready.set()
            log.info("message store ready: layout %s", impl.layout)
            return

    async def _choose(self) -> Store:
        layout = self._wanted
        if layout == "auto":
            info = await self._db.command("buildInfo")
            layout = "blocks" if "ferretdbVersion" in info else "single"
        if layout == "blocks":
            watch = WriteWatch()
            if self._ferret is not None:
                await self._ferret.close()  # the one of a start that failed
            self._ferret = ferret_client(self._url, self._timeout, watch)
            db = self._ferret[self._db.name]
            amendments = Amendments(self._redis, self._prefix, db["amendments"])
            return FerretStore(db, self._tail, self._room_list, amendments, watch, self._on_wedged)
        return MongoStore(self._db)

    async def _store(self) -> Store:
        if self._impl is not None:
            return self._impl
        try:
            await asyncio.wait_for(self._ready.wait(), self._timeout)
        except TimeoutError:
            raise Unavailable("message store is starting, try again") from None
        assert self._impl is not None
        return self._impl

    async def prepare(self) -> None:
        await self._store()

    async def close(self) -> None:
        """Let the layout flush what it holds, then close the client, also when the flush is
        cut short."""
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        try:
            if self._impl is not None:
                await self._impl.close()
        finally:
            if self._ferret is not None:
                await self._ferret.close()
            await self.client.close()

    def unsure(self) -> bool:
        return self._impl is not None and self._impl.unsure()

    def redis_trouble(self) -> None:
        if self._impl is not None:
            self._impl.redis_trouble()

    async def ping(self) -> bool:
        if self._impl is not None:
            return await self._impl.ping()
        try:
            await self.client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    async def open_room(self, name: str, owner: str = "") -> bool:
        return await (await self._store()).open_room(name, owner)

    async def get_room(self, name: str) -> Room | None:
        return await (await self._store()).get_room(name)

    async def has_room(self, name: str) -> bool:
        return await (await self._store()).has_room(name)

    async def list_rooms(self, limit: int) -> list[Room]:
        return await (await self._store()).list_rooms(limit)

    async def append(self, batch: list[NewMessage]) -> list[Appended]:
        return await (await self._store()).append(batch)

    async def find_by_client_key(self, room: str, client_key: str) -> Message | None:
        return await (await self._store()).find_by_client_key(room, client_key)

    async def max_seq(self, room: str) -> int:
        return await (await self._store()).max_seq(room)

    async def read_after(self, room: str, since: int, limit: int) -> tuple[list[Message], bool]:
        return await (await self._store()).read_after(room, since, limit)

    async def read_before(
        self, room: str, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        return await (await self._store()).read_before(room, before, limit)

    async def note_activity(self, room: str, seq: int, at: datetime) -> None:
        await (await self._store()).note_activity(room, seq, at)

    async def find_message(self, room: str, id: str) -> Message | None:
        return await (await self._store()).find_message(room, id)

    async def amend(self, target: Message, change: Message) -> None:
        await (await self._store()).amend(target, change)

    async def owners(self, room: str) -> Owners:
        return await (await self._store()).owners(room)

    async def set_moderator(self, room: str, user_id: str, moderator: bool) -> None:
        await (await self._store()).set_moderator(room, user_id, moderator)

    async def log_moderation(self, entry: dict[str, Any]) -> None:
        await (await self._store()).log_moderation(entry)

    async def moderation_log(self, room: str, limit: int) -> list[dict[str, Any]]:
        return await (await self._store()).moderation_log(room, limit)
