"""MongoDB goes away for a while: senders are told within about 2 s, nothing is broadcast
unstored, and sending works again soon after it returns (docs/guarantees.md G9)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest
from pymongo import MongoClient

from tests.conftest import ROOT, free_port, http_get

pytestmark = pytest.mark.cluster
FERRETDB = ROOT / "var" / "bin" / "ferretdb"


def start_ferretdb(port: int, directory, sqlite_query: str = "") -> subprocess.Popen[bytes]:
    (directory / "data").mkdir(exist_ok=True)
    (directory / "state").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [
            str(FERRETDB),
            f"--listen-addr=127.0.0.1:{port}",
            "--handler=sqlite",
            f"--sqlite-url=file:{directory}/data/{sqlite_query}",
            f"--state-dir={directory}/state",
            "--telemetry=disable",
            "--debug-addr=-",
            "--log-level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=300) as c:
                c.admin.command("ping")
            return proc
        except Exception:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("FerretDB did not start")


async def test_mongodb_outage_gives_quick_errors_and_no_unstored_broadcast(
    start_worker, client, room, tmp_path
):
    if not FERRETDB.exists():
        pytest.skip("var/bin/ferretdb is missing; scripts/setup builds it")
    port = free_port()
    mongo = start_ferretdb(port, tmp_path)
    worker = start_worker(CHATD_MONGO_URL=f"mongodb://127.0.0.1:{port}/")
    try:
        sender = await client(worker.url)
        reader = await client(worker.url)
        await sender.join(room, "sender")
        await reader.join(room, "reader")
        first = await sender.send(room, "stored", client_id="c-0")
        assert first["ok"]

        mongo.kill()
        mongo.wait()
        for i in range(3):
            started = time.monotonic()
            ack = await sender.send(room, f"lost {i}", client_id=f"c-{i + 1}")
            took = time.monotonic() - started
            assert (
                ack == {"ok": False, "error": ack["error"]}
                and ack["error"]["code"] == "unavailable"
            )
            assert took < 3.0, took  # mongo.timeout_secs is 2
        started = time.monotonic()
        # The FerretDB layout keeps the room list in Redis too, so it may still answer.
        status, body = http_get(worker.url + "/api/rooms", timeout=5)
        assert (status, b'"unavailable"' in body) in ((503, True), (200, False)), body
        if status == 200:
            assert "rooms" in json.loads(body)
        assert time.monotonic() - started < 3.0
        assert http_get(worker.url + "/readyz", timeout=5)[0] == 503
        await asyncio.sleep(0.3)
        assert [m["message"] for m in reader.messages(room)] == ["stored"]

        mongo = start_ferretdb(port, tmp_path)
        back = time.monotonic()
        while True:
            ack = await sender.send(room, "lost 0", client_id="c-1")  # the retry of a refusal
            if ack["ok"] or time.monotonic() - back > 5:
                break
            await asyncio.sleep(0.2)
        assert ack["ok"], ack
        again = await sender.send(room, "lost 0", client_id="c-1")
        assert again["id"] == ack["id"] and again["duplicate"]
        await reader.wait_for("chatMessage", lambda ms: len(ms) == 2)
    finally:
        mongo.kill()
        mongo.wait()
