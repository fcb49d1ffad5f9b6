"""Group commit: the sends that arrive together on a worker are stored in one write.

A send waits in a queue. When no batch is being stored, the queue is taken as one batch (a
lone message goes at once: nothing waits for company): each room of the batch gets its seqs
in one Redis round trip (`chatd.seqs`), the batch is stored in one `append`, the messages it
stored are broadcast in seq order, and only then is each send answered. So an acked message
is stored, and a broadcast message is stored. A batch the store does not take fails exactly
its sends, with `unavailable`; a message refused because its seq was taken (Redis lost a
counter) takes a new seq; one refused by its client key was stored before, and its sender
gets the stored one back, marked duplicate.

One batch is stored at a time per worker, so one room's messages leave this worker in seq
order. Two sends of one client key on this worker share one entry. A batch takes at most one
send of each connection (`Entry.origin`): a sender may have several sends waiting (its events
go on while they are stored), and each is stored, retries included, before the next, so one
sender's seqs follow its send order.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bson import ObjectId

from chatd.errors import Unavailable
from chatd.metrics import Metrics
from chatd.models import MESSAGE, Message, client_key, kind_scope, utc_now
from chatd.seqs import Seqs
from chatd.store.base import NewMessage, Outcome, Store

log = logging.getLogger(__name__)

BATCH_MAX = 256
# Sends waiting beyond this many are refused (each connection has at most one waiting, so
# this is reached only when the store has stopped answering).
QUEUE_MAX = 20_000
# A message refused for a taken seq is given another this many times in one batch.
SEQ_ATTEMPTS = 8

Publish = Callable[[list[Message]], Awaitable[None]]


@dataclass(frozen=True)
class SendResult:
    message: Message
    duplicate: bool


@dataclass(frozen=True)
class Entry:
    """What a sender wants stored in a room's log: a message, or an edit or deletion of the
    message `target` (seq `target_seq`). `scope` scopes its client_id (models.client_key)."""

    room: str
    user: str
    user_id: str
    text: str
    client_id: str | None
    scope: str
    kind: str = MESSAGE
    target: str = ""
    target_seq: int = 0
    origin: str = ""  # the connection that sent it ("": none, no order to keep)


@dataclass
class _Pending:
    entry: Entry
    room: str
    client_id: str
    key: str
    done: asyncio.Future[SendResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Writer:
    def __init__(self, store: Store, seqs: Seqs, publish: Publish, metrics: Metrics) -> None:
        self._store = store
        self._seqs = seqs
        self._publish = publish
        self._metrics = metrics
        self._queue: deque[_Pending] = deque()
        self._by_key: dict[tuple[str, str], _Pending] = {}
        self._runner: asyncio.Task[None] | None = None
        self._running = False  # sends are taken only between start() and close()

    def start(self) -> None:
        self._running = True

    async def send(self, entry: Entry) -> SendResult:
        return await self.submit(entry)

    def submit(self, entry: Entry) -> Awaitable[SendResult]:
        """Queue the send now (its place in its sender's order is taken here); the awaitable
        answers once it is stored, or raises."""
        room = entry.room
        wire_id = entry.client_id if entry.client_id is not None else "srv-" + uuid.uuid4().hex
        key = client_key(kind_scope(entry.scope, entry.kind), wire_id)
        earlier = self._by_key.get((room, key))
        if earlier is not None:
            # A retry while the first send is still waiting or being stored on this worker.
            return self._again(earlier)
        if not self._running:
            raise Unavailable("this server is shutting down; retry")
        if len(self._queue) >= QUEUE_MAX:
            raise Unavailable("the message store is not keeping up; retry")
        pending = _Pending(entry, room, wire_id, key)
        self._by_key[(room, key)] = pending
        self._queue.append(pending)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())
        # Shielded: a sender that gives up does not take its message out of a batch. The
        # batch forgets the key once it is answered (_run).
        return asyncio.shield(pending.done)

    @staticmethod
    async def _again(earlier: _Pending) -> SendResult:
        result = await asyncio.shield(earlier.done)
        return SendResult(result.message, duplicate=True)

    def _next_batch(self) -> list[_Pending]:
        """Up to BATCH_MAX waiting sends, oldest first, at most one per connection; the
        others keep their place for the next batch."""
        batch: list[_Pending] = []
        later: list[_Pending] = []
        origins: set[str] = set()
        while self._queue and len(batch) < BATCH_MAX:
            p = self._queue.popleft()
            origin = p.entry.origin
            if origin and origin in origins:
                later.append(p)
                continue
            if origin:
                origins.add(origin)
            batch.append(p)
        self._queue.extendleft(reversed(later))
        return batch

    async def _run(self) -> None:
        while self._queue:
            batch = self._next_batch()
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                self._fail(batch, Unavailable("this server is shutting down; retry"))
                raise
            except Exception:
                log.exception("storing a batch of %d messages failed", len(batch))
                self._fail(batch, Unavailable("message store is unavailable, try again"))
            finally:
                for p in batch:
                    if self._by_key.get((p.room, p.key)) is p:
                        del self._by_key[(p.room, p.key)]

    def _fail(self, batch: list[_Pending], error: Exception) -> None:
        for p in batch:
            if not p.done.done():
                p.done.set_exception(error)
                p.done.exception()  # retrieved: the sender may have gone

    async def _commit(self, batch: list[_Pending]) -> None:
        self._metrics.batch_size.observe(len(batch))
        started = time.perf_counter()
        try:
            stored, answers = await self._store_batch(batch)
        except Unavailable as exc:
            self._fail(batch, exc)
            return
        finally:
            self._metrics.store_seconds.observe(time.perf_counter() - started)
        stored.sort(key=lambda m: m.seq)
        await self._publish(stored)
        for p in batch:
            answer = answers.get(id(p))
            if answer is None:
                self._fail([p], Unavailable("message store is busy, try again"))
            elif not p.done.done():
                p.done.set_result(answer)

    async def _store_batch(
        self, batch: list[_Pending]
    ) -> tuple[list[Message], dict[int, SendResult]]:
        stored: list[Message] = []
        answers: dict[int, SendResult] = {}
        clashes: Counter[int] = Counter()
        todo = batch
        for attempt in range(SEQ_ATTEMPTS):
            try:
                firsts = await self._seqs.take(Counter(p.room for p in todo))
                answered = await self._store.append(offered := self._offer(todo, firsts))
            except Unavailable:
                if attempt == 0:
                    raise
                break  # what earlier attempts stored is broadcast and acked; the rest fail
            retry: list[_Pending] = []
            for p, m, a in zip(todo, offered, answered, strict=True):
                if a.outcome is Outcome.STORED:
                    message = m.stored()
                    stored.append(message)
                    answers[id(p)] = SendResult(message, duplicate=False)
                    continue
                existing = a.existing
                if a.outcome is Outcome.CLASH:
                    # The store cannot say which key refused it. Once with a fresh seq is
                    # the cheap test; refused again, it is the client key.
                    clashes[id(p)] += 1
                    if clashes[id(p)] > 1:
                        try:
                            existing = await self._store.find_by_client_key(p.room, p.key)
                        except Unavailable:
                            continue  # unanswered: this one fails, the others go on
                if existing is not None:
                    answers[id(p)] = SendResult(existing, duplicate=True)
                elif a.outcome is Outcome.DUPLICATE:
                    # Refused by its key, yet not readable (yet): answer later, with a retry.
                    continue
                else:
                    # Seqs below the store's newest were handed out (Redis lost or restored
                    # a counter): skip ahead, further each time, rather than one by one.
                    await self._seqs.raise_past(p.room, m.seq + (1 << attempt) - 1)
                    retry.append(p)
            todo = retry
            if not todo:
                break
        return stored, answers

    @staticmethod
    def _offer(todo: list[_Pending], firsts: dict[str, int]) -> list[NewMessage]:
        now = utc_now()
        offered = []
        for p in todo:
            seq = firsts[p.room]
            firsts[p.room] = seq + 1
            e = p.entry
            offered.append(
                NewMessage(
                    str(ObjectId()), p.room, seq, e.user, e.text, now, p.client_id, p.key,
                    user_id=e.user_id, kind=e.kind, target=e.target, target_seq=e.target_seq,
                )
            )  # fmt: skip
        return offered

    async def close(self, grace_secs: float) -> None:
        """Store what was sent, for at most `grace_secs`; what is left fails with
        `unavailable` and may or may not be stored (docs/guarantees.md N4)."""
        self._running = False
        runner = self._runner
        if runner is None or runner.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(runner), grace_secs)
        except TimeoutError:
            log.warning("%d messages still unstored at shutdown", len(self._queue))
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            left = list(self._queue)
            self._queue.clear()
            self._by_key.clear()
            self._fail(left, Unavailable("this server is shutting down; retry"))
