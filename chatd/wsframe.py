"""WebSocket frames built once and written straight to a connection's stream.

A room broadcast is the same bytes for every member, so it is framed once (RFC 6455 §5.2:
server frames are unmasked; chatd never negotiates compression). What one event-loop turn
writes to a connection leaves together at the end of the turn (`Turn`), with one
non-blocking `send()` when nothing is waiting before it: a batch of stored messages costs each
member one system call, not one per message. Only what the kernel does not take goes into
Tornado's write buffer, whose size is the slow-consumer bound.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

from tornado.iostream import IOStream, SSLIOStream, StreamBufferFullError, StreamClosedError

FIN_TEXT = 0x81
FIN_BINARY = 0x82


def frame(payload: str | bytes) -> bytes:
    """One unfragmented, unmasked frame: text for `str`, binary for `bytes`."""
    if isinstance(payload, str):
        data, first = payload.encode(), FIN_TEXT
    else:
        data, first = payload, FIN_BINARY
    size = len(data)
    if size < 126:
        head = bytes((first, size))
    elif size <= 0xFFFF:
        head = struct.pack("!BBH", first, 126, size)
    else:
        head = struct.pack("!BBQ", first, 127, size)
    return head + data


class SlowConsumer(Exception):
    """The peer has more unsent bytes than its stream may hold."""


def write(stream: IOStream, data: bytes) -> None:
    """Write `data` after everything already queued on `stream`.

    Raises StreamClosedError when the stream is gone and SlowConsumer when it is full; in
    both cases the stream is closed, which ends the connection.
    """
    if stream.closed():
        raise StreamClosedError()
    if not stream.writing() and not isinstance(stream, SSLIOStream):
        try:
            sent = stream.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            stream.close(exc)
            raise StreamClosedError(real_error=exc) from None
        if sent == len(data):
            return
        data = data[sent:]
    try:
        stream.write(data)
    except StreamBufferFullError:
        stream.close()
        raise SlowConsumer() from None


class Turn:
    """Runs each registered flush once, at the end of the current event-loop turn."""

    def __init__(self) -> None:
        self._due: list[Callable[[], None]] = []
        self._scheduled = False

    def at_end(self, flush: Callable[[], None]) -> None:
        self._due.append(flush)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        due, self._due = self._due, []
        self._scheduled = False
        for flush in due:
            flush()
