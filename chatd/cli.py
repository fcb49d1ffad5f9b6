"""Command line: `serve` and `check-config`. Flags become setting overrides; no logic here."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from chatd.config import ConfigError, Settings, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatd", description="Real-time chat server with rooms")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run one worker"),
        ("check-config", "print the effective settings, or every problem with them"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--host", dest="server_host", help="address to bind (default 0.0.0.0)")
        cmd.add_argument("--port", dest="server_port", type=int, help="port (default 3000)")
        cmd.add_argument(
            "--worker-id",
            dest="server_worker_id",
            type=int,
            help="1..N inside a cluster; prefixes Engine.IO session ids",
        )
        cmd.add_argument("--redis-url", dest="redis_url")
        cmd.add_argument("--mongo-url", dest="mongo_url")
        cmd.add_argument("--log-level", dest="server_log_level")
    render = sub.add_parser("render-nginx", help="write the front door's nginx.conf")
    render.add_argument("--workers", type=int, required=True, help="number of workers (ids 1..N)")
    render.add_argument("--base-port", type=int, default=3000, help="worker I listens on base+I")
    render.add_argument("--listen", default="0.0.0.0:3000", help="front door address")
    render.add_argument("--dir", required=True, help="folder for nginx.conf, pid, logs, temp")
    render.add_argument(
        "--conn-per-ip",
        type=int,
        default=None,
        help="open connections per client address (default CHATD_FRONT_CONN_PER_IP or 100)",
    )
    return parser


def render_nginx(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chatd.frontdoor import CONN_PER_IP_DEFAULT, write_nginx_conf

    settings = load_settings()
    workers = [(i, args.base_port + i) for i in range(1, args.workers + 1)]
    per_ip = args.conn_per_ip
    if per_ip is None:
        per_ip = int(os.environ.get("CHATD_FRONT_CONN_PER_IP", CONN_PER_IP_DEFAULT))
    path = write_nginx_conf(
        workers, args.listen, Path(args.dir).resolve(), settings.limits_frame_bytes, per_ip
    )
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "render-nginx":
        return render_nginx(args)
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        settings = load_settings(overrides)
    except ConfigError as exc:
        print("chatd: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        for field in Settings.__dataclass_fields__:
            print(f"{settings.env_name(field)}={getattr(settings, field)}")
        return 0
    from chatd import app, log

    log.configure(settings)
    return app.run(settings)
