"""The browser client through the real nginx front door, as users open it on :3000."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from playwright.async_api import expect

from tests.conftest import Client, FrontDoor, Worker, http_get
from tests.e2e.conftest import E2E, OpenPage, in_thread, start_pair

pytestmark = E2E


def connected_clients(worker: Worker) -> float:
    _, body = http_get(worker.url + "/metrics")
    match = re.search(r"^chatd_connected_clients (\S+)$", body.decode(), re.M)
    assert match
    return float(match.group(1))


async def test_killed_worker_behind_the_front_door_costs_no_message(
    start_worker: Callable[..., Worker],
    start_front_door: Callable[[list[Worker]], FrontDoor],
    open_page: OpenPage,
    client: Callable[..., Awaitable[Client]],
    room_name: Callable[[str], str],
) -> None:
    workers = start_pair(start_worker)
    door = start_front_door(workers)
    room = room_name("front-door")
    alice = await open_page(door.url, allow_network_errors=True)
    await alice.sign_in("Alice", room)
    # Alice's session lives on one worker (the only one with a client yet); Bob talks from
    # the other one.
    (victim,) = [w for w in workers if connected_clients(w) == 1]
    survivor = next(w for w in workers if w is not victim)
    carol = await open_page(door.url, allow_network_errors=True)
    await carol.sign_in("Carol", room)
    await alice.send("hello through the front door")
    await expect(carol.message("hello through the front door")).to_have_count(1)

    bob = await client(survivor.url)
    await bob.join(room, "Bob")

    await in_thread(lambda: victim.signal(9))
    await in_thread(lambda: victim.proc.wait(5) if victim.proc else None)
    sent = [f"while a worker was down {i}" for i in range(5)]
    for text in sent:
        assert (await bob.send(room, text))["ok"]
    # No restart: the page reconnects through the front door to the surviving worker.
    for text in sent:
        await expect(alice.message(text)).to_have_count(1, timeout=20_000)
    await expect(alice.page.locator("#banner")).to_be_hidden()
    await alice.send("back again")
    await bob.wait_for("chatMessage", lambda ms: any(m["message"] == "back again" for m in ms))
    assert await alice.seqs() == list(range(1, 8))
    await in_thread(victim.start)
