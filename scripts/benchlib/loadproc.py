"""One load process: holds its share of the clients and runs the phases the parent orders.

Talks to the parent over a multiprocessing pipe:
  child -> ("ready", summary) once connected and joined;
  parent -> ("phase", PhaseSpec); child -> ("progress", counters) every second,
  then ("acked", {room: [seq]}) when its sends are settled;
  parent -> ("expect", {room: [seq]} of every process); child -> ("result", stats);
  parent -> ("close",); child -> ("closed", summary).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from benchlib.guard import raise_fd_limit
from benchlib.member import Member, NodeMember, node_key
from benchlib.plan import ClientSpec, PhaseSpec, ProcPlan
from benchlib.sio import SioClient, SioError

PROGRESS_SECS = 1.0
JOIN_TIMEOUT_SECS = 10.0
JOIN_ATTEMPTS = 5
GOLDEN_FRACTION = (5**0.5 - 1) / 2  # senders are clients 0, 1, 2, ...: evenly spread


class Phase:
    """Counters of the phase being run; a fresh one per phase."""

    def __init__(self, spec: PhaseSpec) -> None:
        self.spec = spec
        self.win_start = spec.window_start_ns
        self.win_end = spec.window_end_ns
        self.sent = self.sent_window = self.acked = self.acked_window = 0
        self.delivered = self.delivered_window = 0
        self.late_sends = 0
        self.max_lag_ns = 0
        self.errors: Counter[str] = Counter()
        self.latency_us = array("q")
        self.ack_us = array("q")
        self.acked_seqs: dict[str, list[int]] = {}
        self.cpu_window = [0.0, 0.0]
        self.dups_start = 0
        self.ooo_start = 0
        self.want = -1  # first deliveries of this phase that complete it, once known
        self.complete = asyncio.Event()
        self.reconnects = 0
        self.replayed = 0  # deliveries that came in the history of a re-join (`since`)
        self.reconnect_errors: Counter[str] = Counter()


class Load:
    def __init__(self, plan: ProcPlan, conn: Connection) -> None:
        self.plan = plan
        self.conn = conn
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.members: dict[int, Member | NodeMember] = {}
        self.node = plan.stack == "node"
        self.histories: dict[int, asyncio.Future[None]] = {}  # node: a join is done at its history
        self.clients: dict[int, SioClient] = {}
        self.phase: Phase | None = None
        self.disconnects = 0
        self.disconnect_reasons: Counter[str] = Counter()
        self.connect_errors: Counter[str] = Counter()
        self.next_n: dict[int, int] = {}
        self.connected = 0
        self.live: set[int] = set()
        self.join_retries = 0
        self.join_retry_reasons: Counter[str] = Counter()  # what each retried attempt got
        self.join_gate = asyncio.Semaphore(1)
        self.session: aiohttp.ClientSession | None = None
        self.rejoining: set[int] = set()  # clients whose next chat-history is a `since` replay
        self.reconnect_cursor = 0
        # Per client, from its connect attempt: connected, and connected + joined (µs).
        self.connect_us = array("q")
        self.setup_us = array("q")
        self.first_attempt_ns = 0
        self.last_joined_ns = 0

    # -- pipe ---------------------------------------------------------------------------
    def read_pipe(self, loop: asyncio.AbstractEventLoop) -> None:
        """Runs in a thread: blocking reads keep the pipe in blocking mode (an event-loop
        reader would make it non-blocking, and a large send would then fail with EAGAIN)."""
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                message = ("close",)
            loop.call_soon_threadsafe(self.inbox.put_nowait, message)
            if message[0] == "close":
                return

    def send(self, *message: Any) -> None:
        self.conn.send(message)

    # -- connections ----------------------------------------------------------------------
    def _on_event(self, index: int) -> Any:
        members = self.members

        def on_event(name: str, data: Any, recv_ns: int) -> None:
            if name == "chat-history" and index in self.histories:
                waiter = self.histories.pop(index)
                if not waiter.done():
                    waiter.set_result(None)
            if name == "chat-history" and index in self.rejoining:
                self.rejoining.discard(index)
                self._replay(index, data, recv_ns)
                return
            if name != "chatMessage" or self.phase is None:
                return
            member = members.get(index)
            if member is None:
                return
            text: str = data["message"]
            if self.node:
                if not text.startswith("t="):
                    return
                fields = dict(part.split("=", 1) for part in text.split("|"))
                key = node_key(int(fields["c"]), int(fields["n"]))
            else:
                key = data["seq"]
            if not member.receive(key):
                return
            phase = self.phase
            phase.delivered += 1
            if phase.delivered == phase.want:
                phase.complete.set()
            if phase.win_start <= recv_ns < phase.win_end:
                phase.delivered_window += 1
            if text.startswith("t="):
                sent_ns = int(text[2 : text.index("|")])
                if phase.win_start <= sent_ns < phase.win_end:
                    phase.latency_us.append((recv_ns - sent_ns) // 1000)

        return on_event

    def _replay(self, index: int, history: Any, recv_ns: int) -> None:
        """A re-join's history: what the member missed while away counts as delivered."""
        member = self.members.get(index)
        if not isinstance(member, Member) or not isinstance(history, list):
            return
        phase = self.phase
        for message in history:
            if not isinstance(message, dict) or not member.replay(int(message["seq"])):
                continue
            if phase is None:
                continue
            phase.replayed += 1
            phase.delivered += 1
            if phase.delivered == phase.want:
                phase.complete.set()
            if phase.win_start <= recv_ns < phase.win_end:
                phase.delivered_window += 1

    def _on_close(self, client: SioClient) -> None:
        if id(client) not in self.live:
            return  # never finished connecting: counted as a connect error instead
        self.live.discard(id(client))
        self.disconnects += 1
        self.connected -= 1
        self.disconnect_reasons[client.close_reason[:80]] += 1

    async def _open(
        self, session: aiohttp.ClientSession, spec: ClientSpec, gate: asyncio.Semaphore
    ) -> None:
        client = SioClient(
            session, spec.target, self.plan.deflate, self._on_event(spec.index), self._on_close
        )
        async with gate:
            started_ns = time.time_ns()
            if not self.first_attempt_ns:
                self.first_attempt_ns = started_ns
            try:
                await client.connect(self.plan.connect_timeout)
            except (SioError, OSError, aiohttp.ClientError, TimeoutError) as exc:
                self.connect_errors[error_kind(exc)] += 1
                await client.close()
                return
            self.connect_us.append((time.time_ns() - started_ns) // 1000)
            self.connected += 1
            self.live.add(id(client))
            self.clients[spec.index] = client
        if spec.room is not None:
            async with self.join_gate:
                await self._join(client, spec, spec.room)
            if spec.index in self.members:
                joined_ns = time.time_ns()
                self.setup_us.append((joined_ns - started_ns) // 1000)
                self.last_joined_ns = max(self.last_joined_ns, joined_ns)

    async def _join(self, client: SioClient, spec: ClientSpec, room: str) -> None:
        """Join like a real client: retry a refused or timed-out join with backoff, and
        count the retries (the server's join path is part of what is measured)."""
        payload = {"username": f"b{self.plan.run_id}-{spec.index}", "room": room}
        if self.node:
            await self._join_node(client, spec, payload)
            return
        for attempt in range(JOIN_ATTEMPTS):
            if attempt:
                self.join_retries += 1
                await asyncio.sleep(0.5 * 2**attempt)
            try:
                ack = await client.call("joinRoom", payload, JOIN_TIMEOUT_SECS)
            except TimeoutError:
                outcome = "timeout"
                self.join_retry_reasons[outcome] += 1
                continue
            except SioError:
                outcome = "disconnected"
                break
            if isinstance(ack, dict) and ack.get("ok"):
                self.members[spec.index] = Member(room, int(ack["last_seq"]))
                return
            outcome = ack.get("error", {}).get("code", "?") if isinstance(ack, dict) else "?"
            if outcome not in ("unavailable", "internal", "rate_limited"):
                break
            self.join_retry_reasons[outcome] += 1
        self.connect_errors[f"join: {outcome}"] += 1

    async def _join_node(self, client: SioClient, spec: ClientSpec, payload: dict[str, Any]):
        waiter = self.histories[spec.index] = asyncio.get_running_loop().create_future()
        try:
            await client.emit("joinRoom", payload)
            await asyncio.wait_for(waiter, JOIN_TIMEOUT_SECS)
        except (TimeoutError, SioError) as exc:
            self.histories.pop(spec.index, None)
            self.connect_errors[f"join: {type(exc).__name__}"] += 1
            return
        self.members[spec.index] = NodeMember(payload["room"])

    async def connect_all(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        self.session = session
        if self.plan.start_ns:  # a storm: every process starts at the same instant
            await asyncio.sleep(max(0.0, (self.plan.start_ns - time.time_ns()) / 1e9))
        started = time.monotonic()
        gate = asyncio.Semaphore(self.plan.connect_concurrency)
        self.join_gate = asyncio.Semaphore(self.plan.join_concurrency)
        tasks = [asyncio.create_task(self._open(session, spec, gate)) for spec in self.plan.clients]
        while not all(task.done() for task in tasks):
            await asyncio.wait(tasks, timeout=PROGRESS_SECS)
            self.send("progress", {"connected": self.connected, "joined": len(self.members)})
        for task in tasks:
            task.result()
        return {
            "connected": self.connected,
            "joined": len(self.members),
            "connect_errors": dict(self.connect_errors),
            "join_retries": self.join_retries,
            "join_retry_reasons": dict(self.join_retry_reasons),
            "connect_secs": time.monotonic() - started,
            "deflate_negotiated": sum(c.deflate_negotiated for c in self.clients.values()),
            "connect_us": self.connect_us.tobytes(),
            "setup_us": self.setup_us.tobytes(),
            "first_attempt_ns": self.first_attempt_ns,
            "last_joined_ns": self.last_joined_ns,
        }

    # -- reconnects (soak) ------------------------------------------------------------------
    async def _reconnect_some(self, phase: Phase) -> None:
        """Close and reopen `reconnect_fraction` of this process's clients (non-senders, in
        turn), spread over the middle third of the window; each re-joins with `since` = the
        newest seq it holds, and the history it gets fills what it missed meanwhile."""
        candidates = sorted(
            spec.index
            for spec in self.plan.clients
            if not spec.sender and spec.index in self.members and spec.index in self.clients
        )
        count = min(len(candidates), round(phase.spec.reconnect_fraction * len(self.plan.clients)))
        if not count:
            return
        start = phase.win_start + (phase.win_end - phase.win_start) // 3
        span = (phase.win_end - phase.win_start) // 3
        specs = {spec.index: spec for spec in self.plan.clients}
        tasks = []
        for k in range(count):
            index = candidates[(self.reconnect_cursor + k) % len(candidates)]
            at_ns = start + span * k // count
            tasks.append(asyncio.create_task(self._reconnect(specs[index], at_ns, phase)))
        self.reconnect_cursor = (self.reconnect_cursor + count) % len(candidates)
        await asyncio.gather(*tasks)

    async def _reconnect(self, spec: ClientSpec, at_ns: int, phase: Phase) -> None:
        await asyncio.sleep(max(0.0, (at_ns - time.time_ns()) / 1e9))
        old = self.clients.pop(spec.index, None)
        member = self.members.get(spec.index)
        if old is None or not isinstance(member, Member) or self.session is None:
            return
        if id(old) in self.live:
            self.live.discard(id(old))
            self.connected -= 1
        await old.close()
        for attempt in range(JOIN_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.5 * 2**attempt)
            client = SioClient(
                self.session,
                spec.target,
                self.plan.deflate,
                self._on_event(spec.index),
                self._on_close,
            )
            try:
                await client.connect(self.plan.connect_timeout)
            except (SioError, OSError, aiohttp.ClientError, TimeoutError) as exc:
                phase.reconnect_errors[error_kind(exc)] += 1
                await client.close()
                continue
            self.connected += 1
            self.live.add(id(client))
            self.clients[spec.index] = client
            payload = {
                "username": f"b{self.plan.run_id}-{spec.index}",
                "room": member.room,
                "since": member.last_seq,
            }
            self.rejoining.add(spec.index)
            try:
                async with self.join_gate:
                    ack = await client.call("joinRoom", payload, JOIN_TIMEOUT_SECS)
            except (TimeoutError, SioError) as exc:
                outcome = "timeout" if isinstance(exc, TimeoutError) else "disconnected"
            else:
                if isinstance(ack, dict) and ack.get("ok"):
                    phase.reconnects += 1
                    return
                outcome = ack.get("error", {}).get("code", "?") if isinstance(ack, dict) else "?"
            finally:
                self.rejoining.discard(spec.index)
            phase.reconnect_errors[f"join: {outcome}"] += 1
            return  # connected but not joined: its missing messages count as lost
        # Never reconnected: it no longer counts as a member (the errors say so).
        self.members.pop(spec.index, None)

    # -- phases ---------------------------------------------------------------------------
    async def _send_one(self, client: SioClient, spec: ClientSpec, n: int, phase: Phase) -> None:
        sent_ns = time.time_ns()
        payload: dict[str, Any] = {
            "room": spec.room,
            "message": f"t={sent_ns}|c={spec.index}|n={n}",
        }
        if self.plan.client_id:
            payload["client_id"] = f"b{self.plan.run_id}-{spec.index}-{n}"
        in_window = phase.win_start <= sent_ns < phase.win_end
        phase.sent += 1
        phase.sent_window += in_window
        assert spec.room is not None
        if self.node:  # no acks: a send is done once written, and expected by every member
            try:
                await client.emit("chatMessage", payload)
            except SioError:
                phase.errors["send_failed"] += 1
                return
            phase.acked += 1
            phase.acked_window += in_window
            phase.acked_seqs.setdefault(spec.room, []).append(node_key(spec.index, n))
            return
        try:
            ack = await client.call("chatMessage", payload, phase.spec.ack_timeout_secs)
        except TimeoutError:
            phase.errors["ack_timeout"] += 1
            return
        except SioError:
            phase.errors["send_failed"] += 1
            return
        if not isinstance(ack, dict) or not ack.get("ok"):
            code = ack.get("error", {}).get("code", "?") if isinstance(ack, dict) else "bad_ack"
            phase.errors[code] += 1
            return
        phase.acked += 1
        if in_window:
            phase.acked_window += 1
            phase.ack_us.append((time.time_ns() - sent_ns) // 1000)
        phase.acked_seqs.setdefault(spec.room, []).append(int(ack["seq"]))

    async def _sender(self, spec: ClientSpec, phase: Phase, pending: set[asyncio.Task[None]]):
        client = self.clients.get(spec.index)
        if client is None or spec.index not in self.members:
            return
        interval_ns = int(1e9 / phase.spec.rate)
        # Senders start spread over one interval (golden-ratio steps: even for any number of
        # senders), so they don't fire at the same instant, and a window holds the offered
        # count of sends even when each sender sends less than once in it. Random phases
        # made that count vary by +-15 % at 0.05 msg/s per sender.
        offset = (spec.index * GOLDEN_FRACTION) % 1.0
        due = phase.spec.start_ns + int(offset * interval_ns)
        while due < phase.win_end and not client.closed:
            now = time.time_ns()
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
                now = time.time_ns()
            lag = now - due
            if lag > 10_000_000:
                phase.late_sends += 1
            phase.max_lag_ns = max(phase.max_lag_ns, lag)
            n = self.next_n.get(spec.index, 0)
            self.next_n[spec.index] = n + 1
            task = asyncio.create_task(self._send_one(client, spec, n, phase))
            pending.add(task)
            task.add_done_callback(pending.discard)
            due += interval_ns

    async def _sample_cpu(self, phase: Phase) -> None:
        for slot, at_ns in enumerate((phase.win_start, phase.win_end)):
            await asyncio.sleep(max(0.0, (at_ns - time.time_ns()) / 1e9))
            phase.cpu_window[slot] = time.process_time()

    async def run_phase(self, spec: PhaseSpec) -> None:
        phase = Phase(spec)
        phase.dups_start = sum(m.duplicates for m in self.members.values())
        phase.ooo_start = sum(m.out_of_order for m in self.members.values())
        self.phase = phase
        pending: set[asyncio.Task[None]] = set()
        cpu = asyncio.create_task(self._sample_cpu(phase))
        senders = [
            asyncio.create_task(self._sender(spec_, phase, pending))
            for spec_ in self.plan.clients
            if spec_.sender
        ]
        if spec.reconnect_fraction > 0:
            senders.append(asyncio.create_task(self._reconnect_some(phase)))
        while not all(task.done() for task in senders):
            await asyncio.wait(senders, timeout=PROGRESS_SECS)
            self.send("progress", self._progress(phase))
        while pending:
            await asyncio.wait(set(pending), timeout=PROGRESS_SECS)
            self.send("progress", self._progress(phase))
        await cpu
        self.send("acked", phase.acked_seqs)
        expected: dict[str, list[int]] = await self._expect()
        await self._drain(phase, expected)
        self.send("result", self._result(phase, expected))

    async def _expect(self) -> dict[str, list[int]]:
        while True:
            message = await self.inbox.get()
            if message[0] == "expect":
                return dict(message[1])
            if message[0] == "close":
                raise asyncio.CancelledError

    async def _drain(self, phase: Phase, expected: dict[str, list[int]]) -> None:
        """Wait until every member holds every acked message of its room, or drain_secs."""
        phase.want = sum(len(expected.get(m.room, ())) for m in self.members.values())
        if phase.delivered >= phase.want:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(phase.complete.wait(), phase.spec.drain_secs)

    def _progress(self, phase: Phase) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "sent": phase.sent,
            "acked": phase.acked,
            "delivered": phase.delivered,
            "errors": sum(phase.errors.values()),
            "disconnects": self.disconnects,
        }

    def _result(self, phase: Phase, expected: dict[str, list[int]]) -> dict[str, Any]:
        lost = lossy = 0
        for member in self.members.values():
            missing = member.missing(expected.get(member.room, ()))
            lost += missing
            lossy += bool(missing)
        return {
            **self._progress(phase),
            "sent_window": phase.sent_window,
            "acked_window": phase.acked_window,
            "delivered_window": phase.delivered_window,
            "expected": sum(len(expected.get(m.room, ())) for m in self.members.values()),
            "lost": lost,
            "members_with_loss": lossy,
            "members": len(self.members),
            "duplicates": sum(m.duplicates for m in self.members.values()) - phase.dups_start,
            "out_of_order": sum(m.out_of_order for m in self.members.values()) - phase.ooo_start,
            "error_codes": dict(phase.errors),
            "disconnect_reasons": dict(self.disconnect_reasons),
            "late_sends": phase.late_sends,
            "max_send_lag_ms": phase.max_lag_ns / 1e6,
            "latency_us": phase.latency_us.tobytes(),
            "ack_us": phase.ack_us.tobytes(),
            "gen_cpu_secs": phase.cpu_window[1] - phase.cpu_window[0],
            "reconnects": phase.reconnects,
            "replayed": phase.replayed,
            "reconnect_errors": dict(phase.reconnect_errors),
        }

    async def close_all(self) -> None:
        clients = list(self.clients.values())
        self.clients.clear()
        for start in range(0, len(clients), 500):
            await asyncio.gather(*(c.close() for c in clients[start : start + 500]))


def error_kind(exc: BaseException) -> str:
    """A short, stable name for why a connect failed: `connect: HTTP 502`, `connect: Timeout`."""
    if isinstance(exc, aiohttp.WSServerHandshakeError | aiohttp.ClientResponseError):
        return f"connect: HTTP {exc.status}"
    if isinstance(exc, TimeoutError):
        return "connect: timeout"
    if isinstance(exc, SioError):
        return f"connect: {str(exc)[:60]}"
    return f"connect: {type(exc).__name__}"


async def serve(plan: ProcPlan, conn: Connection) -> None:
    raise_fd_limit(len(plan.clients) + 1024)
    load = Load(plan, conn)
    loop = asyncio.get_running_loop()
    threading.Thread(target=load.read_pipe, args=(loop,), daemon=True).start()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            load.send("ready", await load.connect_all(session))
            while True:
                message = await load.inbox.get()
                if message[0] == "phase":
                    await load.run_phase(message[1])
                elif message[0] == "status":
                    load.send(
                        "status",
                        {
                            "connected": load.connected,
                            "disconnects": load.disconnects,
                            "disconnect_reasons": dict(load.disconnect_reasons),
                        },
                    )
                elif message[0] == "close":
                    break
        except asyncio.CancelledError:
            pass
        finally:
            await load.close_all()
            with contextlib.suppress(OSError, BrokenPipeError):
                load.send("closed", {"disconnects": load.disconnects})


def main(plan: ProcPlan, conn: Connection) -> None:
    """Entry point of a load process (multiprocessing target)."""
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(plan, conn))
