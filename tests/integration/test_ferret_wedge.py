"""FerretDB's wedge (docs/design.md): finds cancelled by a server-side time limit used to leave
SQLite statements open on FerretDB's pooled connections, after which every write on them
failed. The store must stay writable under that pattern, and a wedge that still happens
makes the worker not ready and is counted, until writes go through again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from bson import ObjectId
from pymongo import MongoClient, monitoring
from pymongo.errors import PyMongoError

from chatd.errors import Unavailable
from chatd.models import utc_now
from chatd.store import LayoutStore
from chatd.store.base import NewMessage, Outcome
from chatd.store.mongo import MongoStore
from chatd.store.wedge import LOCKED, WriteWatch, ferret_client
from tests.conftest import ROOT, Services, free_port, http_get
from tests.integration.test_mongo_outage import FERRETDB, start_ferretdb

pytestmark = pytest.mark.cluster
SCANNED = 20_000  # messages each cut-short find scans (tens of milliseconds each)
LOAD_SECS = 15.0  # the old client made writes fail within a few seconds, usually
# The readers' timeouts: a few milliseconds, so that their finds are cut short as they start,
# which is when FerretDB's driver left the statement open (when the client sent maxTimeMS).
READER_TIMEOUTS_SECS = (0.002, 0.003, 0.005, 0.008)
READERS = 8
WRITERS = 3


def new_message(room: str, seq: int) -> NewMessage:
    key = uuid.uuid4().hex
    return NewMessage(str(ObjectId()), room, seq, "ann", "hi", utc_now(), key, f"ann:{key}")


def store_for(
    services: Services, redis: aioredis.Redis, url: str, db: str, timeout: float
) -> LayoutStore:
    return LayoutStore(url, db, timeout, "blocks", redis, services.redis_prefix, 100, 600)


def refused(exc: BaseException) -> bool:
    """A write FerretDB refused with a lock error (the wedge's, or its interrupt's)."""
    return bool(LOCKED.search(f"{exc} {exc.__cause__!r} {getattr(exc.__cause__, 'details', '')}"))


class SeenFinds(WriteWatch):
    """The store's watch, which also keeps the find commands its client sends."""

    def __init__(self) -> None:
        super().__init__()
        self.finds: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.finds.append(dict(event.command))


async def test_the_ferretdb_client_sends_no_server_side_time_limit(services):
    """FerretDB's client bounds operations on chatd's side only: no command carries
    maxTimeMS, whatever the store's timeout."""
    seen = SeenFinds()
    client = ferret_client(services.mongo_url, 0.5, seen)
    try:
        await client[services.mongo_db]["probe"].find_one({"none": 1})
    finally:
        await client.close()
    assert seen.finds and all("maxTimeMS" not in f for f in seen.finds), seen.finds


async def test_writes_go_through_beside_finds_cut_short_by_the_stores_timeout(
    services, tmp_path, caplog
):
    """chatd's own FerretDB stores, with timeouts of a few milliseconds, read beside stores
    that write: no write may be refused as locked, during the load or after it. With a
    client that sent maxTimeMS (pymongo's timeoutMS), writes failed with `interrupted (9)` or
    `database is locked` within seconds, and often every write afterwards."""
    if not FERRETDB.exists():
        pytest.skip("var/bin/ferretdb is missing; scripts/setup builds it")
    caplog.set_level(logging.ERROR, logger="chatd.store")  # thousands of finds cut short
    port = free_port()
    ferretdb = start_ferretdb(port, tmp_path)  # its own: a wedge must not outlive the test
    url = f"mongodb://127.0.0.1:{port}/"
    db = f"wedge{uuid.uuid4().hex[:6]}"
    room = "r-big"
    with MongoClient(url) as setup:
        for first in range(1, SCANNED + 1, 2000):
            setup[db]["messages"].insert_many(
                [{"room": room, "seq": s, "client_key": f"k{s}", "message": "x" * 200}
                 for s in range(first, first + 2000)]
            )  # fmt: skip
    redis = aioredis.Redis.from_url(services.redis_url)
    writer = store_for(services, redis, url, db, 5.0)
    readers = [store_for(services, redis, url, db, t) for t in READER_TIMEOUTS_SECS]
    refusals: list[str] = []
    counts = {"cut short": 0, "stored": 0}
    try:
        await writer.start()
        stored: Any = await writer._store()
        # Their layout, through chatd's own FerretDB client, without their preparation (which
        # their timeouts would cut short, again and again).
        reading = [await reader._choose() for reader in readers]
        deadline = time.monotonic() + LOAD_SECS

        def going() -> bool:
            return time.monotonic() < deadline and not refusals

        async def read(store: Any) -> None:
            while going():
                try:
                    # The fallback scan of `messages` that joins and retried sends run.
                    await MongoStore.find_by_client_key(store, room, "missing")
                except (Unavailable, PyMongoError):
                    counts["cut short"] += 1
                await asyncio.sleep(0)

        async def write(n: int) -> None:
            seq = 100_000 * (n + 1)
            while going():
                batch = []
                for _ in range(5):
                    seq += 1
                    batch.append(new_message(f"w{n}", seq))
                try:
                    await MongoStore.append(stored, batch)
                    counts["stored"] += 1
                except (Unavailable, PyMongoError) as exc:
                    if refused(exc):
                        at = time.monotonic() - started
                        refusals.append(f"{at:.1f} s: {exc.__cause__}"[:300])

        started = time.monotonic()
        await asyncio.gather(
            *(read(reading[i % len(reading)]) for i in range(READERS)),
            *(write(n) for n in range(WRITERS)),
        )
        assert refusals == [], (refusals[:3], counts)
        assert counts["cut short"] > 100 and counts["stored"] > 20, counts  # the pattern ran

        # Writable afterwards, one write after another (each may land on any of FerretDB's
        # pooled connections).
        for seq in range(1, 21):
            answers = await MongoStore.append(stored, [new_message("after", seq)])
            assert answers[0].outcome is Outcome.STORED
    finally:
        for reader in readers:
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


