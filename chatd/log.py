"""Logging set-up, done once per process, and the start-up line."""

from __future__ import annotations

import logging
import sys

from chatd import __version__
from chatd.config import Settings


def configure(settings: Settings) -> None:
    worker = f"w{settings.server_worker_id}"
    logging.basicConfig(
        stream=sys.stderr,
        level=settings.server_log_level.upper(),
        format=f"%(asctime)s %(levelname)s {worker} %(name)s: %(message)s",
    )
    # engineio/socketio log every packet at INFO when given a logger; keep them quiet.
    for noisy in ("engineio", "socketio", "tornado.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def startup_line(settings: Settings) -> str:
    return (
        f"chatd {__version__} worker={settings.server_worker_id} "
        f"listening on {settings.server_host}:{settings.server_port} "
        f"redis_prefix={settings.redis_prefix} mongo_db={settings.mongo_db}"
    )
