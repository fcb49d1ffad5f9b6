"""The message list: order of messages and notices, times on every message, date separators,
the "new since you left" divider, links and mentions."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from tests.conftest import Client, Worker
from tests.e2e.conftest import E2E, ChatPage, OpenPage, noon_timezone

pytestmark = E2E

TIME = re.compile(r"^\d{1,2}:\d{2}")


async def entries(chat: ChatPage) -> list[str]:
    """The room's list as it reads from top to bottom: messages and notices, by text."""
    return list(
        await chat.page.locator("#scroller li.msg, #scroller li.notice").evaluate_all(
            """nodes => nodes.map(n => n.classList.contains("msg")
                ? "msg: " + n.querySelector(".text").textContent
                : "notice: " + n.querySelector(".notice-text").textContent)"""
        )
    )


async def test_first_message_of_a_new_room_goes_below_earlier_join_notices(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("first")
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", room)
    bob = await open_page(pair[1].url)
    await bob.sign_in("Bob", room)
    await expect(alice.page.locator("#scroller .notice")).to_contain_text("Bob joined the room")

    await alice.send("first message")
    await expect(alice.message("first message")).to_have_attribute("data-seq", "1")
    assert await entries(alice) == ["notice: Bob joined the room", "msg: first message"]
    await bob.send("second message")
    await expect(alice.message("second message")).to_have_attribute("data-seq", "2")
    assert await entries(alice) == [
        "notice: Bob joined the room",
        "msg: first message",
        "msg: second message",
    ]


async def test_every_message_has_a_time_and_days_are_separated(
    pair: list[Worker],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    room = room_name("times")
    zone = noon_timezone()
    bob = await client(pair[1].url)
    await bob.join(room, "Bob")
    for text in ["one", "two", "three"]:
        assert (await bob.send(room, text))["ok"]

    alice = await open_page(pair[0].url, timezone_id=zone)
    await alice.sign_in("Alice", room)
    await expect(alice.messages).to_have_count(3)
    first, second = alice.message("one"), alice.message("two")
    # "two" follows "one" from the same person: one header for both, no avatar or name...
    await expect(second).to_have_class(re.compile(r"\bcont\b"))
    await expect(first.locator("time")).to_be_visible()
    await expect(first.locator("time")).to_have_text(TIME)
    await expect(second.locator(".author")).to_be_hidden()
    # ...but its time shows on hover, and on keyboard focus.
    await expect(second.locator("time")).to_be_hidden()
    await second.hover()
    await expect(second.locator("time")).to_be_visible()
    await expect(second.locator("time")).to_have_text(TIME)
    await expect(second.locator("time")).to_have_attribute("datetime", re.compile(r"Z$"))
    await alice.page.mouse.move(0, 0)
    await expect(second.locator("time")).to_be_hidden()
    await alice.message("three").focus()
    await expect(alice.message("three").locator("time")).to_be_visible()

    # One separator above today's messages.
    days = alice.page.locator("#scroller li.day")
    await expect(days).to_have_text(["Today"])
    order = await alice.page.locator("#scroller .messages > li").evaluate_all(
        "nodes => nodes.map(n => ['day', 'msg', 'notice'].find(c => n.classList.contains(c)))"
    )
    assert order[:2] == ["day", "msg"], order

    # Seen from a day later, the same messages are "Yesterday".
    later = await open_page(pair[0].url, timezone_id=zone)
    await later.page.clock.set_fixed_time(datetime.now(UTC) + timedelta(days=1))
    await later.page.reload()
    await later.sign_in("Carol", room)
    await expect(later.messages).to_have_count(3)
    await expect(later.page.locator("#scroller li.day")).to_have_text(["Yesterday"])
