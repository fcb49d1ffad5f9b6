"""Renders the nginx front door for N workers from `config/nginx.conf.template`."""

from __future__ import annotations

from pathlib import Path
from string import Template

from chatd.config import ROOT_DIR

TEMPLATE_FILE = ROOT_DIR / "config" / "nginx.conf.template"
TEMP_SUBDIRS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")
# A worker that fails once is skipped for this long for new sessions and REST.
FAIL_TIMEOUT_SECS = 2
# Open connections one client address may hold through the front door: a browser holds one per
# tab, so this leaves room for a household or a small office behind one NAT, and stops one
# address from opening thousands.
CONN_PER_IP_DEFAULT = 100
# Not counted: benchmarks and local tools connect from loopback.
CONN_EXEMPT = ("127.0.0.0/8", "::1")


def render_nginx(
    workers: list[tuple[int, int]],
    listen: str,
    directory: Path,
    max_body_bytes: int,
    conn_per_ip: int = CONN_PER_IP_DEFAULT,
    conn_exempt: tuple[str, ...] = CONN_EXEMPT,
) -> str:
    """workers: (worker_id, port) pairs, all on 127.0.0.1."""
    if not workers:
        raise ValueError("at least one worker is needed")
    sid_map = "\n".join(f"        ~^w{wid}\\. chatd_w{wid};" for wid, _ in workers)
    pool = "\n".join(
        f"        server 127.0.0.1:{port} max_fails=1 fail_timeout={FAIL_TIMEOUT_SECS}s;"
        for _, port in workers
    )
    singles = "\n".join(
        f"    upstream chatd_w{wid} {{\n        server 127.0.0.1:{port};\n    }}"
        for wid, port in workers
    )
    template = Template(TEMPLATE_FILE.read_text())
    return template.substitute(
        dir=str(directory),
        listen=listen,
        max_body=str(max_body_bytes),
        sid_map=sid_map,
        pool_servers=pool,
        worker_upstreams=singles,
        conn_per_ip=str(conn_per_ip),
        conn_exempt="\n".join(f'        {net} "";' for net in conn_exempt),
        conn_limit=f"            limit_conn chatd_per_ip {conn_per_ip};" if conn_per_ip else "",
    )


def write_nginx_conf(
    workers: list[tuple[int, int]],
    listen: str,
    directory: Path,
    max_body_bytes: int,
    conn_per_ip: int = CONN_PER_IP_DEFAULT,
    conn_exempt: tuple[str, ...] = CONN_EXEMPT,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for sub in TEMP_SUBDIRS:
        (directory / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    path = directory / "nginx.conf"
    path.write_text(
        render_nginx(workers, listen, directory, max_body_bytes, conn_per_ip, conn_exempt)
    )
    return path
