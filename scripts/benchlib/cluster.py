"""Workers the benchmark starts itself (scaling, fresh-process idle runs, storm and soak with
--spawn) via scripts/spawn, and a front door (nginx, rendered as scripts/start renders it)."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
SPAWN = ROOT / "scripts" / "spawn"
NGINX = "/usr/sbin/nginx"
READY_TIMEOUT_SECS = 60.0
# The per-connection message limit (default burst 20, 120/min) would turn a load test into a
# rate-limit test; these are the values `scripts/bench --help` tells users to start with.
BENCH_LIMITS = {"CHATD_LIMITS_RATE_PER_MINUTE": "60000", "CHATD_LIMITS_RATE_BURST": "1000"}


class SpawnError(RuntimeError):
    pass


@contextlib.contextmanager
def spawned(workers: int, base_port: int, run_id: str) -> Iterator[list[str]]:
    """Run `scripts/spawn --base-port B N` until the block ends; yield the worker URLs.

    The workers get a database of their own, dropped afterwards: on FerretDB a history read
    scans the whole messages collection, so results would otherwise depend on earlier runs.
    """
    database = f"{os.environ.get('CHATD_MONGO_DB', 'chatd')}_bench_{run_id}"
    env = {**os.environ, **BENCH_LIMITS, "CHATD_MONGO_DB": database}
    proc = subprocess.Popen(
        [str(SPAWN), "--base-port", str(base_port), str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    # A thread reads the lines: select() on a buffered pipe misses lines already buffered.
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    urls: list[str] = []
    seen: list[str] = []
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECS
        while len(urls) < workers:
            if time.monotonic() > deadline:
                raise SpawnError("scripts/spawn not ready in time:\n" + "".join(seen))
            try:
                text = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if not text:
                raise SpawnError("scripts/spawn failed:\n" + "".join(seen))
            seen.append(text)
            if text.startswith("http://"):
                urls.append(text.split()[0])
        yield urls
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        _drop(database)


def _drop(database: str) -> None:
    """Drop the database these workers used (only ever one named by `spawned`)."""
    from pymongo import MongoClient

    url = os.environ.get("CHATD_MONGO_URL", "mongodb://127.0.0.1:27017/")
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=3000)
    try:
        client.drop_database(database)
    except Exception as exc:  # a leftover database is not worth failing the report for
        print(f"warning: could not drop {database}: {exc}", flush=True)
    finally:
        client.close()


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for text in stream:
        lines.put(text)
    lines.put("")  # end of output: scripts/spawn has exited


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def front_door(workers: int, base_port: int, port: int) -> Iterator[str]:
    """nginx on 127.0.0.1:`port` in front of workers 1..N on base_port+I, until the block ends.

    The config is the one scripts/start uses (`python -m chatd render-nginx`), written to a
    temporary folder removed afterwards; yields the front door's URL once it answers /readyz.
    """
    if _port_taken(port):
        raise SpawnError(f"port {port} (front door) is taken; give --front-port")
    directory = Path(tempfile.mkdtemp(prefix="chatd-bench-nginx-"))
    directory.chmod(0o755)  # nginx's worker process may run as another user (root starts it)
    url = f"http://127.0.0.1:{port}"
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [sys.executable, "-m", "chatd", "render-nginx", "--workers", str(workers),
             "--base-port", str(base_port), "--listen", f"127.0.0.1:{port}",
             "--dir", str(directory)],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        conf = directory / "nginx.conf"
        proc = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = directory / "error.log"
                text = log.read_text()[-2000:] if log.exists() else ""
                raise SpawnError(f"front door not ready at {url}/readyz:\n{text}")
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # nginx: fast shutdown
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        shutil.rmtree(directory, ignore_errors=True)
