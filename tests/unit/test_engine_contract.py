"""Each assumption chatd/engine.py makes about python-socketio, python-engineio, Tornado and
asyncio internals, checked against the installed versions."""

from __future__ import annotations

import asyncio
import inspect

import engineio
import engineio.async_drivers.tornado
import engineio.async_socket
import engineio.payload
import pytest
import socketio
import socketio.async_pubsub_manager
import tornado.iostream
import tornado.websocket

from chatd import engine, wsframe
from chatd.origins import OriginPolicy


def params(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


def make() -> engine.ChatServer:
    return engine.make_server(
        None, OriginPolicy([]), "w1.", frame_bytes=10_000, outbuf_bytes=65_536,
        ping_interval=25, ping_timeout=20,
    )  # fmt: skip


def test_installed_versions_are_the_supported_release_lines():
    engine.check_versions()


def test_socketio_builds_its_engineio_server_from_the_overridable_factory():
    sio = make()
    assert isinstance(sio.eio, engine.ChatEngine)
    assert sio.eio.generate_id().startswith("w1.")


def test_engineio_server_internals_used_by_the_open_handshake_exist():
    server = engineio.AsyncServer
    assert params(server._handle_connect) == ["self", "environ", "transport", "jsonp_index"]
    for name in ("_service_task", "_upgrades", "_ok", "_unauthorized", "_bad_request"):
        assert callable(getattr(server, name)), name
    assert params(server._trigger_event)[:2] == ["self", "event"]
    sio = make()
    assert sio.eio.start_service_task is True
    assert isinstance(sio.eio.sockets, dict)


def test_engineio_socket_methods_chatsocket_overrides_keep_their_signatures():
    base = engineio.async_socket.AsyncSocket
    assert params(base.send) == ["self", "pkt"]
    assert params(base.receive) == ["self", "pkt"]
    assert params(base.poll) == ["self"]
    assert params(base.handle_get_request) == ["self", "environ"]
    assert params(base.handle_post_request) == ["self", "environ"]
    assert params(base.check_ping_timeout) == ["self"]
    assert params(base.close) == ["self", "wait", "abort", "reason"]
    sock = engine.ChatSocket(make().eio, "w1.x")
    for flag in ("connected", "upgrading", "upgraded", "closing", "closed"):
        assert getattr(sock, flag) is False, flag
    assert isinstance(sock.queue, engine.ByteQueue)


async def test_asyncio_queue_hooks_count_bytes():
    queue = engine.ByteQueue()
    assert queue.next_bytes() is None
    queue.put_nowait(engineio.packet.Packet(engineio.packet.MESSAGE, "x" * 10))
    queue.put_nowait(None)
    assert queue.bytes == 10 and queue.next_bytes() == 10
    assert queue.get_nowait().data == "x" * 10
    assert queue.bytes == 0
    assert await asyncio.wait_for(queue.get(), 1) is None


def test_engineio_payload_decode_limit_is_a_class_attribute():
    engine.configure()
    assert engineio.payload.Payload.max_decode_packets == engine.MAX_DECODE_PACKETS


def test_socketio_dispatch_internals_exist_and_reserve_connect_and_disconnect():
    server = socketio.AsyncServer
    assert params(server._handle_eio_message) == ["self", "eio_sid", "data"]
    assert params(server._handle_event) == ["self", "eio_sid", "namespace", "id", "data"]
    assert params(server._engineio_server_class) == ["self"]
    assert {"connect", "disconnect"} <= set(server.reserved_events)
    assert set(server.reserved_events) <= engine.RESERVED_EVENTS


def test_tornado_handler_factory_and_websocket_hooks_exist():
    handler = socketio.get_tornado_handler(make())
    assert issubclass(handler, tornado.websocket.WebSocketHandler)
    for name in ("get", "open", "on_message", "on_close", "check_origin", "prepare"):
        assert callable(getattr(handler, name)), name
    assert params(tornado.websocket.WebSocketHandler.get_compression_options) == ["self"]
    # SocketHandler.open awaits Engine.IO itself instead of the task the stock handler starts.
    assert "ensure_future(engineio_server.handle_request(self))" in inspect.getsource(handler.open)
    assert callable(engineio.AsyncServer.handle_request)


def test_engineio_websocket_transport_hooks_chatsocket_replaces_exist():
    base = engineio.async_socket.AsyncSocket
    assert params(base._websocket_handler) == ["self", "ws"]
    assert params(base.schedule_ping) == ["self"]
    # The upgrade hands our handler to the async driver's WebSocket wrapper, which names the
    # Tornado handler `tornado_handler` before calling it.
    assert "self._websocket_handler" in inspect.getsource(base._upgrade_websocket)
    wrapper = engineio.async_drivers.tornado.WebSocket
    assert "self.tornado_handler = environ['tornado.handler']" in inspect.getsource(wrapper)
    # A PONG reschedules the ping; an UPGRADE is answered with a NOOP.
    assert "self.schedule_ping()" in inspect.getsource(base.receive)


def test_socketio_pubsub_local_delivery_reaches_fast_fan_out():
    from chatd.bus import ChatRedisManager

    pubsub = socketio.async_pubsub_manager.AsyncPubSubManager
    mro = ChatRedisManager.__mro__
    assert mro.index(pubsub) < mro.index(engine.FastFanOut) < mro.index(socketio.AsyncManager)
    source = inspect.getsource(pubsub)
    assert "return await super().emit(" in source  # ignore_queue
    assert "await super().emit(message['event']" in source  # what the bus brings
    assert params(socketio.AsyncManager.emit)[:8] == [
        "self", "event", "data", "namespace", "room", "skip_sid", "callback", "to"
    ]  # fmt: skip
    assert params(socketio.AsyncManager.get_participants) == ["self", "namespace", "room"]


def test_websocket_frames_match_what_tornado_writes():
    for size in (0, 5, 125, 126, 65_535, 65_536):
        text = "x" * size
        head = wsframe.frame(text)[: -size or None]
        assert head[0] == 0x81
        if size < 126:
            assert head[1] == size
        elif size <= 0xFFFF:
            assert head[1] == 126 and int.from_bytes(head[2:4], "big") == size
        else:
            assert head[1] == 127 and int.from_bytes(head[2:10], "big") == size
    assert wsframe.frame(b"\x01")[0] == 0x82
    for name in ("writing", "closed", "write", "close"):
        assert callable(getattr(tornado.iostream.IOStream, name)), name
    assert callable(tornado.websocket.WebSocketProtocol.is_closing)
    packet = engineio.packet.Packet(engineio.packet.MESSAGE, '2["chatMessage",{}]')
    assert engine.frame_of(packet) == wsframe.frame('42["chatMessage",{}]')
    assert engine.frame_of(packet) is engine.frame_of(packet)


def test_frames_no_client_sends_are_recognised_before_decoding():
    assert engine.malformed_frame('42["x"]') is None
    assert engine.malformed_frame("3") is None and engine.malformed_frame("2probe") is None
    for frame in ("", "x", "9", "2", "0", "6", "\u00b3", "\u0664"):  # "³", Arabic-Indic 4
        assert engine.malformed_frame(frame) is not None, frame


def test_engineio_request_internals_chatengine_overrides_exist():
    server = engineio.AsyncServer
    assert params(server._log_error_once) == ["self", "message", "message_key"]
    assert params(server.handle_request) == ["self", "args", "kwargs"]
    # Why ChatEngine.handle_request forgets closed sessions before a POST: Engine.IO's POST
    # path calls this without catching the KeyError it raises for them.
    sio = make()
    sock = engine.ChatSocket(sio.eio, "w1.closed")
    sock.closed = True
    sio.eio.sockets["w1.closed"] = sock
    with pytest.raises(KeyError):
        sio.eio._get_socket("w1.closed")


def test_socketio_redis_manager_internals_the_bus_overrides_exist():
    redis_manager = socketio.AsyncRedisManager
    pubsub = socketio.async_pubsub_manager.AsyncPubSubManager
    for name in ("_publish", "_redis_listen_with_retries", "_listen", "_redis_connect"):
        assert callable(getattr(redis_manager, name)), name
    # The listening loop reads `_listen()`; the manager's pubsub hides confirmations unless told.
    assert "self._listen()" in inspect.getsource(pubsub._thread)
    assert "ignore_subscribe_messages=True" in inspect.getsource(redis_manager._redis_connect)
    assert params(pubsub.enter_room) == ["self", "sid", "namespace", "room", "eio_sid"]
    assert params(pubsub.leave_room) == ["self", "sid", "namespace", "room"]
    assert params(pubsub.disconnect) == ["self", "sid", "namespace", "kwargs"]


@pytest.mark.parametrize(
    "data",
    [None, 1, "x", b"x", bytearray(b"x"), (b"in a tuple",), [], {}, [1, [2, {"a": b"y"}]],
     {"a": [1, 2, {"b": "c"}]}, [{"x": [[[bytearray(b"deep")]]]}], ["chatMessage", {"seq": 1}]],
)  # fmt: skip
def test_the_packets_binary_test_answers_as_socketios_own(data):
    assert engine.ChatPacket.data_is_binary(data) == socketio.packet.Packet.data_is_binary(data)


def test_the_server_builds_its_packets_with_the_fast_binary_test():
    assert make().packet_class is engine.ChatPacket
