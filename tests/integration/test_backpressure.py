"""One connection cannot queue unbounded work: beyond MAX_WAITING_EVENTS (256) waiting
events it is refused at once, and nothing refused is stored or broadcast."""

from __future__ import annotations

import asyncio

from pymongo import MongoClient

from chatd.events import MAX_WAITING_EVENTS
from chatd.store.mongo import MESSAGES


async def test_events_beyond_the_per_connection_queue_are_refused_and_not_stored(
    start_worker, client, room, services
):
    worker = start_worker(CHATD_LIMITS_RATE_BURST="100000", CHATD_LIMITS_RATE_PER_MINUTE="6000000")
    flood = await client(worker.url)
    await flood.join(room, "flood")
    total = MAX_WAITING_EVENTS + 200
    acks = await asyncio.gather(
        *(
            flood.call(
                "chatMessage", {"room": room, "message": f"m{i}", "client_id": f"id-{i}"}, 60
            )
            for i in range(total)
        )
    )
    refused = [i for i, a in enumerate(acks) if not a["ok"]]
    stored_ok = {f"id-{i}" for i, a in enumerate(acks) if a["ok"]}
    assert refused, "no event was refused"
    assert {acks[i]["error"]["code"] for i in refused} <= {"rate_limited", "unavailable"}
    with MongoClient(services.mongo_url) as mongo:
        docs = list(mongo[services.mongo_db][MESSAGES].find({"room": room}, {"client_id": 1}))
    assert {d["client_id"] for d in docs} == stored_ok
    # The connection is still usable once the queue has drained.
    assert (await flood.send(room, "after the flood"))["ok"]
