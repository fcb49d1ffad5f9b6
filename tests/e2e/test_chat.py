"""The browser client end to end: two people on two workers, history, older pages, rooms."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from playwright.async_api import expect

from tests.conftest import Client, Worker
from tests.e2e.conftest import E2E, OpenPage, seed

pytestmark = E2E


async def test_two_users_on_two_workers_chat_both_ways(
    pair: list[Worker],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    room = room_name("both-ways")
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", room)
    bob = await open_page(pair[1].url)
    await bob.sign_in("Bob", room)

    # Presence and the join notice cross workers.
    await expect(alice.page.locator("#online-list")).to_contain_text("Bob")
    await expect(alice.page.locator("#room-online")).to_have_text("2 online")
    await expect(alice.page.locator("#scroller .notice")).to_contain_text("Bob joined the room")

    # The message box has focus after signing in; Enter sends, Shift+Enter starts a new line.
    composer = alice.page.get_by_role("textbox", name=f"Message #{room}")
    await expect(composer).to_be_focused()
    await composer.press_sequentially("Hi Bob, this is worker 1")
    await composer.press("Enter")
    await expect(bob.message("Hi Bob, this is worker 1")).to_have_count(1)
    await expect(composer).to_have_value("")
    bob_composer = bob.page.get_by_role("textbox", name=f"Message #{room}")
    await bob_composer.press_sequentially("Hi Alice!")
    await bob_composer.press("Shift+Enter")
    await bob_composer.press_sequentially("Here is worker 2")
    await bob_composer.press("Enter")
    await expect(alice.message("Hi Alice!\nHere is worker 2")).to_have_count(1)

    # Sender, local time and own-message marking on both sides.
    mine = alice.message("Hi Bob, this is worker 1")
    await expect(mine).to_have_class(re.compile(r"\bown\b"))
    await expect(mine).not_to_have_class(re.compile(r"\bpending\b"))
    theirs = alice.message("Hi Alice!\nHere is worker 2")
    await expect(theirs).not_to_have_class(re.compile(r"\bown\b"))
    await expect(theirs.locator(".author")).to_have_text("Bob")
    await expect(theirs.locator("time")).to_have_attribute("datetime", re.compile(r"Z$"))
    await expect(theirs.locator("time")).to_have_text(re.compile(r"\d{1,2}:\d{2}"))
    assert await alice.seqs() == await bob.seqs() == [1, 2]

    # Typing shows on the other side and goes away by itself: Alice's client says "stopped"
    # after 2 s idle; Carol (a python client) never does, so hers must expire after ~3 s.
    carol = await client(pair[1].url)
    await carol.join(room, "Carol")
    await alice.page.fill("#message", "typing something")
    await carol.call("typing", {"room": room, "typing": True})
    typing = bob.page.locator("#typing")
    await expect(typing).to_have_text(re.compile(r"^(Alice and Carol|Carol and Alice) are typ"))
    await expect(typing).to_have_text("", timeout=8_000)

    # Leaving shows a notice and updates who is online.
    await carol.sio.disconnect()
    await expect(bob.page.locator("#scroller .notice").last).to_contain_text("Carol left")
    await expect(bob.page.locator("#online-list")).not_to_contain_text("Carol")


async def test_history_is_shown_once_after_reload(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("reload")
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", room)
    bob = await open_page(pair[1].url)
    await bob.sign_in("Bob", room)
    for i in range(3):
        await alice.send(f"from alice {i}")
        await bob.send(f"from bob {i}")
    await expect(bob.page.locator("#scroller li.msg:not(.pending)")).to_have_count(6)
    await expect(alice.page.locator("#scroller li.msg:not(.pending)")).to_have_count(6)

    await alice.page.reload()
    # Name and room were remembered: no welcome dialog, straight back into the room.
    await alice.wait_joined(room)
    await expect(alice.page.locator("#welcome")).to_be_hidden()
    await expect(alice.messages).to_have_count(6)
    for i in range(3):
        await expect(alice.message(f"from alice {i}")).to_have_count(1)
        await expect(alice.message(f"from alice {i}")).to_have_class(re.compile(r"\bown\b"))
        await expect(alice.message(f"from bob {i}")).to_have_count(1)
    assert await alice.seqs() == [1, 2, 3, 4, 5, 6]
    await expect(alice.page.locator(".history-edge")).to_contain_text("beginning of the room")


async def test_scrolling_up_loads_older_pages(
    pair: list[Worker],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    room = room_name("older")
    texts = [f"seed {i:03d}" for i in range(1, 121)]
    await seed(client, pair[1].url, room, texts, parallel=True)

    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", room)
    # The join brings the newest 50; the rest comes from REST (before=) on scrolling up.
    await expect(alice.messages).to_have_count(50)
    assert await alice.seqs() == list(range(71, 121))
    scroller = alice.page.locator("#scroller")
    for _ in range(10):
        if await alice.page.locator(".history-edge.start").count():
            break
        shown = await alice.messages.count()
        await scroller.evaluate("el => { el.scrollTop = 0; }")
        await expect(alice.messages).not_to_have_count(shown)
    await expect(alice.page.locator(".history-edge")).to_contain_text("beginning of the room")
    assert await alice.seqs() == list(range(1, 121))
    shown_texts = await alice.page.locator("#scroller li.msg .text").all_text_contents()
    assert sorted(shown_texts) == texts
    # Loading older messages keeps the reader's place: the view did not jump to the top.
    assert await scroller.evaluate("el => el.scrollTop") > 0


async def test_several_rooms_joined_with_unread_counts(
    pair: list[Worker],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    first, second = room_name("first"), room_name("second")
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", first)
    await alice.page.fill("#new-room", second)
    await alice.page.click("#new-room-form button[type=submit]")
    await alice.wait_joined(second)
    joined = alice.page.locator("#joined-rooms .room-name")
    await expect(joined).to_have_text([first, second])

    carol = await client(pair[1].url)
    await carol.join(first, "Carol")
    ack = await carol.send(first, "news in the first room")
    assert ack["ok"], ack
    badge = alice.page.locator("#joined-rooms li", has_text=first).locator(".badge")
    await expect(badge).to_have_text("1")
    await expect(alice.page).to_have_title(re.compile(r"^\(1\) "))
    # The room list shows who is online in each room (Carol and Alice are in the first).
    await expect(alice.page.locator("#joined-rooms li", has_text=first)).to_contain_text("2 online")

    await alice.page.locator("#joined-rooms button.room-link", has_text=first).click()
    await alice.wait_joined(first)
    await expect(alice.message("news in the first room")).to_have_count(1)
    await expect(badge).to_have_count(0)
    await alice.send("reply while in two rooms")
    await carol.wait_for(
        "chatMessage", lambda ms: any(m["message"] == "reply while in two rooms" for m in ms)
    )

    # Leaving a room drops it from "Your rooms" and shows the other one.
    await alice.page.locator(f"#joined-rooms button.leave[aria-label='Leave {first}']").click()
    await expect(joined).to_have_text([second])
    await alice.wait_joined(second)
