"""User text is text: XSS payloads as message, user name and room name never run, and the
page is served with a Content-Security-Policy that forbids inline script and style."""

from __future__ import annotations

from collections.abc import Callable

from playwright.async_api import expect

from tests.conftest import Worker
from tests.e2e.conftest import E2E, ChatPage, OpenPage

pytestmark = E2E

PAYLOADS = [
    "<img src=x onerror=window.__xss=1>",
    "<script>window.__xss=1</script>",
    "<svg/onload=window.__xss=1>",
]


async def assert_inert(chat: ChatPage) -> None:
    assert await chat.page.evaluate("() => window.__xss") is None
    created = await chat.page.evaluate(
        "() => document.querySelectorAll('#app img, #app svg, #app script, dialog img,"
        " dialog svg, dialog script, #toast img, #toast svg, #toast script').length"
    )
    assert created == 0


async def test_xss_payloads_render_as_literal_text(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("xss")
    alice = await open_page(pair[0].url)
    response = await alice.page.request.get(pair[0].url + "/")
    csp = response.headers.get("content-security-policy", "")
    assert csp.startswith("default-src 'self'")
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    # The page needs no exception to that policy: no inline script, style or handler, and
    # every script and stylesheet comes from this origin.
    inline = await alice.page.evaluate(
        "() => [...document.scripts].filter(s => !s.src).length"
        " + document.querySelectorAll('style, [style], [onclick], [onload], [onerror]').length"
    )
    assert inline == 0
    sources = await alice.page.evaluate(
        "() => [...document.scripts].map(s => s.src)"
        ".concat([...document.querySelectorAll('link[href]')].map(l => l.href))"
    )
    assert sources and all(src.startswith(pair[0].url + "/static/") for src in sources)

    await alice.sign_in("Alice", room)
    bob = await open_page(pair[1].url)
    await bob.sign_in("Bob", room)

    # As message text: shown literally to the sender and to the receiver on the other worker.
    for payload in PAYLOADS:
        await alice.send(payload)
    for chat in (alice, bob):
        for payload in PAYLOADS:
            await expect(chat.message(payload)).to_have_count(1)
            await expect(chat.message(payload).locator(".text")).to_have_text(payload)
        assert await chat.page.locator("#scroller li.msg img, #scroller li.msg svg").count() == 0
        assert await chat.page.locator("#scroller script").count() == 0
        await assert_inert(chat)

    # As a room name: refused (the server allows letters, digits, ' ', '-', '.', '_'), and the
    # refusal quotes the name as text.
    for payload in PAYLOADS:
        await alice.page.fill("#new-room", payload)
        await alice.page.click("#new-room-form button[type=submit]")
        await expect(alice.page.locator("#new-room-error")).to_contain_text(payload)
        await assert_inert(alice)
    await expect(alice.page.locator("#joined-rooms .room-name")).to_have_text([room])

    # As a user name: the same, in the welcome dialog of a new visitor.
    eve = await open_page(pair[1].url)
    for payload in PAYLOADS:
        await eve.page.fill("#welcome-name", payload)
        await eve.page.fill("#welcome-room", room)
        await eve.page.click("#welcome-submit")
        await expect(eve.page.locator("#welcome-error")).to_contain_text(payload)
        await assert_inert(eve)
    await expect(eve.page.locator("#welcome")).to_be_visible()
