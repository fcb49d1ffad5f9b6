"""The composer: a counter before the message limit, refusals that leave the composer usable,
and limits and name rules that come from the server instead of copies in the client."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Locator, expect

from tests.conftest import Client, Worker, http_get
from tests.e2e.conftest import E2E, ChatPage, OpenPage

pytestmark = E2E


async def box(locator: Locator) -> dict[str, float]:
    found = await locator.bounding_box()
    assert found is not None
    return dict(found)


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


async def assert_composer_uncovered(chat: ChatPage) -> None:
    """No visible alert, toast or counter lies over the message box or the send button."""
    composer = await box(chat.page.locator("#composer"))
    covering = chat.page.locator(".toast:visible, [role=alert]:visible, #counter:visible")
    for i in range(await covering.count()):
        item = covering.nth(i)
        inside = await item.evaluate("n => n.closest('#composer') !== null")
        assert inside or not overlap(await box(item), composer), await item.text_content()


async def test_counter_warns_before_the_limit_and_nothing_covers_the_composer(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("counter")
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", room)
    counter = alice.page.locator("#counter")
    await alice.page.fill("#message", "x" * 1_000)
    await expect(counter).to_be_hidden()
    await alice.page.fill("#message", "x" * 1_850)
    await expect(counter).to_be_visible()
    await expect(counter).to_contain_text("150")
    await assert_composer_uncovered(alice)

    await alice.page.fill("#message", "x" * 2_001)
    await expect(counter).to_contain_text(re.compile(r"\b1\b.*(too|over)", re.I))
    await expect(counter).to_have_class(re.compile(r"\bover\b"))
    await alice.page.press("#message", "Enter")
    # Not sent, not lost, and the box is still there to fix it.
    await expect(alice.page.locator("#message")).to_have_value("x" * 2_001)
    await expect(alice.page.locator("#message")).to_be_focused()
    assert await alice.messages.count() == 0
    await assert_composer_uncovered(alice)
    await expect(alice.page.locator("#message")).to_have_attribute("aria-invalid", "true")

    await alice.page.press("#message", "Backspace")
    await expect(counter).not_to_have_class(re.compile(r"\bover\b"))
    await alice.page.press("#message", "Enter")
    await expect(alice.messages).to_have_count(1)
    await expect(alice.messages.first).to_have_attribute("data-seq", "1")
    await expect(counter).to_be_hidden()


async def test_an_error_toast_leaves_the_composer_uncovered(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("toast")
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", room)
    for size in ({"width": 1280, "height": 800}, {"width": 390, "height": 700}):
        await alice.page.set_viewport_size(size)
        # A remembered room the server refuses to join brings up an error toast.
        await alice.page.evaluate(
            "room => localStorage.setItem('chatd.rooms', JSON.stringify([room, '-refused']))",
            room,
        )
        await alice.page.reload()
        await alice.wait_joined(room)
        await expect(alice.page.locator("#toast")).to_contain_text("-refused")
        await assert_composer_uncovered(alice)
        await expect(alice.page.locator("#message")).to_be_editable()


@pytest.fixture(scope="module")
def small_limits(start_worker: Callable[..., Worker]) -> Worker:
    """A worker whose messages may be at most 120 characters."""
    return start_worker(CHATD_LIMITS_MESSAGE_CHARS="120")


async def test_limits_and_name_rules_come_from_the_server(
    small_limits: Worker,
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    status, body = http_get(small_limits.url + "/api/limits")
    assert status == 200
    limits = json.loads(body)
    assert limits["message_chars"] == 120

    # A name the server refuses: the page shows the server's own words, not a copy of them.
    probe = await client(small_limits.url)
    ack = await probe.call("joinRoom", {"username": "-dash", "room": "general"})
    assert not ack["ok"] and ack["error"]["field"] == "username", ack
    refusal = ack["error"]["message"]

    room = room_name("limits")
    alice = await open_page(small_limits.url)
    await expect(alice.page.locator("#welcome-name-help")).to_have_text(limits["name_rule"])
    await alice.page.fill("#welcome-name", "-dash")
    await alice.page.fill("#welcome-room", room)
    await alice.page.click("#welcome-submit")
    await expect(alice.page.locator("#welcome-error")).to_contain_text(refusal)
    await expect(alice.page.locator("#welcome-error")).to_contain_text("-dash")
    # A name that is too long is caught before asking the server.
    await alice.page.fill("#welcome-name", "n" * (limits["username_chars"] + 1))
    await alice.page.click("#welcome-submit")
    await expect(alice.page.locator("#welcome-error")).to_contain_text(
        str(limits["username_chars"])
    )
    await alice.page.fill("#welcome-name", "_alice")
    await alice.page.fill("#welcome-room", room)
    await alice.page.click("#welcome-submit")
    await alice.wait_joined(room)

    counter = alice.page.locator("#counter")
    await alice.page.fill("#message", "y" * 110)
    await expect(counter).to_contain_text("10")
    await alice.page.fill("#message", "y" * 121)
    await alice.page.press("#message", "Enter")
    await expect(counter).to_have_class(re.compile(r"\bover\b"))
    assert await alice.messages.count() == 0
    await alice.page.fill("#message", "y" * 120)
    await alice.page.press("#message", "Enter")
    await expect(alice.message("y" * 120)).to_have_attribute("data-seq", "1")
