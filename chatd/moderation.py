"""Who may moderate a room, and the mutes and kicks in force (docs/identities.md).

A room's owner and moderators live in its document in MongoDB, read through a short cache per
worker that a role change clears on every worker with members in the room. Mutes and kicks are
Redis keys that expire with them (hash-tagged by room); each is also kept in the moderation
log. A worker applies a mute or kick to its own connections when the room's channel brings the
notice (`Control`), and checks the keys when a connection joins.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from chatd.errors import Forbidden, Unavailable
from chatd.identity import Identity
from chatd.redis_conn import RedisClient
from chatd.shared_run import SharedRuns
from chatd.store.base import Owners, Store

log = logging.getLogger(__name__)

OWNER, MODERATOR, MEMBER, ADMIN = "owner", "moderator", "member", "admin"
ROLES_CACHE_SECS = 10.0
ROLES_CACHE_MAX = 10_000
ROLES_READ_ATTEMPTS = 3
# A server-only event on a room's channel: what every worker with members there must apply.
CONTROL_EVENT = "chatd:control"


@dataclass(frozen=True)
class InForce:
    muted_until: float = 0.0
    kicked_until: float = 0.0


def role_of(owners: Owners, user_id: str, admin: bool = False) -> str:
    if admin:
        return ADMIN
    if user_id and user_id == owners.owner:
        return OWNER
    if user_id in owners.moderators:
        return MODERATOR
    return MEMBER


def may_moderate(role: str) -> bool:
    return role in (OWNER, MODERATOR, ADMIN)


def check_may_act_on(actor: str, target: str, self_target: bool) -> None:
    """Raise Forbidden unless a `actor` may mute or kick a `target` (both roles)."""
    if not may_moderate(actor):
        raise Forbidden("only the room's owner and moderators may do that")
    if self_target:
        raise Forbidden("you cannot do that to yourself")
    if target in (OWNER, ADMIN):
        raise Forbidden("nobody can moderate the room's owner")
    if target == MODERATOR and actor == MODERATOR:
        raise Forbidden("only the owner can moderate a moderator")


def check_may_set_roles(actor: str) -> None:
    if actor not in (OWNER, ADMIN):
        raise Forbidden("only the room's owner names moderators")


class Moderation:
    def __init__(self, store: Store, redis: RedisClient, prefix: str) -> None:
        self._store = store
        self._redis = redis
        self._prefix = prefix
        self._cache: dict[str, tuple[float, Owners]] = {}
        self._reading: SharedRuns[str, Owners] = SharedRuns()
        # Bumped by every forget: a read that started before a change is read again.
        self._generation = 0

    def _key(self, what: str, room: str, user_id: str) -> str:
        return f"{self._prefix}:{what}:{{{room}}}:{user_id}"

    async def owners(self, room: str) -> Owners:
        cached = self._cache.get(room)
        if cached is not None and time.monotonic() - cached[0] < ROLES_CACHE_SECS:
            return cached[1]
        # One read per room at a time: a storm of joins into a room finds the cache empty
        # together, and on FerretDB each read scans `rooms`.
        return await self._reading.run(room, lambda: self._read(room))

    async def _read(self, room: str) -> Owners:
        now = time.monotonic()
        # A role may change while the read is on its way: then read again, so that whoever
        # asks after a change (to send the room's members with their roles) never gets, or
        # caches, what was true before it.
        for _ in range(ROLES_READ_ATTEMPTS):
            generation = self._generation
            owners = await self._store.owners(room)
            if generation == self._generation:
                if len(self._cache) >= ROLES_CACHE_MAX:
                    self._cache.clear()
                self._cache[room] = (now, owners)
                break
        return owners

    def forget(self, room: str) -> None:
        self._generation += 1
        self._cache.pop(room, None)

    async def role(self, room: str, identity: Identity) -> str:
        return role_of(await self.owners(room), identity.user_id, identity.admin)

    async def in_force(self, room: str, user_id: str) -> InForce:
        """What applies to `user_id` in `room` now; nothing when Redis cannot say."""
        try:
            raw = await self._redis.mget(
                [self._key("mute", room, user_id), self._key("kick", room, user_id)]
            )
        except (RedisError, OSError) as exc:
            log.warning("mutes and kicks unavailable (%s)", type(exc).__name__)
            return InForce()
        muted, kicked = (float(r) if r is not None else 0.0 for r in raw)
        return InForce(muted_until=muted, kicked_until=kicked)

    async def mute(self, room: str, user_id: str, minutes: int) -> float:
        """Until when `user_id` is muted in `room` (0.0: the mute is lifted)."""
        key = self._key("mute", room, user_id)
        until = time.time() + minutes * 60 if minutes else 0.0
        try:
            if minutes:
                await self._redis.set(key, repr(until), ex=minutes * 60)
            else:
                await self._redis.delete(key)
        except (RedisError, OSError):
            raise Unavailable("the mute could not be recorded; try again") from None
        return until

    async def kick(self, room: str, user_id: str, minutes: int) -> float:
        until = time.time() + minutes * 60
        try:
            await self._redis.set(self._key("kick", room, user_id), repr(until), ex=minutes * 60)
        except (RedisError, OSError):
            raise Unavailable("the kick could not be recorded; try again") from None
        return until

    async def set_moderator(self, room: str, user_id: str, moderator: bool) -> None:
        await self._store.set_moderator(room, user_id, moderator)
        self.forget(room)

    async def record(self, entry: dict[str, Any]) -> None:
        await self._store.log_moderation(entry)

    async def log(self, room: str, limit: int) -> list[dict[str, Any]]:
        return await self._store.moderation_log(room, limit)
