"""Mentions outside the page: desktop notifications after opting in with the bell, and a
count in the tab title while the tab is hidden."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from playwright.async_api import expect

from tests.conftest import Client, Worker
from tests.e2e.conftest import E2E, OpenPage

pytestmark = E2E

# Records notifications instead of showing them, and lets the test hide the tab: headless
# Chromium has no desktop to show them on, and no way to switch tabs away.
FAKE_DESKTOP = """
(() => {
  window.__notes = [];
  window.__asked = 0;
  class FakeNotification extends EventTarget {
    static permission = "default";
    static async requestPermission() {
      window.__asked += 1;
      FakeNotification.permission = "granted";
      return "granted";
    }
    constructor(title, options) {
      super();
      window.__notes.push({ title, body: options && options.body });
    }
    close() {}
  }
  window.Notification = FakeNotification;
  let hidden = false;
  Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(document, "visibilityState", {
    configurable: true, get: () => (hidden ? "hidden" : "visible"),
  });
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""


async def test_mentions_notify_after_opting_in_and_count_in_the_title_while_hidden(
    pair: list[Worker],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    room = room_name("notify")
    alice = await open_page(pair[0].url)
    await alice.context.add_init_script(FAKE_DESKTOP)
    await alice.page.reload()
    await alice.sign_in("Alice", room)
    bob = await client(pair[1].url)
    await bob.join(room, "Bob")
    page = alice.page

    # Nothing is asked before the user clicks the bell.
    bell = page.locator("#notify-toggle")
    await expect(bell).to_be_visible()
    await expect(bell).to_have_attribute("aria-pressed", "false")
    assert await page.evaluate("() => window.__asked") == 0
    await bell.click()
    await expect(bell).to_have_attribute("aria-pressed", "true")
    assert await page.evaluate("() => window.__asked") == 1

    # While the tab is shown: no notification, no badge.
    assert (await bob.send(room, "@Alice while you look"))["ok"]
    await expect(alice.message("@Alice while you look")).to_have_count(1)
    await page.evaluate("() => window.__setHidden(true)")
    assert (await bob.send(room, "no mention here"))["ok"]
    await expect(page).to_have_title(re.compile(r"^\(1\) #"))
    assert (await bob.send(room, "@alice are you there?"))["ok"]
    assert (await bob.send(room, "@Alice hello?"))["ok"]
    await expect(page).to_have_title(re.compile(r"^\(@2\) #" + re.escape(room)))
    await page.wait_for_function("() => window.__notes.length === 2")
    notes = await page.evaluate("() => window.__notes")
    assert notes[0] == {"title": f"Bob mentioned you in #{room}", "body": "@alice are you there?"}

    # Back on the tab: the badge goes, and nothing more is notified.
    await page.evaluate("() => window.__setHidden(false)")
    await expect(page).to_have_title(f"#{room} · chatd")

    # Switched off with the bell: mentions in a hidden tab only badge the title.
    await bell.click()
    await expect(bell).to_have_attribute("aria-pressed", "false")
    await page.evaluate("() => window.__setHidden(true)")
    assert (await bob.send(room, "@Alice once more"))["ok"]
    await expect(page).to_have_title(re.compile(r"^\(@1\) "))
    assert await page.evaluate("() => window.__notes.length") == 2
    # The choice is remembered: after a reload the bell is still off and asks nothing.
    await page.reload()
    await alice.wait_joined(room)
    await expect(bell).to_have_attribute("aria-pressed", "false")
