"""A debugging aid: what a stopping worker still holds when it is about to return.

With `CHATD_DEBUG_EXIT_REPORT=<path>` set, a worker that stops writes a JSON document to
`<path>` after it has closed every part and just before it returns:

- `tasks`: asyncio tasks still running (other than the one returning);
- `cancelled`: tasks that outlived the parts that made them and had to be cancelled;
- `sockets`: sockets the process opened after start-up that are still open, read from
  `/proc/self`, so those held by the event loop or a C library count too.

A worker that stopped cleanly writes `{"tasks": [], "cancelled": [], "sockets": []}`. Linux
only; elsewhere `sockets` is null.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Any

ENV = "CHATD_DEBUG_EXIT_REPORT"

PROC_FD = Path("/proc/self/fd")
PROC_NET = Path("/proc/self/net")
TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
    "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}  # fmt: skip


def requested() -> Path | None:
    path = os.environ.get(ENV, "")
    return Path(path) if path else None


def socket_inodes() -> dict[int, int] | None:
    """inode -> fd of every open socket of the process, None where /proc cannot tell."""
    try:
        fds = os.listdir(PROC_FD)
    except OSError:
        return None
    found: dict[int, int] = {}
    for fd in fds:
        try:
            target = os.readlink(PROC_FD / fd)
        except OSError:
            continue  # closed meanwhile (listdir's own descriptor among them)
        if target.startswith("socket:["):
            found[int(target[len("socket:[") : -1])] = int(fd)
    return found


def _address(hex_address: str) -> str:
    """An address of /proc/net/tcp{,6} or udp{,6}: host bytes in the kernel's order, then
    the port."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        text = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        text = "[" + socket.inet_ntop(socket.AF_INET6, words) + "]"
    return f"{text}:{int(port, 16)}"


def _inet_sockets() -> dict[int, dict[str, Any]]:
    table: dict[int, dict[str, Any]] = {}
    for kind in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = (PROC_NET / kind).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            table[int(cols[9])] = {
                "kind": kind,
                "local": _address(cols[1]),
                "remote": _address(cols[2]),
                "state": TCP_STATES.get(cols[3], cols[3]) if kind.startswith("tcp") else "",
            }
    return table


def _unix_sockets() -> dict[int, dict[str, Any]]:
    table: dict[int, dict[str, Any]] = {}
    try:
        lines = (PROC_NET / "unix").read_text().splitlines()[1:]
    except OSError:
        return table
    for line in lines:
        cols = line.split()
        table[int(cols[6])] = {"kind": "unix", "path": cols[7] if len(cols) > 7 else ""}
    return table


def open_sockets(baseline: dict[int, int] | None) -> list[dict[str, Any]] | None:
    """The open sockets that were not open at `baseline`, described."""
    now = socket_inodes()
    if now is None or baseline is None:
        return None
    known = {**_unix_sockets(), **_inet_sockets()}
    return [
        {"fd": fd, "inode": inode, **known.get(inode, {"kind": "unknown"})}
        for inode, fd in sorted(now.items())
        if inode not in baseline
    ]


def task_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    where = getattr(coro, "__qualname__", type(coro).__name__)
    return f"{task.get_name()} ({where})"


def write(
    path: Path, tasks: list[str], cancelled: list[str], sockets: list[dict[str, Any]] | None
) -> None:
    report = {"pid": os.getpid(), "tasks": tasks, "cancelled": cancelled, "sockets": sockets}
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report, indent=2))
    partial.replace(path)  # a reader never sees half a report
