"""Which web pages may talk to chatd: the origin rule for sockets and state-changing REST.

A request without an `Origin` header (a non-browser client) passes: the rule stops cross-site
pages, it is not authentication. A browser's request passes when its origin is listed in
`server.cors_origins`, or when it is the page's own origin (`Origin` equals the scheme and
`Host` of the request) *and* that host is one a DNS rebinding attack cannot forge: an IP
address, `localhost`, this machine's own host names, or a host of a listed origin. Origins are
compared exactly as browsers send them (lower-case scheme and host, no trailing slash), so
`HTTP://host` or `http://host/` is refused.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def _hostname(host: str) -> str:
    """`host[:port]` or `[v6]:port` without the port, lower-case."""
    if host.startswith("["):
        return host[1 : host.find("]")].lower() if "]" in host else ""
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def _is_ip(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def machine_names() -> set[str]:
    """Names this machine answers to on the LAN without DNS that others control."""
    names = {"localhost"}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower())
            names.add(name.lower().split(".")[0] + ".local")  # mDNS
    return names


class OriginPolicy:
    def __init__(self, listed: list[str], local_names: set[str] | None = None) -> None:
        self._listed = frozenset(listed)
        names = machine_names() if local_names is None else set(local_names)
        names.update(h for h in (urlsplit(o).hostname for o in listed) if h)
        self._trusted_hosts = frozenset(names)

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True
        if origin in self._listed:
            return True
        if not host or origin not in (f"http://{host}", f"https://{host}"):
            return False
        hostname = _hostname(host)
        return _is_ip(hostname) or hostname in self._trusted_hosts
