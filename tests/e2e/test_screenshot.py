"""A realistic conversation, photographed for the README.

The picture goes to var/screenshot.png, so a test run leaves the working tree clean;
CHATD_UPDATE_SCREENSHOT=1 writes docs/screenshot.png, the one the README shows.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import expect

from tests.conftest import ROOT, Client, Worker
from tests.e2e.conftest import E2E, OpenPage, seed

pytestmark = E2E

FOLDER = "docs" if os.environ.get("CHATD_UPDATE_SCREENSHOT") == "1" else "var"
SCREENSHOT = ROOT / FOLDER / "screenshot.png"


@pytest.fixture
def screenshot_path() -> str:
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    return str(SCREENSHOT)


async def test_screenshot_of_a_conversation(
    private_pair: list[Worker],
    screenshot_path: str,
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
) -> None:
    first, second = private_pair
    # Other rooms with some history, so the sidebar looks like a team's.
    await seed(client, second.url, "release-4.2", ["Tagging rc1 after lunch"], user="Dan")
    await seed(client, first.url, "random", ["Who took the last coffee?"], user="Erin")
    await seed(client, second.url, "ops", ["Disk alert on db-2 cleared"], user="Dan")
    carol = await client(second.url)
    await carol.join("general", "Carol")
    await carol.join("design", "Carol")
    dan = await client(first.url)
    await dan.join("ops", "Dan")
    await carol.send("design", "New sidebar mockups are in the shared folder")
    await carol.send("general", "Morning all! Standup moves to 10:30 today.")

    alice = await open_page(first.url)
    await alice.sign_in("Alice", "design")
    await alice.page.fill("#new-room", "general")
    await alice.page.click("#new-room-form button[type=submit]")
    await alice.wait_joined("general")
    bob = await open_page(second.url)
    await bob.sign_in("Bob", "general")

    lines = [
        (alice, "Thanks Carol! I'll bring the release notes for 4.2."),
        (
            bob,
            "The reconnect fix landed last night: clients re-join with the last seq they "
            "saw, so a worker restart no longer loses anything.",
        ),
        (
            alice,
            "Nice. I restarted worker 2 twice this morning and every message came back "
            "exactly once.",
        ),
        (alice, "@Bob can you review the nginx change before lunch?"),
        (bob, "@Alice on it. The diff: https://git.example.com/chatd/pull/42"),
    ]
    for chat, text in lines:
        await chat.send(text)
        await expect(alice.message(text)).to_have_count(1)
        await expect(bob.message(text)).to_have_count(1)
    await carol.send("design", "Feedback welcome, especially on dark mode")
    await expect(
        alice.page.locator("#joined-rooms li", has_text="design").locator(".badge")
    ).to_have_text("1")

    await bob.page.fill("#message", "Looks good so far")
    await expect(alice.page.locator("#typing")).to_have_text("Bob is typing…")
    await expect(alice.page.locator("#other-rooms .room-name")).to_have_count(3)
    await alice.page.mouse.move(0, 0)
    png = await alice.page.screenshot(path=screenshot_path)
    assert len(png) > 10_000
