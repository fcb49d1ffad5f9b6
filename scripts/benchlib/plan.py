"""Who connects where, who sends, and at what rate: plain data passed to load processes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientSpec:
    index: int
    target: str
    room: str | None  # None: connect only (idle memory)
    sender: bool


@dataclass(frozen=True)
class ProcPlan:
    proc: int
    clients: list[ClientSpec]
    deflate: bool
    client_id: bool
    # "chatd", or "node": the brief's Node stack, which answers no acks and has no seq; a
    # send then counts as done once written, and each member checks every sender's counter.
    stack: str
    connect_concurrency: int
    join_concurrency: int
    connect_timeout: float
    run_id: str
    # time.time_ns() at which every process starts connecting (a storm starts at one
    # instant in all processes); 0: at once.
    start_ns: int = 0


@dataclass(frozen=True)
class PhaseSpec:
    name: str
    rate: float  # messages/s per sender
    start_ns: int  # time.time_ns() at which sending starts (same clock in every process)
    warmup_secs: float
    duration_secs: float
    ack_timeout_secs: float
    drain_secs: float
    # Soak: this share of the connected non-senders closes and reconnects (and re-joins with
    # `since`) in the middle of the measured window.
    reconnect_fraction: float = 0.0

    @property
    def window_start_ns(self) -> int:
        return self.start_ns + int(self.warmup_secs * 1e9)

    @property
    def window_end_ns(self) -> int:
        return self.window_start_ns + int(self.duration_secs * 1e9)


def layout(
    clients: int, rooms: int, senders: int, targets: list[str], run_id: str, join: bool = True
) -> list[ClientSpec]:
    """Client i is member j = i // rooms of room r = i % rooms, on target (r + j) % len(targets).

    So every room has members on every target (each broadcast crosses workers) and the
    senders - member 0, then 1, ... of each room in turn - are spread over targets too.
    """
    if senders > clients:
        raise ValueError("more senders than clients")
    sending: set[int] = set()
    for k in range(senders):
        room, slot = k % rooms, k // rooms
        pick = room + rooms * slot
        while pick >= clients or pick in sending:
            pick = (pick + 1) % clients
        sending.add(pick)
    specs = []
    for i in range(clients):
        room, slot = i % rooms, i // rooms
        specs.append(
            ClientSpec(
                index=i,
                target=targets[(room + slot) % len(targets)],
                room=f"bench-{run_id}-{room}" if join else None,
                sender=i in sending,
            )
        )
    return specs


def split(specs: list[ClientSpec], procs: int) -> list[list[ClientSpec]]:
    """Round-robin, so each process holds a share of every room, target and sender."""
    return [specs[p::procs] for p in range(procs)]
