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


async def test_links_are_clickable_and_only_http(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("links")
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", room)
    bob = await open_page(pair[1].url)
    await bob.sign_in("Bob", room)
    text = (
        "docs at https://example.com/a?b=1&c=d%20e, not javascript:alert(1) "
        'nor data:text/html,<script>x</script> nor "http://"; (see http://example.org/x).'
    )
    await bob.send(text)
    for chat in (alice, bob):
        shown = chat.message(text)
        await expect(shown).to_have_count(1)
        # The text reads exactly as written; only the two http(s) addresses are links.
        await expect(shown.locator(".text")).to_have_text(text)
        links = shown.locator(".text a")
        await expect(links).to_have_count(2)
        assert await links.evaluate_all("ls => ls.map(l => l.href)") == [
            "https://example.com/a?b=1&c=d%20e",
            "http://example.org/x",
        ]
        await expect(links.first).to_have_text("https://example.com/a?b=1&c=d%20e")
        for i in range(2):
            await expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer")
            await expect(links.nth(i)).to_have_attribute("target", "_blank")
        assert await shown.locator("script, img, [onerror]").count() == 0


async def test_coming_back_to_a_room_shows_where_unread_messages_start(
    pair: list[Worker],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    first, second = room_name("unread-a"), room_name("unread-b")
    bob = await client(pair[1].url)
    await bob.join(first, "Bob")
    assert (await bob.send(first, "read before leaving"))["ok"]
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", first)
    await expect(alice.message("read before leaving")).to_have_count(1)
    await expect(alice.page.locator("#scroller .unread-divider")).to_have_count(0)

    await alice.page.fill("#new-room", second)
    await alice.page.press("#new-room", "Enter")
    await alice.wait_joined(second)
    for text in ["new one", "new two"]:
        assert (await bob.send(first, text))["ok"]
    badge = alice.page.locator("#joined-rooms li", has_text=first).locator(".badge")
    await expect(badge).to_have_text("2")

    await alice.page.locator("#joined-rooms .room-link", has_text=first).click()
    await alice.wait_joined(first)
    divider = alice.page.locator("#scroller .unread-divider")
    await expect(divider).to_have_count(1)
    await expect(divider).to_have_text("New messages")
    # Right above the first message that came while Alice was away.
    below = divider.locator("xpath=following-sibling::li[contains(@class,'msg')][1]")
    await expect(below.locator(".text")).to_have_text("new one")
    above = divider.locator("xpath=preceding-sibling::li[contains(@class,'msg')][1]")
    await expect(above.locator(".text")).to_have_text("read before leaving")
    await expect(badge).to_have_count(0)

    # Back again with nothing new: no divider.
    await alice.page.locator("#joined-rooms .room-link", has_text=second).click()
    await alice.page.locator("#joined-rooms .room-link", has_text=first).click()
    await alice.wait_joined(first)
    await expect(divider).to_have_count(0)


async def test_mentions_of_you_are_highlighted(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("mention")
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice Smith", room)
    bob = await open_page(pair[1].url)
    await bob.sign_in("Bob", room)
    await bob.send("@alice smith can you look? cc @Carol")
    shown = alice.message("@alice smith can you look? cc @Carol")
    await expect(shown).to_have_class(re.compile(r"\bmentions-me\b"))
    await expect(shown.locator(".mention.you")).to_have_text("@alice smith")
    await expect(shown.locator(".mention:not(.you)")).to_have_text("@Carol")
    # Bob sees the mentions marked, but none of them is him.
    on_bob = bob.message("@alice smith can you look? cc @Carol")
    await expect(on_bob.locator(".mention")).to_have_count(2)
    await expect(on_bob.locator(".mention.you")).to_have_count(0)
    await expect(on_bob).not_to_have_class(re.compile(r"\bmentions-me\b"))