SUPERVISED = """\
[unix_http_server]
file={dir}/supervisor.sock
chmod=0700

[supervisord]
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}
directory={root}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock

[program:ferretdb]
; As in supervisord.conf, on a spare port, with a short busy timeout: a write waiting for the
; test's lock fails in 0.1 s, not 10 s.
command={ferretdb} {ferretdb_args}
autorestart=true
stdout_logfile={dir}/ferretdb.log
redirect_stderr=true

[program:chatd]
command={python} -m chatd serve --host 127.0.0.1 --port {worker_port} --worker-id 1
autorestart=true
startsecs=1
stopsignal=TERM
stopwaitsecs=10
stdout_logfile={dir}/chatd.log
redirect_stderr=true
"""


def supervisorctl(conf: Path, *args: str) -> str:
    out = subprocess.run(
        [str(ROOT / ".venv/bin/supervisorctl"), "-c", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return out.stdout


def start_supervisord(conf: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [str(ROOT / ".venv/bin/supervisord"), "-n", "-c", str(conf)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


async def test_a_worker_restarts_the_supervised_ferretdb_that_refuses_every_write(
    client, room, services, tmp_path
):
    """The production layout's self-heal: FerretDB (run by supervisord) refuses every write as
    locked; the worker (run by the same supervisord, CHATD_MONGO_RESTART_PROGRAM=ferretdb)
    restarts it through supervisorctl, and sending works once the lock is gone."""
    if not FERRETDB.exists():
        pytest.skip("var/bin/ferretdb is missing; scripts/setup builds it")
    (tmp_path / "data").mkdir()
    (tmp_path / "state").mkdir()
    mongo_port, worker_port = free_port(), free_port()
    conf = tmp_path / "supervisord.conf"
    conf.write_text(
        SUPERVISED.format(
            dir=tmp_path,
            root=ROOT,
            ferretdb=FERRETDB,
            ferretdb_args=" ".join(
                [
                    f"--listen-addr=127.0.0.1:{mongo_port}",
                    "--handler=sqlite",
                    f"--sqlite-url=file:{tmp_path}/data/?_pragma=busy_timeout(100)",
                    f"--state-dir={tmp_path}/state",
                    "--telemetry=disable",
                    "--debug-addr=-",
                    "--log-level=warn",
                ]
            ),
            python=sys.executable,
            mongo_port=mongo_port,
            worker_port=worker_port,
        )
    )
    env = services.env(
        CHATD_MONGO_URL=f"mongodb://127.0.0.1:{mongo_port}/",
        CHATD_MONGO_RESTART_PROGRAM="ferretdb",
    )
    supervisord = start_supervisord(conf, env)
    url = f"http://127.0.0.1:{worker_port}"
    lock = None
    try:

        async def ready() -> bool:
            with contextlib.suppress(OSError):
                return http_get(url + "/readyz", timeout=2)[0] == 200
            return False

        await wait_until(ready, 30)
        first = int(supervisorctl(conf, "pid", "ferretdb").strip())
        sender = await client(url)
        await sender.join(room, "sender")
        assert (await sender.send(room, "before", client_id="c-0"))["ok"]

        # Another process holds SQLite's write lock on the database's file.
        lock = sqlite3.connect(tmp_path / "data" / f"{services.mongo_db}.sqlite", timeout=5)
        lock.isolation_level = None
        lock.execute("BEGIN IMMEDIATE")

        async def restarted() -> bool:
            # The worker's writes (messages, its probe) are refused meanwhile.
            await sender.send(room, "refused", client_id=f"c-{uuid.uuid4().hex[:6]}")
            pid = supervisorctl(conf, "pid", "ferretdb").strip()
            return pid.isdigit() and int(pid) not in (0, first)

        await wait_until(restarted, 30)  # refused for 5 s, then the watch's next tick

        async def running() -> bool:  # past supervisord's startsecs
            return "RUNNING" in supervisorctl(conf, "status", "ferretdb")

        await wait_until(running, 10)
        lock.execute("ROLLBACK")
        lock.close()
        lock = None

        await wait_until(ready, 20)
        assert (await sender.send(room, "after", client_id="c-after"))["ok"]
        assert metric(url, "chatd_store_wedged_total") >= 1
        assert "restarting ferretdb through supervisord" in (tmp_path / "chatd.log").read_text()
    finally:
        if lock is not None:
            lock.close()
        supervisord.terminate()
        try:
            supervisord.wait(30)
        except subprocess.TimeoutExpired:
            supervisord.kill()
            supervisord.wait()
