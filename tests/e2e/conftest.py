"""Browser fixtures: the system's headless Chromium (never a downloaded one) driven by
Playwright's async API, real chatd workers, and a check that no page logged an error.

One browser serves the whole run (each page gets a fresh context, i.e. its own cookies and
localStorage), so e2e tests and their async fixtures share the session's event loop: every
e2e module sets `pytestmark = E2E`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Locator,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)
from pymongo import MongoClient

from tests.conftest import IN_CI, Client, Services, Worker, client_factory

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# What Chromium itself logs while a worker is deliberately down (or the network is switched
# off with `context.set_offline`): the failed polling request and WebSocket attempts of the
# reconnecting client. Anything else is a real error.
NETWORK_DOWN = re.compile(
    r"net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|CONNECTION_CLOSED|EMPTY_RESPONSE"
    r"|INTERNET_DISCONNECTED)"
    r"|WebSocket connection to '[^']*' failed"
)
# The rate limit lets one connection send 20 messages at once (config/chatd.toml
# limits.rate_burst); seeding spreads larger batches over several connections.
SEED_PER_CONNECTION = 20

expect.set_options(timeout=10_000)

# pytestmark for every e2e module: the marker, and the session-wide loop the browser lives in.
E2E = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@dataclass
class ChatPage:
    """One user's tab, with everything it logged as an error."""

    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)
    allow_network_errors: bool = False

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def on_page_error(self, error: Error) -> None:
        self.errors.append(f"pageerror: {error}")

    def unexpected_errors(self) -> list[str]:
        return [
            e for e in self.errors if not (self.allow_network_errors and NETWORK_DOWN.search(e))
        ]

    @property
    def messages(self) -> Locator:
        """Every message (confirmed or pending) of the room on screen."""
        return self.page.locator("#scroller li.msg")

    def message(self, text: str) -> Locator:
        """The messages whose whole text is `text`."""
        return self.page.locator("#scroller li.msg").filter(
            has=self.page.locator(".text", has_text=re.compile("^" + re.escape(text) + "$"))
        )

    async def sign_in(self, name: str, room: str) -> None:
        await expect(self.page.locator("#welcome")).to_be_visible()
        await self.page.fill("#welcome-name", name)
        await self.page.fill("#welcome-room", room)
        await self.page.click("#welcome-submit")
        await self.wait_joined(room)

    async def wait_joined(self, room: str, timeout: float = 10_000) -> None:
        await expect(self.page.locator("#room-title")).to_have_text(f"#{room}", timeout=timeout)
        await expect(self.page.locator("#room-online")).to_have_text(
            re.compile(r"^\d+ online$"), timeout=timeout
        )
        await expect(self.page.locator("#banner")).to_be_hidden(timeout=timeout)

    async def send(self, text: str) -> None:
        await self.page.fill("#message", text)
        await self.page.press("#message", "Enter")

    async def seqs(self) -> list[int]:
        values = await self.page.locator("#scroller li.msg[data-seq]").evaluate_all(
            "nodes => nodes.map(n => Number(n.dataset.seq))"
        )
        return [int(v) for v in values]


OpenPage = Callable[..., Awaitable[ChatPage]]


def start_pair(start_worker: Callable[..., Worker], **env: str) -> list[Worker]:
    """Workers 1 and 2 sharing Redis and MongoDB, started side by side (it halves the wait)."""
    pair = [start_worker(worker_id=i, wait=False, **env) for i in (1, 2)]
    for worker in pair:
        worker.wait_ready()
    return pair


@pytest.fixture(scope="session")
def cluster(start_worker: Callable[..., Worker]) -> list[Worker]:
    """Two workers shared by the e2e tests (each test uses rooms of its own)."""
    return start_pair(start_worker)


