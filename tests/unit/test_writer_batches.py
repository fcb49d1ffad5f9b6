"""How the group-commit writer cuts its queue into batches (chatd/writer.py). Futures need a
running loop, so the tests are async."""

from __future__ import annotations

from typing import Any

from chatd import writer
from chatd.writer import Entry, Writer, _Pending


def queued(w: Writer, *origins: str) -> list[_Pending]:
    pendings = [
        _Pending(Entry("r", "u", "", f"m{i}", None, "u", origin=o), "r", f"c{i}", f"k{i}")
        for i, o in enumerate(origins)
    ]
    w._queue.extend(pendings)
    return pendings


def make_writer() -> Writer:
    unused: Any = None
    return Writer(unused, unused, unused, unused)


async def test_a_batch_takes_one_message_per_connection_and_keeps_the_rest_in_order():
    w = make_writer()
    a1, b1, a2, c1, a3, b2 = queued(w, "a", "b", "a", "c", "a", "b")
    assert w._next_batch() == [a1, b1, c1]
    assert w._next_batch() == [a2, b2]
    assert w._next_batch() == [a3]
    assert w._next_batch() == []


async def test_messages_without_a_connection_are_not_held_back():
    w = make_writer()
    pendings = queued(w, "", "", "", "a")
    assert w._next_batch() == pendings


async def test_a_batch_is_at_most_batch_max_long(monkeypatch):
    monkeypatch.setattr(writer, "BATCH_MAX", 3)
    w = make_writer()
    first = queued(w, "a", "b", "c", "d", "e")
    assert w._next_batch() == first[:3]
    assert w._next_batch() == first[3:]
