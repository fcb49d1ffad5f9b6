"""FerretDB 1.24 (SQLite) cut off from writes: its client, which never asks for a server-side
time limit, and a watch on its replies that tells when writes keep failing with a lock error.

Why (docs/design.md, "FerretDB's wedge"): FerretDB runs a find with `maxTimeMS` under a
context that its SQLite driver (modernc.org/sqlite 1.32) turns into `sqlite3_interrupt`. When
the limit strikes between the first step of the SELECT and the driver's check of the context,
the driver drops the statement without finalizing it, and returns the connection to the
pool with a read transaction open for ever: from then on every write on that connection fails
with `database is locked (517)` (its snapshot is stale) or `(5)`, and every statement with
`interrupted (9)` when the interrupt flag stayed set. Only a restart of FerretDB frees them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from pymongo import AsyncMongoClient, monitoring

# Connections kept open to FerretDB (ferret_client).
MIN_POOL = 16
# What FerretDB says when SQLite refuses a statement on a connection whose transaction is
# stuck (or while another connection holds the write lock for longer than its busy timeout).
LOCKED = re.compile(r"database is locked \((5|517)\)|interrupted \(9\)")
WRITES = frozenset({"insert", "update", "delete", "findAndModify", "createIndexes"})


def locked(reply: Any) -> bool:
    """Whether a reply (or a failure document) reports a lock error, for the command or for
    any of its writes."""
    if not isinstance(reply, dict):
        return False
    texts = [str(reply.get("errmsg", ""))]
    texts += [str(e.get("errmsg", "")) for e in reply.get("writeErrors", []) or []]
    return any(LOCKED.search(t) for t in texts)


class WriteWatch(monitoring.CommandListener):
    """Since when every write FerretDB answered failed with a lock error (None: the last one
    it answered went through). Called by pymongo on the event loop's thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: float | None = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name in WRITES:
            self._note(locked(event.reply))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        if event.command_name in WRITES and locked(event.failure):
            self._note(True)

    def _note(self, refused: bool) -> None:
        if not refused:
            self._since = None
        elif self._since is None:
            self._since = self._clock()

    def refused_for(self) -> float:
        """Seconds the writes have been refused for (0 while they go through)."""
        return 0.0 if self._since is None else self._clock() - self._since


def ferret_client(
    url: str, timeout_secs: float, watch: WriteWatch
) -> AsyncMongoClient[dict[str, Any]]:
    """A client without timeoutMS, so no command carries `maxTimeMS`: every operation is
    bounded on this side instead (connecting, choosing the server, each reply, and waiting
    for a pooled connection: `timeout_secs` each). A reply that comes too late closes the
    connection; FerretDB finishes the command and is not interrupted, since it notices a
    closed connection only between commands."""
    ms = int(timeout_secs * 1000)
    return AsyncMongoClient(
        url,
        tz_aware=True,
        socketTimeoutMS=ms,
        connectTimeoutMS=ms,
        serverSelectionTimeoutMS=ms,
        waitQueueTimeoutMS=ms,
        # Kept open from the start: pymongo opens at most two connections at a time, and in a
        # storm of joins into new rooms, each needing an insert, the rest waited past the
        # timeout for one to be made.
        minPoolSize=MIN_POOL,
        appname="chatd",
        event_listeners=[watch],
    )