@pytest.fixture
def pair(cluster: list[Worker]) -> list[Worker]:
    """The shared workers, all running (a failed restart test may have left one stopped)."""
    for worker in cluster:
        if worker.proc is None or worker.proc.poll() is not None:
            worker.start()
    return cluster


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found; scripts/setup installs it"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    """Factory: `await open_page(url, allow_network_errors=False)` -> a ChatPage in its own
    browser context (its own localStorage, like another person's browser). At teardown every
    page must have logged no console error and no uncaught exception."""
    opened: list[ChatPage] = []

    async def make(url: str, allow_network_errors: bool = False, **options: Any) -> ChatPage:
        context = await browser.new_context(**{"viewport": VIEWPORT, **options})
        context.set_default_timeout(10_000)
        page = await context.new_page()
        chat = ChatPage(page, context, allow_network_errors=allow_network_errors)
        page.on("console", chat.on_console)
        page.on("pageerror", chat.on_page_error)
        opened.append(chat)
        await page.goto(url)
        return chat

    yield make
    for chat in opened:
        with contextlib.suppress(Error):
            await chat.context.close()
    problems = {i: chat.unexpected_errors() for i, chat in enumerate(opened)}
    assert not any(problems.values()), f"pages logged errors: {problems}"


@pytest_asyncio.fixture(loop_scope="session")
async def client() -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """tests/conftest.py `client`, on the session loop the e2e tests run in."""
    async with client_factory() as make:
        yield make


@pytest.fixture
def room_name() -> Callable[[str], str]:
    """Factory: a room name no other test uses, readable in failure output."""

    def make(label: str = "room") -> str:
        return f"{label}-{uuid.uuid4().hex[:8]}"

    return make


async def seed(
    client: Callable[..., Awaitable[Client]],
    url: str,
    room: str,
    texts: list[str],
    user: str = "seeder",
    parallel: bool = False,
) -> list[dict[str, Any]]:
    """Send `texts` and return the acks. In order (seq order = list order) unless `parallel`,
    which sends batches from several connections at once: faster, but interleaved."""

    async def send_batch(batch: list[str]) -> list[dict[str, Any]]:
        sender = await client(url)
        await sender.join(room, user)
        acks = []
        for text in batch:
            ack = await sender.send(room, text)
            assert ack["ok"], ack
            acks.append(ack)
        await sender.sio.disconnect()
        return acks

    batches = [
        texts[i : i + SEED_PER_CONNECTION] for i in range(0, len(texts), SEED_PER_CONNECTION)
    ]
    if parallel:
        results = await asyncio.gather(*(send_batch(b) for b in batches))
    else:
        results = [await send_batch(b) for b in batches]
    return [ack for acks in results for ack in acks]


@pytest.fixture
def private_pair(start_worker: Callable[..., Worker], services: Services) -> Iterator[list[Worker]]:
    """Two workers on a database and Redis prefix of their own, so the room list shows only
    what the test made (for the README screenshot)."""
    db = f"{services.mongo_db}_shot"
    prefix = f"{services.redis_prefix}shot"
    pair = start_pair(start_worker, CHATD_MONGO_DB=db, CHATD_REDIS_PREFIX=prefix)
    yield pair
    for worker in pair:
        worker.stop()
    with contextlib.suppress(Exception):
        mongo: MongoClient[dict[str, Any]] = MongoClient(
            services.mongo_url, serverSelectionTimeoutMS=3000
        )
        mongo.drop_database(db)
        mongo.close()
    with contextlib.suppress(Exception):
        r = redis.Redis.from_url(services.redis_url, socket_connect_timeout=2)
        for key in r.scan_iter(f"{prefix}:*"):
            r.delete(key)
        r.close()


async def in_thread(fn: Callable[[], Any]) -> Any:
    """Worker.start/stop block (process start, /readyz polling); keep the event loop free."""
    return await asyncio.to_thread(fn)


def noon_timezone() -> str:
    """A fixed-offset time zone where it is about noon now, so "Today" and "Yesterday" in
    the page cannot flip at midnight while a test runs (Etc/GMT-N is UTC+N)."""
    offset = 12 - datetime.now(UTC).hour
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def create_rooms(url: str, names: list[str]) -> None:
    """Make rooms over REST (POST /api/rooms) so they show in every page's room list."""
    for name in names:
        request = urllib.request.Request(  # noqa: S310 - loopback
            url + "/api/rooms",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - loopback
            assert resp.status in (200, 201), resp.status
