"""When the network goes away: presence is shown as unknown instead of stale, and the page
reconnects as soon as the browser says the network is back, without waiting for a back-off."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from playwright.async_api import Request, expect

from tests.conftest import Worker
from tests.e2e.conftest import E2E, OpenPage

pytestmark = E2E

DISCONNECTED = re.compile("^(reconnecting|offline)$")


async def test_presence_is_unknown_while_offline_and_fresh_again_after(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("presence")
    alice = await open_page(pair[0].url, allow_network_errors=True)
    await alice.sign_in("Alice", room)
    bob = await open_page(pair[1].url)
    await bob.sign_in("Bob", room)
    page = alice.page
    await expect(page.locator("#room-online")).to_have_text("2 online")
    await expect(page.locator("#online-list .person")).to_have_count(2)
    await expect(page.locator("#joined-rooms li").first).to_contain_text("2 online")

    await alice.context.set_offline(True)
    await expect(page.locator("#banner")).to_have_attribute("data-state", DISCONNECTED)
    # Nothing claims to know who is online: no count, no green dot, no name chips.
    await expect(page.locator("#room-online")).not_to_have_text(re.compile(r"\d+ online"))
    await expect(page.locator("#room-online")).to_have_text(re.compile("unknown|offline", re.I))
    await expect(page.locator("#online-list .person:visible")).to_have_count(0)
    await expect(page.locator("#joined-rooms")).not_to_contain_text(re.compile(r"\d+ online"))
    await expect(page.locator(".is-online")).to_have_count(0)

    await alice.context.set_offline(False)
    await alice.wait_joined(room)
    await expect(page.locator("#room-online")).to_have_text("2 online")
    await expect(page.locator("#online-list .person")).to_have_count(2)
    await expect(page.locator("#joined-rooms li").first).to_contain_text("2 online")


async def test_reconnects_at_once_when_the_network_comes_back(
    pair: list[Worker], open_page: OpenPage, room_name: Callable[[str], str]
) -> None:
    room = room_name("online-event")
    alice = await open_page(pair[0].url, allow_network_errors=True)
    await alice.sign_in("Alice", room)
    page = alice.page
    failed: list[str] = []
    grown = asyncio.Event()

    def on_failed(request: Request) -> None:
        # A reconnect attempt starts with a polling request that has no session id yet.
        if "/socket.io/" in request.url and "sid=" not in request.url:
            failed.append(request.url)
            if len(failed) >= 4:
                grown.set()

    page.on("requestfailed", on_failed)
    await alice.context.set_offline(True)
    await expect(page.locator("#banner")).to_have_attribute("data-state", DISCONNECTED)
    # Let the back-off grow: after four failed attempts Socket.IO waits 4-5 s for the next
    # one (reconnectionDelay 0.5 s doubling, at most 5 s).
    await asyncio.wait_for(grown.wait(), 60)
    await alice.context.set_offline(False)
    back = time.monotonic()
    await expect(page.locator("#banner")).to_be_hidden(timeout=20_000)
    took = time.monotonic() - back
    assert took < 2.5, f"reconnected {took:.1f} s after the network came back"
    await alice.send("sent after the outage")
    await expect(alice.message("sent after the outage")).to_have_attribute("data-seq", "1")
