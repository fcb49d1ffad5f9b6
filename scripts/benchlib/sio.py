"""A minimal Socket.IO v5 client over an Engine.IO v4 WebSocket (no polling, namespace "/").

Wire format (https://socket.io/docs/v4/engine-io-protocol, socket-io-protocol):
  server `0{"sid",...}` open, `2` ping -> client `3` pong, `1` close, `6` noop;
  `4` carries a Socket.IO packet: `40` connect, `41` disconnect, `42[name,data]` event,
  `42<id>[...]` event wanting an ack, `43<id>[...]` ack, `44{...}` connect error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

EventCallback = Callable[[str, Any, int], None]


class SioError(Exception):
    """The connection failed, closed, or the server refused the namespace."""


def ws_url(http_url: str) -> str:
    base = http_url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    return base + "/socket.io/?EIO=4&transport=websocket"


class SioClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        deflate: bool,
        on_event: EventCallback | None = None,
        on_close: Callable[[SioClient], None] | None = None,
    ) -> None:
        self.url = url
        self._session = session
        self._deflate = deflate
        self._on_event = on_event
        self._on_close = on_close
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self.sid = ""
        self.closed = False
        self.close_reason = ""
        self.deflate_negotiated = False

    async def connect(self, limit_secs: float) -> None:
        async with asyncio.timeout(limit_secs):
            self._ws = await self._session.ws_connect(
                ws_url(self.url),
                compress=15 if self._deflate else 0,
                autoping=True,
                max_msg_size=2_000_000,
            )
            self.deflate_negotiated = bool(self._ws.compress)
            opening = await self._ws.receive()
            if opening.type != aiohttp.WSMsgType.TEXT or not opening.data.startswith("0"):
                raise SioError(f"no Engine.IO open packet: {opening.type} {opening.data!r:.80}")
            self.sid = json.loads(opening.data[1:])["sid"]
            self._reader = asyncio.get_running_loop().create_task(self._read())
            await self._ws.send_str("40")
            await self._connected.wait()
        if self.closed:
            raise SioError(f"namespace connect refused: {self.close_reason}")

    async def emit(self, event: str, data: Any) -> None:
        await self._send("42" + json.dumps([event, data], separators=(",", ":")))

    async def call(self, event: str, data: Any, limit_secs: float) -> Any:
        """Emit with an ack id and wait for `43<id>[...]`; returns the first ack argument."""
        ack_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        try:
            await self._send(f"42{ack_id}" + json.dumps([event, data], separators=(",", ":")))
            async with asyncio.timeout(limit_secs):
                return await future
        finally:
            self._acks.pop(ack_id, None)

    async def _send(self, text: str) -> None:
        if self._ws is None or self.closed:
            raise SioError("not connected")
        try:
            await self._ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            raise SioError(f"send failed: {exc}") from exc

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.send_str("41")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _read(self) -> None:
        assert self._ws is not None
        reason = "closed by server"
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                text: str = msg.data
                kind = text[:1]
                if kind == "4":
                    self._packet(text, time.time_ns())
                elif kind == "2":
                    await self._ws.send_str("3")
                elif kind == "1":
                    reason = "engine.io close packet"
                    break
        except asyncio.CancelledError:
            reason = "closed by client"
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self._finish(reason)

    def _packet(self, text: str, recv_ns: int) -> None:
        kind = text[1:2]
        if kind == "2":
            body = text[2:]
            if body[:1] != "[":  # an event that wants an ack from us; none expected
                body = body.lstrip("0123456789")
            name, *args = json.loads(body)
            if self._on_event is not None:
                self._on_event(name, args[0] if args else None, recv_ns)
        elif kind == "3":
            rest = text[2:]
            digits = len(rest) - len(rest.lstrip("0123456789"))
            future = self._acks.get(int(rest[:digits]))
            if future is not None and not future.done():
                args = json.loads(rest[digits:])
                future.set_result(args[0] if args else None)
        elif kind == "0":
            self._connected.set()
        elif kind in ("1", "4"):
            self.close_reason = "socket.io disconnect" if kind == "1" else text[2:200]
            self.closed = True
            self._connected.set()

    def _finish(self, reason: str) -> None:
        if self.closed and self.close_reason:
            reason = self.close_reason
        self.closed = True
        self.close_reason = reason
        self._connected.set()
        for future in self._acks.values():
            if not future.done():
                future.set_exception(SioError(reason))
        if self._on_close is not None and not self._closing:
            self._on_close(self)
