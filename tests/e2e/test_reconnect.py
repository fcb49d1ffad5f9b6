"""Nothing is lost across a worker restart: the page shows it is reconnecting, re-joins with
`since`, shows every missed message exactly once, and delivers what was typed meanwhile."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from playwright.async_api import expect

from tests.conftest import Client, Worker, http_get
from tests.e2e.conftest import E2E, OpenPage, in_thread

pytestmark = E2E

# Worst case: the client's reconnect back-off (at most 5 s, static/connection.js) plus start-up.
RECONNECT_TIMEOUT_MS = 20_000

DISCONNECTED = re.compile("^(reconnecting|offline)$")


def stored_messages(worker: Worker, room: str) -> list[dict[str, Any]]:
    url = f"{worker.url}/api/rooms/{room}/messages?after=0&limit=200"
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
        return list(json.load(resp)["messages"])


async def test_worker_restart_shows_banner_then_every_missed_message_once(
    pair: list[Worker],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    room = room_name("restart")
    first, second = pair
    alice = await open_page(first.url, allow_network_errors=True)
    await alice.sign_in("Alice", room)
    bob = await client(second.url)
    await bob.join(room, "Bob")
    assert (await bob.send(room, "before the restart"))["ok"]
    await expect(alice.message("before the restart")).to_have_count(1)

    await in_thread(first.stop)
    banner = alice.page.locator("#banner")
    # "offline" instead when the browser sees no network at all (navigator.onLine), as on a
    # test host with only loopback; both tell the user the chat is reconnecting.
    await expect(banner).to_have_attribute("data-state", DISCONNECTED)
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text(re.compile("Reconnecting|offline"))

    missed = [f"missed {i} of 5" for i in range(1, 6)]
    for text in missed:
        assert (await bob.send(room, text))["ok"]

    await in_thread(first.start)
    await expect(banner).to_be_hidden(timeout=RECONNECT_TIMEOUT_MS)
    for text in missed:
        await expect(alice.message(text)).to_have_count(1)
    assert (await bob.send(room, "after the restart"))["ok"]
    await expect(alice.message("after the restart")).to_have_count(1)
    assert await alice.seqs() == list(range(1, 8))
    await expect(alice.message("before the restart")).to_have_count(1)


async def test_message_typed_while_disconnected_is_pending_then_delivered_once(
    pair: list[Worker],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    room = room_name("offline")
    first, second = pair
    alice = await open_page(first.url, allow_network_errors=True)
    await alice.sign_in("Alice", room)
    bob = await client(second.url)
    await bob.join(room, "Bob")
    await alice.send("while connected")
    await bob.wait_for("chatMessage", lambda ms: len(ms) == 1)

    await in_thread(first.stop)
    await expect(alice.page.locator("#banner")).to_have_attribute("data-state", DISCONNECTED)
    text = "typed while the worker was down"
    await alice.send(text)
    pending = alice.message(text)
    await expect(pending).to_have_count(1)
    await expect(pending).to_have_class(re.compile(r"\bpending\b"))
    await expect(pending.locator(".status")).to_have_text("Waiting for connection…")
    assert await pending.get_attribute("data-seq") is None

    await in_thread(first.start)
    await expect(alice.page.locator("#banner")).to_be_hidden(timeout=RECONNECT_TIMEOUT_MS)
    await expect(alice.page.locator("#scroller li.msg.pending")).to_have_count(0)
    await expect(alice.message(text)).to_have_count(1)
    await expect(alice.message(text)).to_have_attribute("data-seq", "2")

    received = await bob.wait_for("chatMessage", lambda ms: any(m["message"] == text for m in ms))
    # One more message after it proves no late duplicate was still on its way.
    await alice.send("and one more")
    received = await bob.wait_for("chatMessage", lambda ms: ms[-1]["message"] == "and one more")
    assert [m["message"] for m in received] == ["while connected", text, "and one more"]
    stored = await in_thread(lambda: stored_messages(second, room))
    assert [m["message"] for m in stored] == ["while connected", text, "and one more"]
    assert await alice.seqs() == [1, 2, 3]


# Wraps the page's Socket.IO client so that it silently loses live messages starting with
# "drop:", as a lost Redis pub/sub delivery would (docs/guarantees.md N1).
DROP_LIVE_MESSAGES = """
(() => {
  let real;
  Object.defineProperty(window, "io", {
    configurable: true,
    set(value) { real = value; },
    get() {
      return real && ((...args) => {
        const socket = real(...args);
        const onevent = socket.onevent.bind(socket);
        socket.onevent = (packet) => {
          const [name, data] = packet.data || [];
          if (name === "chatMessage" && String(data.message).startsWith("drop:")) {
            window.__dropped = (window.__dropped || 0) + 1;
            return;
          }
          onevent(packet);
        };
        return socket;
      });
    },
  });
})();
"""


async def test_seq_gap_in_live_messages_is_filled_from_rest(
    pair: list[Worker],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    room = room_name("gap")
    alice = await open_page(pair[0].url)
    await alice.context.add_init_script(DROP_LIVE_MESSAGES)
    await alice.page.reload()
    await alice.sign_in("Alice", room)
    bob = await client(pair[1].url)
    await bob.join(room, "Bob")
    for text in ["first", "drop: lost on the way", "drop: lost too", "after the gap"]:
        assert (await bob.send(room, text))["ok"]
    # "after the gap" arrives with seq 4 while 2 was the next expected: the client fetches
    # ?after=1 over REST and shows the lost ones, in order, once each.
    await expect(alice.message("after the gap")).to_have_count(1)
    await expect(alice.message("drop: lost on the way")).to_have_count(1)
    await expect(alice.message("drop: lost too")).to_have_count(1)
    assert await alice.seqs() == [1, 2, 3, 4]
    texts = await alice.page.locator("#scroller li.msg .text").all_text_contents()
    assert texts == ["first", "drop: lost on the way", "drop: lost too", "after the gap"]
    assert await alice.page.evaluate("() => window.__dropped") == 2


async def test_burst_beyond_the_rate_limit_is_delivered_in_order(
    pair: list[Worker],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    room = room_name("burst")
    alice = await open_page(pair[0].url)
    await alice.sign_in("Alice", room)
    bob = await client(pair[1].url)
    await bob.join(room, "Bob")
    count = 26  # more than limits.rate_burst (20): some are refused with rate_limited
    # Submit them all in one go, faster than any typist, from inside the page.
    await alice.page.evaluate(
        """count => {
            const input = document.getElementById("message");
            const form = document.getElementById("composer");
            for (let i = 1; i <= count; i++) {
                input.value = `burst ${i}`;
                form.requestSubmit();
            }
        }""",
        count,
    )
    texts = [f"burst {i}" for i in range(1, count + 1)]
    await expect(alice.page.locator("#scroller li.msg.pending")).to_have_count(0, timeout=20_000)
    assert await alice.page.locator("#scroller li.msg .text").all_text_contents() == texts
    assert await alice.seqs() == list(range(1, count + 1))
    received = await bob.wait_for("chatMessage", lambda ms: len(ms) >= count)
    assert [m["message"] for m in received] == texts
    # The limit did refuse some (they were retried with their client_id, after a back-off).
    _, metrics = await asyncio.to_thread(http_get, pair[0].url + "/metrics")
    refused = re.search(rb'chatd_errors_total\{code="rate_limited"\} ([0-9.]+)', metrics)
    assert refused is not None and float(refused.group(1)) > 0
