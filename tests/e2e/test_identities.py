"""Identities in the browser client (docs/identities.md): editing and deleting messages, two
people with one name told apart, one person in two tabs as one identity, a token the server
refuses, sign-in mode (a login's token in the address), and moderation (mute, kick) from the
online list."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

import jwt
from playwright.async_api import Request, expect

from tests.conftest import Client, Worker
from tests.e2e.conftest import E2E, ChatPage, OpenPage, in_thread

pytestmark = E2E

TAGGED_SAM = re.compile(r"^sam · [0-9a-z]{4,}$")
OWN = re.compile(r"\bown\b")
SIGN_IN_SECRET = "a-login-secret-for-the-e2e-tests-only-0123456789"


async def open_tab(chat: ChatPage, url: str) -> ChatPage:
    """Another tab in the same browser as `chat`: same localStorage, so the same person."""
    page = await chat.context.new_page()
    tab = ChatPage(page, chat.context)
    page.on("console", tab.on_console)
    page.on("pageerror", tab.on_page_error)
    await page.goto(url)
    return tab


async def wait_token(chat: ChatPage) -> str:
    """The identity token the server handed this page (kept for every tab and reconnect)."""
    handle = await chat.page.wait_for_function(
        "() => JSON.parse(localStorage.getItem('chatd.token') || 'null')"
    )
    return str(await handle.json_value())


def gap_fills(chat: ChatPage) -> list[str]:
    """Record the REST requests that fill seq gaps (GET .../messages?after=)."""
    seen: list[str] = []

    def on_request(request: Request) -> None:
        if "/messages?" in request.url and "after=" in request.url:
            seen.append(request.url)

    chat.page.on("request", on_request)
    return seen


async def open_menu(chat: ChatPage, text: str) -> None:
    """Open the menu of the message reading `text`."""
    message = chat.message(text)
    await message.hover()
    await message.locator(".msg-menu").click()
    await expect(chat.page.get_by_role("menu")).to_be_visible()


async def test_author_edits_and_everyone_sees_the_new_text_marked_edited(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("edit")
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", room)
    bob = await open_page(pair[1].url)
    await bob.sign_in("Bob", room)
    fills = gap_fills(bob)
    await alice.send("helo wrld")
    await expect(bob.message("helo wrld")).to_have_count(1)

    # Bob may not edit or delete Alice's message: it has no menu for him.
    await bob.message("helo wrld").hover()
    await expect(bob.message("helo wrld").locator(".msg-menu")).to_be_hidden()

    # With the keyboard: focus the message, → to its menu button, Enter, Enter on "Edit".
    mine = alice.message("helo wrld")
    await mine.focus()
    await alice.page.keyboard.press("ArrowRight")
    await expect(mine.locator(".msg-menu")).to_be_focused()
    await alice.page.keyboard.press("Enter")
    edit = alice.page.get_by_role("menuitem", name="Edit")
    await expect(edit).to_be_focused()
    await alice.page.keyboard.press("Enter")
    editor = alice.page.get_by_role("textbox", name="Edit your message")
    await expect(editor).to_be_focused()
    await expect(editor).to_have_value("helo wrld")
    await editor.fill("hello world")
    await editor.press("Enter")

    for chat in (alice, bob):
        shown = chat.message("hello world")
        await expect(shown).to_have_count(1)
        await expect(shown.locator(".edited")).to_have_text("(edited)")
        await expect(chat.message("helo wrld")).to_have_count(0)
    await expect(alice.message("hello world")).to_have_class(OWN)
    await expect(alice.message("hello world")).to_be_focused()

    # The edit took seq 2 of the room's order: the next message is 3, and nobody took the
    # edit's seq for a gap to fill over REST.
    await bob.send("next one")
    await expect(alice.message("next one")).to_have_attribute("data-seq", "3")
    assert await alice.seqs() == await bob.seqs() == [1, 3]
    assert fills == [], fills

    # A fresh page load shows the message as it is now, marked, from history.
    await bob.page.reload()
    await bob.wait_joined(room)
    await expect(bob.message("hello world").locator(".edited")).to_have_text("(edited)")
    await expect(bob.message("helo wrld")).to_have_count(0)
    carol = await open_page(pair[1].url)
    await carol.sign_in("Carol", room)
    await expect(carol.message("hello world").locator(".edited")).to_have_count(1)
    await expect(carol.message("helo wrld")).to_have_count(0)
    assert await carol.seqs() == [1, 3]


async def test_author_and_owner_delete_and_the_others_see_message_deleted(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("delete")
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", room)  # first in the room: its owner
    bob = await open_page(pair[1].url, allow_network_errors=True)
    await bob.sign_in("Bob", room)
    for text in ["oops, wrong room", "something rude", "fine message"]:
        await bob.send(text)
        await expect(alice.message(text)).to_have_count(1)

    # The author deletes his own, after confirming.
    await open_menu(bob, "oops, wrong room")
    await bob.page.get_by_role("menuitem", name="Delete…").click()
    dialog = bob.page.get_by_role("dialog", name="Delete this message?")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name="Delete").click()
    await expect(dialog).to_be_hidden()
    for chat in (alice, bob):
        await expect(chat.message("oops, wrong room")).to_have_count(0)
        await expect(chat.message("message deleted")).to_have_count(1)

    # Cancelling deletes nothing.
    await open_menu(bob, "fine message")
    await bob.page.get_by_role("menuitem", name="Delete…").click()
    await bob.page.get_by_role("button", name="Cancel").click()
    await expect(alice.message("fine message")).to_have_count(1)

    # The owner deletes someone else's while Bob is offline: his re-join (with since) gets
    # the deletion from chat-history and applies it.
    await bob.context.set_offline(True)
    await expect(bob.page.locator("#banner")).to_be_visible()
    await open_menu(alice, "something rude")
    await alice.page.get_by_role("menuitem", name="Delete…").click()
    owner_dialog = alice.page.get_by_role("dialog", name="Delete this message?")
    await expect(owner_dialog).to_contain_text("Bob's message")
    await owner_dialog.get_by_role("button", name="Delete").click()
    await expect(alice.message("something rude")).to_have_count(0)
    await expect(alice.message("message deleted")).to_have_count(2)
    await bob.context.set_offline(False)
    await bob.wait_joined(room)
    await expect(bob.message("something rude")).to_have_count(0)
    await expect(bob.message("message deleted")).to_have_count(2)

    # A reload shows the deleted ones in their places, without text or author.
    await bob.page.reload()
    await bob.wait_joined(room)
    await expect(bob.messages).to_have_count(3)
    texts = await bob.page.locator("#scroller li.msg .text").all_text_contents()
    assert texts == ["message deleted", "message deleted", "fine message"]
    assert await bob.seqs() == [1, 2, 3]
    await expect(bob.page.locator("#scroller li.msg.deleted .author")).to_have_count(0)


async def test_two_people_named_sam_are_told_apart(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("sams")
    first = await open_page(pair[0].url)
    await first.sign_in("sam", room)
    second = await open_page(pair[1].url)
    await second.sign_in("sam", room)
    for chat in (first, second):
        await expect(chat.page.locator("#room-online")).to_have_text("2 online")
        await expect(chat.page.locator("#online-list .person")).to_have_count(2)

    await first.send("I am the first sam")
    await second.send("I am the second sam")
    for me, mine, theirs in (
        (first, "I am the first sam", "I am the second sam"),
        (second, "I am the second sam", "I am the first sam"),
    ):
        await expect(me.message(theirs)).to_have_count(1)
        # Only your own message is "You"; the other sam's has a tagged name.
        await expect(me.message(mine)).to_have_class(OWN)
        await expect(me.message(mine).locator(".author")).to_have_text("You")
        await expect(me.message(theirs)).not_to_have_class(OWN)
        await expect(me.message(theirs).locator(".author")).to_have_text(TAGGED_SAM)
        # Not grouped under the other sam's header: a name in common is not a person.
        await expect(me.message(theirs).locator(".author")).to_be_visible()
        # The online list shows both, apart, one of them as you.
        names = await me.page.locator("#online-list .person-name").all_text_contents()
        assert len(set(names)) == 2, names
        assert sum(name.endswith("(you)") for name in names) == 1, names
        label = await me.message(theirs).locator(".author").text_content()
        assert label in names, (label, names)

    # The tag is the same in every browser: the first sam as the second sees them is the
    # first sam as a third person sees them.
    carol = await open_page(pair[0].url)
    await carol.sign_in("Carol", room)
    as_second = await second.message("I am the first sam").locator(".author").text_content()
    await expect(carol.message("I am the first sam").locator(".author")).to_have_text(
        str(as_second)
    )
    as_first = await first.message("I am the second sam").locator(".author").text_content()
    await expect(carol.message("I am the second sam").locator(".author")).to_have_text(
        str(as_first)
    )
    assert as_first != as_second


async def test_two_tabs_of_one_person_are_one_identity(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("tabs")
    dana = await open_page(pair[0].url)
    await dana.sign_in("Dana", room)
    token = await wait_token(dana)
    # localStorage is per origin: the second tab opens the same address.
    second = await open_tab(dana, pair[0].url)
    # Name and room come from localStorage: straight into the room, as the same identity.
    await second.wait_joined(room)
    await expect(second.page.locator("#welcome")).to_be_hidden()
    assert await wait_token(second) == token

    await second.send("written in the second tab")
    shown = dana.message("written in the second tab")
    await expect(shown).to_have_count(1)
    await expect(shown).to_have_class(OWN)
    await expect(shown.locator(".author")).to_have_text("You")
    await dana.send("written in the first tab")
    await expect(second.message("written in the first tab")).to_have_class(OWN)

    # One person online, however many tabs: one entry, and no "joined" notice for the tab.
    for chat in (dana, second):
        await expect(chat.page.locator("#room-online")).to_have_text("1 online")
        await expect(chat.page.locator("#online-list .person")).to_have_count(1)
        await expect(chat.page.locator("#online-list .person-name")).to_have_text("Dana (you)")
    bob = await open_page(pair[1].url)
    await bob.sign_in("Bob", room)
    await expect(bob.page.locator("#online-list .person")).to_have_count(2)
    await expect(bob.message("written in the second tab").locator(".author")).to_have_text("Dana")

    # REST calls carry the token too.
    async with second.page.expect_request(lambda r: "/api/limits" in r.url) as listed:
        await second.page.reload()
    await second.wait_joined(room)
    request = await listed.value
    assert await request.header_value("authorization") == f"Bearer {token}"
    assert not second.unexpected_errors(), second.errors


async def test_a_refused_token_is_forgotten_and_a_fresh_identity_taken(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("bad-token")
    erin = await open_page(pair[0].url)
    await erin.page.evaluate(
        """room => {
            localStorage.setItem("chatd.username", JSON.stringify("Erin"));
            localStorage.setItem("chatd.rooms", JSON.stringify([room]));
            localStorage.setItem("chatd.current", JSON.stringify(room));
            localStorage.setItem("chatd.token", JSON.stringify("not.a.token"));
        }""",
        room,
    )
    await erin.page.reload()
    await erin.wait_joined(room)
    token = await wait_token(erin)
    assert token != "not.a.token"
    await erin.send("sent with a fresh identity")
    await expect(erin.message("sent with a fresh identity")).to_have_class(OWN)
    # Chromium logs the REST call the planted token made (401, then made again without it).
    erin.errors[:] = [e for e in erin.errors if "status of 401" not in e]


async def test_owner_mutes_and_kicks_from_the_online_list(
    pair: list[Worker],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    room = room_name("moderate")
    olga = await open_page(pair[0].url)
    await olga.sign_in("Olga", room)  # first in the room: its owner
    bob = await open_page(pair[1].url)
    await bob.sign_in("Bob", room)

    # Bob, a member, has no menu on anyone; Olga has one on Bob and none on herself.
    await expect(bob.page.locator("#online-list .person-button")).to_have_count(0)
    await expect(olga.page.locator("#online-list .person-button")).to_have_count(1)
    person = olga.page.locator("#online-list .person-button", has_text="Bob")

    await person.click()
    await olga.page.get_by_role("menuitem", name="Mute…").click()
    dialog = olga.page.get_by_role("dialog", name="Mute Bob?")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("spinbutton", name="Minutes").fill("5")
    await dialog.get_by_role("button", name="Mute").click()
    await expect(dialog).to_be_hidden()
    # The room is told, as a system line.
    for chat in (olga, bob):
        await expect(chat.page.locator("#scroller .notice").last).to_contain_text("Bob was muted")
    # Bob's message is refused, in words, with till when.
    await bob.send("can I still talk?")
    pending = bob.message("can I still talk?")
    await expect(pending.locator(".status")).to_have_text(
        re.compile(r"^Not sent: You are muted in this room until .*\d")
    )
    await pending.get_by_role("button", name="Discard").click()

    # Unmute from the same menu, then make him a moderator and back.
    await person.click()
    await olga.page.get_by_role("menuitem", name="Unmute").click()
    await expect(olga.page.locator("#scroller .notice").last).to_contain_text("Bob can write")
    await person.click()
    await olga.page.get_by_role("menuitem", name="Make moderator").click()
    await expect(olga.page.locator("#online-list .person", has_text="Bob")).to_contain_text("mod")
    await expect(bob.page.locator("#online-list .person", has_text="Bob")).to_contain_text("mod")
    await person.click()
    await olga.page.get_by_role("menuitem", name="Remove moderator").click()
    await expect(olga.page.locator("#online-list .person", has_text="Bob")).not_to_contain_text(
        "mod"
    )

    # Kicked: Bob's page says so and why, and he cannot send there.
    await person.click()
    await olga.page.get_by_role("menuitem", name="Kick…").click()
    kick = olga.page.get_by_role("dialog", name=re.compile("^Kick Bob"))
    await kick.get_by_role("button", name="Kick").click()
    await expect(olga.page.locator("#online-list .person")).to_have_count(1)
    await expect(bob.page.locator("#scroller .notice", has_text="removed you")).to_have_count(1)
    await expect(bob.page.locator("#message")).to_be_disabled()
    await expect(bob.page.locator("#message")).to_have_attribute(
        "placeholder", re.compile("removed from")
    )
    # Coming back at once is refused, and said so, in words too.
    await bob.page.reload()
    await expect(bob.page.locator("#scroller .notice", has_text="removed")).to_contain_text(
        "You can join it again at"
    )
    await expect(bob.page.locator("#message")).to_be_disabled()


async def test_sign_in_mode_takes_the_token_from_the_address(
    start_worker: Callable[..., Worker],
    open_page: OpenPage,
    room_name: Callable[[str], str],
) -> None:
    room = room_name("signed-in")
    worker = await in_thread(lambda: start_worker(CHATD_AUTH_SECRET=SIGN_IN_SECRET))
    claims = {"sub": "login:grace", "name": "Grace", "exp": int(time.time()) + 3600}
    token = jwt.encode(claims, SIGN_IN_SECRET, algorithm="HS256")

    # A login redirects to /#token=...: no name to ask for, and the token leaves the address.
    grace = await open_page(f"{worker.url}/#token={token}")
    await expect(grace.page.locator("#me-name")).to_have_text("Grace")
    await expect(grace.page.locator("#welcome")).to_be_hidden()
    await expect(grace.page.locator("#change-name")).to_be_hidden()
    assert "token" not in grace.page.url, grace.page.url
    assert await wait_token(grace) == token
    await grace.page.fill("#new-room", room)
    await grace.page.press("#new-room", "Enter")
    await grace.wait_joined(room)
    await grace.send("signed in by my login")
    await expect(grace.message("signed in by my login")).to_have_class(OWN)
    await expect(grace.message("signed in by my login")).to_have_attribute("data-seq", "1")
    await expect(grace.page.locator("#online-list .person-name")).to_have_text("Grace (you)")

    # Without a token, this server lets nobody in, and the page says how to get in.
    anon = await open_page(worker.url)
    await anon.page.fill("#welcome-name", "Mallory")
    await anon.page.fill("#welcome-room", room)
    await anon.page.click("#welcome-submit")
    await expect(anon.page.locator("#banner")).to_have_attribute("data-state", "signin")
    await expect(anon.page.locator("#banner")).to_contain_text("sign in")
    await expect(grace.page.locator("#online-list .person")).to_have_count(1)
    # Chromium logs the REST calls this server refuses without a token (401).
    anon.errors[:] = [e for e in anon.errors if "status of 401" not in e]
