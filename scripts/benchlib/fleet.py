"""The parent side: starts the load processes, runs phases in lock-step, samples the
server processes' CPU over each measured window, and merges what the processes report."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from array import array
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from benchlib import loadproc, procfs, stats
from benchlib.plan import ClientSpec, PhaseSpec, ProcPlan, split

START_DELAY_SECS = 0.5
STOP_TIMEOUT_SECS = 20.0


class FleetError(RuntimeError):
    pass


class Progress:
    """One live line on stderr (rewritten in place on a terminal, every 5 s otherwise)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def show(self, text: str) -> None:
        now = time.monotonic()
        if self.tty:
            sys.stderr.write("\r\x1b[K" + text)
            sys.stderr.flush()
        elif now - self.last >= 5:
            print(text, file=sys.stderr, flush=True)
            self.last = now

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


class Fleet:
    def __init__(self, specs: list[ClientSpec], procs: int, deadline: float, **plan: Any) -> None:
        self.deadline = deadline  # time.monotonic() after which everything is abandoned
        self.progress = Progress()
        context = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for index, share in enumerate(split(specs, procs)):
            parent, child = context.Pipe()
            proc = context.Process(
                target=loadproc.main,
                args=(ProcPlan(index, share, **plan), child),
                name=f"bench-load-{index}",
                daemon=True,
            )
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        self.latest: dict[int, dict[str, Any]] = {}
        self.inbox: dict[str, dict[int, Any]] = {}  # kind -> process index -> payload

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def _pump(self, wait_secs: float) -> None:
        """Read whatever the processes sent within `wait_secs`; keep all but progress."""
        for conn in wait(self.conns, timeout=max(0.0, wait_secs)):
            index = self.conns.index(conn)  # type: ignore[arg-type]
            try:
                message = conn.recv()  # type: ignore[union-attr]
            except EOFError:
                raise FleetError(f"load process {index} died") from None
            if message[0] == "progress":
                self.latest[index] = message[1]
            else:
                self.inbox.setdefault(message[0], {})[index] = message[1]

    def _collect(self, kind: str, timeout: float, label: str) -> list[Any]:
        """Wait for one `kind` message from every process, showing progress meanwhile."""
        limit = min(self.deadline, time.monotonic() + timeout)
        while len(self.inbox.get(kind, {})) < len(self.conns):
            if time.monotonic() > limit:
                raise FleetError(f"load processes did not report {kind!r} in time")
            self._pump(0.5)
            self._show(label)
        got = self.inbox.pop(kind)
        return [got[i] for i in range(len(self.conns))]

    def _show(self, label: str) -> None:
        totals: dict[str, int] = {}
        for counters in self.latest.values():
            for key, value in counters.items():
                totals[key] = totals.get(key, 0) + value
        if totals:
            self.progress.show(label + " " + " ".join(f"{k} {v}" for k, v in totals.items()))

    def broadcast(self, *message: Any) -> None:
        for conn in self.conns:
            conn.send(message)

    def ready(self, timeout: float) -> dict[str, Any]:
        reports = self._collect("ready", timeout, "connecting:")
        self.progress.done()
        errors: dict[str, int] = {}
        retried: dict[str, int] = {}
        for r in reports:
            for key, value in r["connect_errors"].items():
                errors[key] = errors.get(key, 0) + value
            for key, value in r["join_retry_reasons"].items():
                retried[key] = retried.get(key, 0) + value
        connect_us, setup_us = array("q"), array("q")
        for r in reports:
            connect_us.frombytes(r["connect_us"])
            setup_us.frombytes(r["setup_us"])
        firsts = [r["first_attempt_ns"] for r in reports if r["first_attempt_ns"]]
        lasts = [r["last_joined_ns"] for r in reports if r["last_joined_ns"]]
        return {
            "connected": sum(r["connected"] for r in reports),
            "joined": sum(r["joined"] for r in reports),
            "connect_errors": errors,
            "join_retries": sum(r["join_retries"] for r in reports),
            "join_retry_reasons": retried,
            "connect_secs": max(r["connect_secs"] for r in reports),
            "deflate_negotiated": sum(r["deflate_negotiated"] for r in reports),
            # Per client, from its own connect attempt: connected / connected and joined.
            "connect_ms": stats.percentiles(connect_us),
            "connect_join_ms": stats.percentiles(setup_us),
            # From the first connect attempt of any process to the last join ack of any.
            "all_joined_secs": (max(lasts) - min(firsts)) / 1e9 if firsts and lasts else None,
        }

    def status(self) -> dict[str, Any]:
        self.broadcast("status")
        reports = self._collect("status", 30, "status:")
        return {
            "connected": sum(r["connected"] for r in reports),
            "disconnects": sum(r["disconnects"] for r in reports),
        }

    def run_phase(
        self,
        name: str,
        rate: float,
        warmup: float,
        duration: float,
        ack_timeout: float,
        drain: float,
        server_pids: list[int],
        service_pids: list[int],
        reconnect_fraction: float = 0.0,
        probe: Callable[[], Any] | None = None,
    ) -> dict[str, Any]:
        """One phase. `probe`, if given, is called at the start and at the end of the measured
        window, beside the CPU samples; its two results are kept as "probes"."""
        start_ns = time.time_ns() + int(START_DELAY_SECS * 1e9)
        spec = PhaseSpec(
            name, rate, start_ns, warmup, duration, ack_timeout, drain, reconnect_fraction
        )
        self.latest.clear()
        self.broadcast("phase", spec)
        label = f"[{name} {rate:g} msg/s/sender]"
        # Sample CPU of the server, its services and this generator over the same window.
        samples, probes = [], []
        for at_ns in (spec.window_start_ns, spec.window_end_ns):
            while time.time_ns() < at_ns:
                if time.monotonic() > self.deadline:
                    raise FleetError("time budget exhausted")
                self._pump(min(0.5, (at_ns - time.time_ns()) / 1e9))
                self._show(label)
            samples.append(
                (
                    procfs.sum_cpu(server_pids),
                    procfs.sum_cpu(service_pids),
                    procfs.sum_cpu([os.getpid()]),
                )
            )
            if probe is not None:
                probes.append(probe())
        acked = self._collect("acked", duration + ack_timeout + 30, label)
        expected: dict[str, list[int]] = {}
        for per_proc in acked:
            for room, seqs in per_proc.items():
                expected.setdefault(room, []).extend(seqs)
        self.broadcast("expect", expected)
        results = self._collect("result", drain + 60, label + " draining")
        self.progress.done()
        merged = stats.merge(results)
        merged["phase"] = name
        merged["rate_per_sender"] = rate
        merged["window_secs"] = duration
        merged["server_cpu_secs"] = samples[1][0] - samples[0][0]
        merged["services_cpu_secs"] = samples[1][1] - samples[0][1]
        merged["gen_cpu_secs"] += samples[1][2] - samples[0][2]
        merged["server_rss_kb"] = procfs.sum_rss_kb(server_pids)
        if probe is not None:
            merged["probes"] = probes
        merged["_acked_max"] = {room: max(seqs) for room, seqs in expected.items() if seqs}
        return merged

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("close",))
            except (OSError, BrokenPipeError):
                continue
        deadline = time.monotonic() + STOP_TIMEOUT_SECS
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for conn in self.conns:
            conn.close()
