"""Restarting a program of the supervisord this worker runs under (the embedded FerretDB, when
its writes stay refused: docs/design.md, "FerretDB's wedge"), at most once a minute for all
the workers of one chat."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from chatd.redis_conn import RedisClient

log = logging.getLogger(__name__)

# One restart per program per minute across workers: every worker sees the same wedge, and
# FerretDB needs a few seconds to start again.
RESTART_EVERY_SECS = 60
RESTART_TIMEOUT_SECS = 30.0
SUPERVISORCTL = Path(sys.executable).with_name("supervisorctl")


class Restarter:
    """`program` is the supervisord program to restart (empty: none), `server_url` where its
    supervisord listens (SUPERVISOR_SERVER_URL, which supervisord gives its children)."""

    def __init__(
        self, program: str, server_url: str, redis: RedisClient, prefix: str, worker: str
    ) -> None:
        self.program = program
        self.server_url = server_url
        self._redis = redis
        self._key = f"{prefix}:restart:{program}"
        self._worker = worker

    @property
    def enabled(self) -> bool:
        return bool(self.program and self.server_url)

    async def restart(self) -> bool:
        """True when this call restarted the program."""
        if not self.enabled:
            return False
        try:
            mine = await self._redis.set(self._key, self._worker, nx=True, ex=RESTART_EVERY_SECS)
        except Exception as exc:  # Redis away: each worker's store reports once a minute
            log.warning("restart of %s not coordinated (%s)", self.program, type(exc).__name__)
            mine = True
        if not mine:
            return False  # another worker restarted it this minute
        log.warning("restarting %s through supervisord", self.program)
        proc = await asyncio.create_subprocess_exec(
            str(SUPERVISORCTL), "-s", self.server_url, "restart", self.program,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), RESTART_TIMEOUT_SECS)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.error("restart of %s timed out", self.program)
            return False
        if proc.returncode != 0:
            log.error("restart of %s failed: %s", self.program, out.decode(errors="replace"))
            return False
        return True
