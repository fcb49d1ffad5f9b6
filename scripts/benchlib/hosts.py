"""A fleet on one machine: "hosts" made with Linux network namespaces on one bridge, each a
copy of the project running scripts/start (its own supervisord, workers and front door), and
an nginx balancer in front of their front doors. Needs root and iproute2 (`ip`). Used by
`scripts/bench fleet` and by tests/integration/test_fleet.py.

Everything here is started by a context manager that stops it, also when a test fails:
processes first, then namespaces, then the bridge.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchlib.cluster import ROOT
from benchlib.netns import free_subnet, ip

FRONT_PORT = 3000
# A front door that refused a connection is skipped this long for new sessions; then it is
# tried again (and skipped again while its host is down).
BALANCER_FAIL_TIMEOUT_SECS = 5
# What each host's copy of the project holds besides its own var/: the code, not the data.
PROJECT_ENTRIES = (".venv", "chatd", "config", "scripts", "static", "supervisord.conf")
START_TIMEOUT_SECS = 120
STOP_TIMEOUT_SECS = 30


@dataclass(frozen=True)
class Network:
    """One bridge in this namespace: its own address (the shared services and the balancer
    listen there), the hosts' addresses (.11, .12, ...) and the clients' (.101, ...)."""

    bridge: str
    net: ipaddress.IPv4Network
    tag: str

    @property
    def address(self) -> str:
        return str(self.net[1])

    def host_address(self, n: int) -> str:
        return str(self.net[10 + n])

    def client_address(self, n: int) -> str:
        return str(self.net[100 + n])


@contextlib.contextmanager
def network(clients: int) -> Iterator[Network]:
    tag = uuid.uuid4().hex[:6]
    # 10.77.0.0/24 unless an interface of this machine is on it.
    made = Network(f"chfb{tag}", free_subnet("10.77"), tag)
    try:
        ip("link", "add", made.bridge, "type", "bridge")
        ip("addr", "add", f"{made.address}/24", "dev", made.bridge)
        # Each client binds its own source address, as clients on different machines have.
        for n in range(1, clients + 1):
            ip("addr", "add", f"{made.client_address(n)}/24", "dev", made.bridge)
        ip("link", "set", made.bridge, "up")
        yield made
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            ip("link", "del", made.bridge)


@dataclass
class Host:
    """A machine of the fleet: a network namespace with one address on the bridge, and a copy
    of the project (links to the code, its own var/) started with scripts/start."""

    n: int
    netns: str
    address: str
    dir: Path
    env: dict[str, str]
    outside: str  # this namespace's end of the host's veth pair, on the bridge

    @property
    def front(self) -> str:
        return f"{self.address}:{FRONT_PORT}"

    def script(self, name: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, str(self.dir / "scripts" / name)],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def supervisord_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.dir / "var/run/supervisord.pid").read_text())
            if Path(f"/proc/{pid}").exists():
                return pid
        return None

    def stop(self) -> None:
        """SIGTERM to supervisord, which stops the front door and the workers (they drain),
        then exits; waits for that."""
        pid = self.supervisord_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECS
        while Path(f"/proc/{pid}").exists():
            assert time.monotonic() < deadline, f"host {self.n}: supervisord did not exit"
            time.sleep(0.1)

    def pids(self) -> list[int]:
        """Every process in the host's namespace."""
        out = subprocess.run(
            ["ip", "netns", "pids", self.netns], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in out.stdout.split()]

    def kill_leftovers(self) -> None:
        """Whatever still runs in the namespace after stop() (only on a failed stop)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def log(self) -> str:
        logs = sorted((self.dir / "var/log").glob("*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs)


def new_host(net: Network, n: int, base: Path, env: dict[str, str]) -> Host:
    """The host's copy of the project: links to the code, its own var/."""
    host = Host(
        n,
        f"chatd-fleet-{net.tag}-{n}",
        net.host_address(n),
        base / f"host{n}",
        env,
        f"chf{net.tag}{n}",
    )
    (host.dir / "var").mkdir(parents=True)
    for entry in PROJECT_ENTRIES:
        (host.dir / entry).symlink_to(ROOT / entry)
    (host.dir / "var/bin").symlink_to(ROOT / "var/bin")
    return host


def wire(net: Network, host: Host) -> None:
    """The host's namespace, with a veth pair to the bridge."""
    inside = host.outside + "p"
    ip("netns", "add", host.netns)
    ip("link", "add", host.outside, "type", "veth", "peer", "name", inside)
    ip("link", "set", inside, "netns", host.netns)
    ip("link", "set", host.outside, "master", net.bridge)
    ip("link", "set", host.outside, "up")
    # Loopback: the front door reaches its workers there, and scripts/start checks them there.
    ip("link", "set", "lo", "up", netns=host.netns)
    ip("addr", "add", f"{host.address}/24", "dev", inside, netns=host.netns)
    ip("link", "set", inside, "up", netns=host.netns)


