"""Network namespaces for the fleet (`scripts/bench fleet`, tests), made with iproute2 (`ip`):
running `ip` in one, and finding a private subnet no interface of this machine is on. Needs
root."""

from __future__ import annotations

import ipaddress
import subprocess


def ip(*args: str, netns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True, timeout=10)


def free_subnet(first_two: str, start: int = 0) -> ipaddress.IPv4Network:
    """The first `first_two`.x.0/24, from x = `start` up, that no interface is on."""
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True)
    used = {ipaddress.ip_interface(f.split()[3]).network for f in out.stdout.splitlines()}
    for third in range(start, 255):
        net = ipaddress.IPv4Network(f"{first_two}.{third}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"no free {first_two}.x.0/24")
