"""One run of an operation per key at a time: whoever asks for the key while it runs awaits
that same run. The storms chatd meets (thousands of joins into rooms a worker has not read
yet) would otherwise ask the database the same question thousands of times at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedRuns(Generic[K, V]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, start: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """The answer of the run for `key` in progress, or of one started now with `start`.
        A caller that gives up does not cancel the run the others wait for."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(start())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: everyone waiting may have given up