@contextlib.contextmanager
def hosts(net: Network, count: int, base: Path, env: dict[str, str]) -> Iterator[list[Host]]:
    """`count` hosts started together (scripts/start in each namespace, in parallel)."""
    made: list[Host] = []
    try:
        for n in range(1, count + 1):
            made.append(new_host(net, n, base, env))
            wire(net, made[-1])
        starts = [
            subprocess.Popen(
                ["ip", "netns", "exec", h.netns, str(h.dir / "scripts/start")],
                cwd=h.dir,
                env=h.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for h in made
        ]
        for h, proc in zip(made, starts, strict=True):
            out, _ = proc.communicate(timeout=START_TIMEOUT_SECS)
            assert proc.returncode == 0, f"host {h.n}: scripts/start failed\n{out}\n{h.log()}"
        yield made
    finally:
        for h in made:
            with contextlib.suppress(Exception):
                h.stop()
            h.kill_leftovers()
            with contextlib.suppress(subprocess.SubprocessError):
                ip("netns", "del", h.netns)
            # Deleting the namespace deletes the pair only once the kernel frees it; a socket
            # still closing can keep it alive, so this end goes explicitly.
            with contextlib.suppress(subprocess.SubprocessError):
                ip("link", "del", h.outside)


@contextlib.contextmanager
def ferretdb(address: str, port: int, base: Path) -> Iterator[str]:
    """The shared MongoDB-protocol server (FerretDB, SQLite backend) on `address`."""
    data, state = base / "ferretdb/data", base / "ferretdb/state"
    data.mkdir(parents=True)
    state.mkdir(parents=True)
    proc = subprocess.Popen(
        [
            str(ROOT / "var/bin/ferretdb"),
            f"--listen-addr={address}:{port}",
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--state-dir={state}",
            "--telemetry=disable",
            "--debug-addr=-",
            "--log-level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_tcp(address, port, 30, proc)
        yield f"mongodb://{address}:{port}/"
    finally:
        end(proc, signal.SIGTERM)


def end(proc: subprocess.Popen[bytes], sig: int, timeout: float = 10) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_tcp(address: str, port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((address, port)) == 0:
                return
        assert proc.poll() is None, f"{proc.args!r} exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"nothing listens on {address}:{port}"
        time.sleep(0.1)


def healthy(url: str) -> bool:
    """`url`/healthz answers 200 within a second."""
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except OSError:
        return False


BALANCER_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    log_format fleet '$remote_addr|$upstream_addr|$status|$request_uri';
    access_log {dir}/access.log fleet;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream chatd_hosts {{
        # One client address, one host: every request of an Engine.IO session (polling, the
        # WebSocket upgrade, reconnects) lands on the same front door. Consistent: when a host
        # leaves, only its clients move.
        hash $remote_addr consistent;
{servers}
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://chatd_hosts;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_read_timeout 75s;
            proxy_send_timeout 75s;
            proxy_connect_timeout 2s;
            # A host that refuses the connection is skipped, so a reconnect reaches a live one.
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


@dataclass
class Balancer:
    address: str
    port: int
    dir: Path

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def routes(self, prefix: str = "/socket.io/") -> list[tuple[str, str]]:
        """(client address, front door) of every request under `prefix` logged so far, in
        the order they ended (a WebSocket is logged when it closes)."""
        rows = []
        log = self.dir / "access.log"
        for line in log.read_text().splitlines() if log.exists() else []:
            client, upstream, _, uri = line.split("|", 3)
            if uri.startswith(prefix):
                # After a failed try nginx logs every front door it tried: the last answered.
                rows.append((client, upstream.split(", ")[-1]))
        return rows

    def front_of(self, source: str) -> str:
        """The front door the balancer sends `source`'s requests to (one GET /healthz)."""
        conn = http.client.HTTPConnection(self.address, self.port, 2, (source, 0))
        try:
            conn.request("GET", f"/healthz?probe={source}")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
        deadline = time.monotonic() + 5
        while True:  # nginx writes the line once the response is sent
            fronts = [f for c, f in self.routes(f"/healthz?probe={source}") if c == source]
            if fronts:
                return fronts[-1]
            assert time.monotonic() < deadline, f"no log line for {source}"
            time.sleep(0.02)


@contextlib.contextmanager
def balancer(address: str, port: int, fronts: list[str], base: Path) -> Iterator[Balancer]:
    directory = base / "balancer"
    (directory / "tmp").mkdir(parents=True)
    servers = "\n".join(
        f"        server {f} max_fails=1 fail_timeout={BALANCER_FAIL_TIMEOUT_SECS}s;"
        for f in fronts
    )
    conf = directory / "nginx.conf"
    conf.write_text(
        BALANCER_CONF.format(dir=directory, servers=servers, listen=f"{address}:{port}")
    )
    proc = subprocess.Popen(
        ["/usr/sbin/nginx", "-p", str(directory), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    made = Balancer(address, port, directory)
    try:
        deadline = time.monotonic() + 10
        while True:
            if healthy(made.url):
                break
            assert proc.poll() is None, (directory / "error.log").read_text()
            assert time.monotonic() < deadline, "balancer did not answer /healthz"
            time.sleep(0.1)
        yield made
    finally:
        end(proc, signal.SIGQUIT)  # nginx: graceful
