"""FerretDB's wedge (docs/design.md): finds cancelled by a server-side time limit used to leave
SQLite statements open on FerretDB's pooled connections, after which every write on them
failed. The store must stay writable under that pattern, and a wedge that still happens
makes the worker not ready and is counted, until writes go through again."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import threading
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from bson import ObjectId
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from chatd.errors import Unavailable
from chatd.models import utc_now
from chatd.store import LayoutStore
from chatd.store.base import NewMessage, Outcome
from chatd.store.mongo import MongoStore
from tests.conftest import Services, free_port, http_get
from tests.integration.test_mongo_outage import FERRETDB, start_ferretdb

pytestmark = pytest.mark.cluster
SCANNED = 2000  # messages the cancelled finds scan (a fraction of a second each)
LOAD_SECS = 6.0
# The readers' timeout: a few milliseconds, so that their finds are cut short as they start,
# which is when FerretDB's driver used to leave the statement open.
READER_TIMEOUT_SECS = 0.004


def new_message(room: str, seq: int) -> NewMessage:
    key = uuid.uuid4().hex
    return NewMessage(str(ObjectId()), room, seq, "ann", "hi", utc_now(), key, f"ann:{key}")


def store_for(
    services: Services, redis: aioredis.Redis, url: str, db: str, timeout: float
) -> LayoutStore:
    return LayoutStore(url, db, timeout, "blocks", redis, services.redis_prefix, 100, 600)


def concurrent_inserts(url: str, db: str, threads: int = 12, each: int = 5) -> list[str]:
    """Every pooled connection FerretDB has is likely used by one of these: the errors."""
    errors: list[str] = []
    with MongoClient(url, serverSelectionTimeoutMS=3000) as probe:
        collection = probe[db]["probe"]

        def insert() -> None:
            for _ in range(each):
                try:
                    collection.insert_one({"at": time.time()})
                except PyMongoError as exc:
                    errors.append(str(exc)[:200])

        workers = [threading.Thread(target=insert) for _ in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    return errors


async def test_writes_go_through_after_finds_cut_short_among_writers(services, tmp_path):
    if not FERRETDB.exists():
        pytest.skip("var/bin/ferretdb is missing; scripts/setup builds it")
    port = free_port()
    ferretdb = start_ferretdb(port, tmp_path)
    url = f"mongodb://127.0.0.1:{port}/"
    db = f"wedge{uuid.uuid4().hex[:6]}"
    room = "r-big"
    with MongoClient(url) as setup:
        setup[db]["messages"].insert_many(
            [{"room": room, "seq": s, "client_key": f"k{s}", "message": "x" * 100}
             for s in range(1, SCANNED + 1)]
        )  # fmt: skip
    redis = aioredis.Redis.from_url(services.redis_url)
    writer = store_for(services, redis, url, db, 5.0)
    reader = store_for(services, redis, url, db, READER_TIMEOUT_SECS)
    try:
        await writer.start()
        await writer.prepare()
        await reader.start()
        readers = await reader._choose()  # its layout, without its (timed-out) preparation
        deadline = time.monotonic() + LOAD_SECS
        cut_short = 0

        async def read() -> None:
            nonlocal cut_short
            while time.monotonic() < deadline:
                try:
                    # The fallback scan of `messages` that joins and retried sends ran.
                    await MongoStore.find_by_client_key(readers, room, "missing")
                except (Unavailable, PyMongoError):
                    cut_short += 1
                await asyncio.sleep(0.01)

        async def write(n: int) -> None:
            seq = 100_000 * (n + 1)
            while time.monotonic() < deadline:
                seq += 1
                # Under the load a write may fail (locks, timeouts); what counts is afterwards.
                with contextlib.suppress(Unavailable, PyMongoError):
                    await writer.append([new_message(f"w{n}", seq)])

        await asyncio.gather(*(read() for _ in range(4)), *(write(n) for n in range(3)))
        assert cut_short > 50  # the pattern happened

        # Writable afterwards: from the store, and from clients on every pooled connection.
        answers = await writer.append([new_message("after", 1)])
        assert answers[0].outcome is Outcome.STORED
        errors = await asyncio.to_thread(concurrent_inserts, url, db)
        assert errors == []
    finally:
        await reader.close()
        await writer.close()
        await redis.aclose()
        ferretdb.kill()
        ferretdb.wait()


def metric(url: str, name: str) -> float:
    status, body = http_get(url + "/metrics")
    assert status == 200
    found = re.search(rf"^{name} ([0-9.e+]+)$", body.decode(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def wait_until(check: Any, secs: float) -> None:
    deadline = time.monotonic() + secs
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def test_writes_refused_as_locked_make_the_worker_not_ready_until_they_pass(
    start_worker, client, room, services, tmp_path
):
    if not FERRETDB.exists():
        pytest.skip("var/bin/ferretdb is missing; scripts/setup builds it")
    port = free_port()
    # A short busy timeout: a write waiting for the test's lock fails in 0.1 s, not 10 s.
    ferretdb = start_ferretdb(port, tmp_path, "?_pragma=busy_timeout(100)")
    worker = start_worker(CHATD_MONGO_URL=f"mongodb://127.0.0.1:{port}/")
    lock = None
    try:
        sender = await client(worker.url)
        await sender.join(room, "sender")
        assert (await sender.send(room, "before", client_id="c-0"))["ok"]
        assert metric(worker.url, "chatd_store_wedged_total") == 0

        # Another process holds SQLite's write lock on the database's file.
        lock = sqlite3.connect(tmp_path / "data" / f"{services.mongo_db}.sqlite", timeout=5)
        lock.isolation_level = None
        lock.execute("BEGIN IMMEDIATE")

        async def not_ready() -> bool:
            await sender.send(room, "refused", client_id=f"c-{uuid.uuid4().hex[:6]}")
            return http_get(worker.url + "/readyz", timeout=5)[0] == 503

        async def counted() -> bool:
            return metric(worker.url, "chatd_store_wedged_total") >= 1

        await wait_until(not_ready, 15)
        await wait_until(counted, 5)  # reported on the watch's next tick

        lock.execute("ROLLBACK")
        lock.close()
        lock = None

        async def ready() -> bool:
            return http_get(worker.url + "/readyz", timeout=5)[0] == 200

        await wait_until(ready, 10)
        assert (await sender.send(room, "after", client_id="c-after"))["ok"]
    finally:
        if lock is not None:
            lock.close()
        ferretdb.kill()
        ferretdb.wait()
