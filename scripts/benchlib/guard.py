"""Safety rails: loopback targets only, and enough file descriptors for many connections."""

from __future__ import annotations

import ipaddress
import resource
from urllib.parse import urlparse


class TargetError(ValueError):
    pass


def parse_targets(spec: str) -> list[str]:
    """`http://127.0.0.1:3001,http://127.0.0.1:3002` -> URLs; refuse anything not on loopback.

    A benchmark floods its target, so it may only ever hit this machine (127.0.0.0/8, ::1).
    """
    urls = [part.strip().rstrip("/") for part in spec.split(",") if part.strip()]
    if not urls:
        raise TargetError("no target given")
    for url in urls:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "ws"):
            raise TargetError(f"{url}: only http:// or ws:// targets on loopback")
        host = parsed.hostname or ""
        if host != "localhost":
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise TargetError(f"{url}: refusing a non-loopback target ({host!r})")
        if parsed.port is None:
            raise TargetError(f"{url}: give the port explicitly")
    return [u.replace("ws://", "http://", 1) for u in urls]


def raise_fd_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards `wanted` (capped by the hard limit); return the new soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
