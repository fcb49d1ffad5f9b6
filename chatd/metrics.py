"""Prometheus metrics of one worker, in a registry of its own (docs/design.md, Metrics)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Socket events take from well under a millisecond (typing) to a MongoDB round trip.
EVENT_BUCKETS_SECS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
GC_BUCKETS_SECS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
LOOP_TICK_SECS = 0.1
LOOP_BUCKETS_SECS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connected_clients = Gauge(
            "chatd_connected_clients",
            "Socket.IO clients connected to this worker",
            registry=self.registry,
        )
        self.messages = Counter(
            "chatd_messages",
            "Chat messages stored and broadcast by this worker",
            registry=self.registry,
        )
        self.event_seconds = Histogram(
            "chatd_event_seconds",
            "Time to handle one client event",
            ["event"],
            buckets=EVENT_BUCKETS_SECS,
            registry=self.registry,
        )
        self.errors = Counter(
            "chatd_errors",
            "Events answered with an error, by code",
            ["code"],
            registry=self.registry,
        )
        self.bus_listener_up = Gauge(
            "chatd_bus_listener_up",
            "1 while the Redis subscription is alive",
            registry=self.registry,
        )
        self.bus_received = Counter(
            "chatd_bus_received_messages",
            "Messages this worker received from Redis (its rooms' channels and the main one)",
            registry=self.registry,
        )
        self.bus_received_bytes = Counter(
            "chatd_bus_received_bytes",
            "Bytes of the messages this worker received from Redis",
            registry=self.registry,
        )
        self.bus_rooms = Gauge(
            "chatd_bus_rooms_followed",
            "Rooms whose Redis channel this worker is subscribed to (rooms with members here)",
            registry=self.registry,
        )
        self.store_wedged = Counter(
            "chatd_store_wedged",
            "Times the store refused every write as locked for seconds while it answered"
            " (FerretDB's wedge; each may restart the embedded FerretDB)",
            registry=self.registry,
        )
        self.repaired = Counter(
            "chatd_repaired_messages",
            "Messages the bus did not bring, read from the store and delivered (gap repair)",
            registry=self.registry,
        )
        self.repair_duplicates = Counter(
            "chatd_repair_duplicates_dropped",
            "Second deliveries of a message to this worker's members, dropped",
            registry=self.registry,
        )
        self.resyncs = Counter(
            "chatd_resyncs",
            "Rooms told to re-join because they were further behind than a repair reads",
            registry=self.registry,
        )
        self.sessions_timed_out = Counter(
            "chatd_sessions_timed_out",
            "Sessions closed because their client stopped answering pings (or stopped polling)",
            ["transport"],
            registry=self.registry,
        )
        for transport in ("websocket", "polling"):
            self.sessions_timed_out.labels(transport)  # shown at 0 before the first one
        self.bus_dropped = Counter(
            "chatd_bus_publish_dropped",
            "Bus publishes dropped because Redis was unreachable",
            registry=self.registry,
        )

        self.batch_size = Histogram(
            "chatd_write_batch_messages",
            "Messages stored together in one write (group commit)",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.store_seconds = Histogram(
            "chatd_store_write_seconds",
            "Time to take the seqs of one batch and store it",
            buckets=EVENT_BUCKETS_SECS,
            registry=self.registry,
        )

        self.gc_pause_seconds = Histogram(
            "chatd_gc_pause_seconds",
            "Pauses of the cyclic garbage collector, by generation",
            ["generation"],
            buckets=GC_BUCKETS_SECS,
            registry=self.registry,
        )

        self.loop_lag_seconds = Histogram(
            "chatd_event_loop_lag_seconds",
            "How late a timer set every LOOP_TICK_SECS fires: how long the event loop was busy",
            buckets=LOOP_BUCKETS_SECS,
            registry=self.registry,
        )

        self._tick: asyncio.TimerHandle | None = None
        self._on_gc: Callable[[str, dict[str, int]], None] | None = None

    def start(self) -> None:
        """Watch the event loop and the garbage collector until `close`."""
        self._watch_loop()
        self._watch_gc()

    def close(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if self._on_gc is not None:
            gc.callbacks.remove(self._on_gc)
            self._on_gc = None

    def _watch_loop(self) -> None:
        """Time the event loop: everything a worker does waits behind what it is doing now."""
        loop = asyncio.get_running_loop()
        lag = self.loop_lag_seconds

        def tick(due: float) -> None:
            now = loop.time()
            lag.observe(max(0.0, now - due))
            self._tick = loop.call_at(now + LOOP_TICK_SECS, tick, now + LOOP_TICK_SECS)

        start = loop.time() + LOOP_TICK_SECS
        self._tick = loop.call_at(start, tick, start)

    def _watch_gc(self) -> None:
        """Time every collection: its pauses stop every connection of the worker at once."""
        started = [0.0]
        pauses = [self.gc_pause_seconds.labels(generation=str(g)) for g in range(3)]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                pauses[info["generation"]].observe(time.perf_counter() - started[0])

        self._on_gc = on_gc
        gc.callbacks.append(on_gc)

    def render(self) -> bytes:
        return generate_latest(self.registry)
