"""Shared fixtures: real Redis, the real MongoDB-protocol server, real chatd processes, real
Socket.IO clients. Service addresses come from CHATD_REDIS_URL and CHATD_MONGO_URL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import socketio
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
# The fleet's machinery (network namespaces, hosts, a Redis Cluster) lives in the load
# generator's package, scripts/benchlib, which `scripts/bench fleet` shares with the tests.
sys.path.insert(0, str(ROOT / "scripts"))
REDIS_URL = os.environ.get("CHATD_REDIS_URL", "redis://127.0.0.1:6379/0")
MONGO_URL = os.environ.get("CHATD_MONGO_URL", "mongodb://127.0.0.1:27017/")
IN_CI = os.environ.get("CI", "").lower() == "true"
READY_TIMEOUT_SECS = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _service_missing(what: str, url: str, exc: Exception) -> None:
    message = f"{what} not reachable at {url} ({exc}); scripts/test starts one"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Services:
    redis_url: str
    mongo_url: str
    mongo_db: str
    redis_prefix: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
        env.update(
            CHATD_REDIS_URL=self.redis_url,
            CHATD_MONGO_URL=self.mongo_url,
            CHATD_MONGO_DB=self.mongo_db,
            CHATD_REDIS_PREFIX=self.redis_prefix,
            CHATD_SERVER_LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    try:
        r = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        r.ping()
    except Exception as exc:
        _service_missing("Redis", REDIS_URL, exc)
    try:
        mongo: MongoClient[dict[str, Any]] = MongoClient(MONGO_URL, serverSelectionTimeoutMS=3000)
        existing = mongo.list_database_names()
    except Exception as exc:
        _service_missing("MongoDB", MONGO_URL, exc)
    run = uuid.uuid4().hex[:10]
    db_name = f"chatd_test_{run}"
    # Never touch a database this run did not create.
    assert db_name not in existing, f"database {db_name} already exists"
    yield Services(REDIS_URL, MONGO_URL, db_name, f"chatdtest{run}")
    with contextlib.suppress(Exception):
        mongo.drop_database(db_name)
    with contextlib.suppress(Exception):
        for key in r.scan_iter(f"chatdtest{run}:*"):
            r.delete(key)
    mongo.close()
    r.close()


@dataclass
class Worker:
    port: int
    worker_id: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> Worker:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chatd",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--worker-id",
                str(self.worker_id),
                *self.extra_args,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            with contextlib.suppress(OSError):
                status, _ = http_get(self.url + "/readyz", timeout=1)
                if status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture(scope="session")
def start_worker(
    services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Worker]]:
    """Factory: start a real `python -m chatd serve` process and wait for /readyz."""
    started: list[Worker] = []
    logs = tmp_path_factory.mktemp("worker-logs")

    def start(
        worker_id: int = 0,
        port: int | None = None,
        wait: bool = True,
        env: dict[str, str] | None = None,
        **extra_env: str,
    ) -> Worker:
        port = port or free_port()
        worker = Worker(
            port=port,
            worker_id=worker_id,
            env=services.env(**extra_env) if env is None else env,
            log_path=logs / f"worker-{port}.log",
        )
        started.append(worker)
        return worker.start(wait=wait)

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def server(start_worker: Callable[..., Worker]) -> Worker:
    """One shared single-process worker for the protocol and REST tests."""
    return start_worker()


@pytest.fixture(scope="session")
def workers(start_worker: Callable[..., Worker]) -> Callable[..., list[Worker]]:
    """Factory: n workers with ids 1..n sharing Redis and MongoDB; keyword arguments are
    extra CHATD_* environment variables."""

    def make(n: int, **env: str) -> list[Worker]:
        return [start_worker(worker_id=i + 1, **env) for i in range(n)]

    return make


@dataclass
class Client:
    """A real python-socketio AsyncClient that records every server event."""

    sio: socketio.AsyncClient
    events: dict[str, list[Any]] = field(default_factory=dict)

    def record(self, name: str) -> None:
        self.events.setdefault(name, [])

        async def handler(data: Any = None) -> None:
            self.events[name].append(data)

        self.sio.on(name, handler)

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    async def join(self, room: str, username: str, **extra: Any) -> dict[str, Any]:
        ack = await self.call("joinRoom", {"username": username, "room": room, **extra})
        assert ack["ok"], ack
        return dict(ack)

    async def send(self, room: str, text: str, **extra: Any) -> dict[str, Any]:
        return dict(await self.call("chatMessage", {"room": room, "message": text, **extra}))

    async def wait_for(
        self, name: str, predicate: Callable[[list[Any]], bool], timeout: float = 10.0
    ) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.events.get(name, [])):
                return self.events[name]
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"{name}: condition not met in {timeout} s; got {self.events.get(name)}"
        )

    def messages(self, room: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.events.get("chatMessage", []) if room is None or m["room"] == room]

    @property
    def session(self) -> dict[str, Any]:
        """What the server said this connection is (its `session` event)."""
        sessions = self.events.get("session") or [{}]
        return dict(sessions[-1])

    @property
    def user_id(self) -> str:
        return str(self.session["user_id"])

    @property
    def token(self) -> str:
        return str(self.session["token"])


SERVER_EVENTS = (
    "chatMessage",
    "chat-history",
    "notification",
    "typing",
    "presence",
    "session",
    "messageEdited",
    "messageDeleted",
    "kicked",
    "resync",
)


@contextlib.asynccontextmanager
async def client_factory() -> AsyncIterator[Callable[..., Any]]:
    """`await make(url, transports=None)` -> connected Client; all closed on exit."""
    made: list[Client] = []

    async def make(
        url: str, transports: list[str] | None = None, auth: Any = None, **kwargs: Any
    ) -> Client:
        c = Client(socketio.AsyncClient(reconnection=kwargs.pop("reconnection", False), **kwargs))
        for name in SERVER_EVENTS:
            c.record(name)
        made.append(c)
        await c.sio.connect(url, transports=transports, wait_timeout=10, auth=auth)
        # The server names the identity right after accepting the connection.
        await c.wait_for("session", bool)
        return c

    try:
        yield make
    finally:
        for c in made:
            with contextlib.suppress(Exception):
                await c.sio.disconnect()


@pytest.fixture
async def client() -> AsyncIterator[Callable[..., Any]]:
    """Factory: `await client(url, transports=None)` -> connected Client, closed at teardown."""
    async with client_factory() as make:
        yield make


@pytest.fixture
def room() -> str:
    """A room name no other test uses."""
    return "r-" + uuid.uuid4().hex[:12]


@dataclass
class FrontDoor:
    """The real nginx front door, rendered by chatd.frontdoor for a set of workers."""

    port: int
    directory: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def start_front_door(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., FrontDoor]]:
    from chatd.frontdoor import write_nginx_conf

    nginx = "/usr/sbin/nginx"
    started: list[FrontDoor] = []

    def start(workers: list[Worker], **conf_options: Any) -> FrontDoor:
        """`conf_options`: write_nginx_conf's keyword arguments (per-address limits)."""
        if not os.path.exists(nginx):
            _service_missing("nginx", nginx, FileNotFoundError(nginx))
        port = free_port()
        directory = tmp_path_factory.mktemp("nginx")
        conf = write_nginx_conf(
            [(w.worker_id, w.port) for w in workers],
            f"127.0.0.1:{port}",
            directory,
            1_000_000,
            **conf_options,
        )
        proc = subprocess.Popen(
            [nginx, "-p", str(directory), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        door = FrontDoor(port, directory, proc)
        started.append(door)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if http_get(door.url + "/healthz", timeout=1)[0] == 200:
                    return door
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"nginx did not start: {(directory / 'error.log').read_text()}")

    yield start
    for door in started:
        door.stop()
