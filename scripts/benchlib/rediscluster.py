"""A real Redis Cluster for tests and `scripts/bench fleet`: six `redis-server
--cluster-enabled yes` nodes (three masters, three replicas), made with `redis-cli --cluster
create`.

`redis_cluster()` takes the first port, address and password (chatd refuses a Redis off
loopback without one). Everything waits on conditions (`cluster_state:ok`, a promotion seen
in CLUSTER NODES), never on fixed sleeps, and every node it started is stopped, also when the
block fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

NODES = 6
# A master unreachable this long is failed over to its replica (the default is 15 s).
NODE_TIMEOUT_MS = 1000
STATE_OK_TIMEOUT_SECS = 30.0


@dataclass
class Node:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"
    password: str | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, password=self.password, socket_timeout=2)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class RedisCluster:
    nodes: list[Node]
    killed: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        first = self.nodes[0]
        auth = f":{first.password}@" if first.password else ""
        return f"redis://{auth}{first.host}:{first.port}/0"

    @property
    def other_nodes(self) -> str:
        return ",".join(f"{n.host}:{n.port}" for n in self.nodes[1:])

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive()]

    def nodes_view(self) -> list[dict[str, str]]:
        """CLUSTER NODES as one live node sees it: id, address, flags, slots."""
        for node in self.live():
            with contextlib.suppress(redis.RedisError), node.client() as r:
                rows = []
                for line in r.execute_command("CLUSTER", "NODES").decode().splitlines():
                    parts = line.split()
                    rows.append(
                        {
                            "id": parts[0],
                            "port": parts[1].split("@")[0].rsplit(":", 1)[1],
                            "flags": parts[2],
                            "master_id": parts[3],
                            "slots": " ".join(parts[8:]),
                        }
                    )
                return rows
        raise AssertionError("no cluster node answers")

    def owner(self, key: str) -> Node:
        """The node that masters `key`'s slot now."""
        slot = key_slot(key.encode())
        for node in self.live():
            with contextlib.suppress(redis.RedisError), node.client() as r:
                for start, end, master, *_ in r.execute_command("CLUSTER", "SLOTS"):
                    if int(start) <= slot <= int(end):
                        return self._node(int(master[1]))
        raise AssertionError(f"no owner found for slot {slot}")

    def _node(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def masters(self) -> list[Node]:
        return [
            self._node(int(row["port"]))
            for row in self.nodes_view()
            if "master" in row["flags"] and "fail" not in row["flags"] and row["slots"]
        ]

    def wait_ok(self, timeout: float = STATE_OK_TIMEOUT_SECS) -> None:
        """Every live node says `cluster_state:ok` and agrees who masters every slot."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for node in self.live():
                with contextlib.suppress(redis.RedisError), node.client() as r:
                    states.append(r.execute_command("CLUSTER", "INFO").decode())
            ok = all("cluster_state:ok" in s for s in states)
            if states and ok and len(states) == len(self.live()):
                return
            assert time.monotonic() < deadline, f"cluster not ok in {timeout} s: {states[:1]}"
            time.sleep(0.1)

    def wait_synced(self, timeout: float = STATE_OK_TIMEOUT_SECS) -> None:
        """Every replica has its master's data (`master_link_status:up`): one that never
        synced cannot take over."""
        deadline = time.monotonic() + timeout
        while True:
            links = []
            for node in self.live():
                with contextlib.suppress(redis.RedisError), node.client() as r:
                    info = r.info("replication")
                    if info.get("role") == "slave":
                        links.append(info.get("master_link_status"))
            if len(links) == NODES // 2 and all(link == "up" for link in links):
                return
            assert time.monotonic() < deadline, f"replicas not in sync in {timeout} s: {links}"
            time.sleep(0.1)

    def kill(self, node: Node) -> str:
        """SIGKILL `node` (a master); returns its node id."""
        with node.client() as r:
            node_id = r.execute_command("CLUSTER", "MYID").decode()
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(10)
        self.killed.append(node)
        return node_id

    def replicas_of(self, master_id: str) -> list[Node]:
        return [
            self._node(int(r["port"])) for r in self.nodes_view() if r["master_id"] == master_id
        ]

    def wait_promoted(
        self, dead_id: str, replicas: list[Node], timeout: float = STATE_OK_TIMEOUT_SECS
    ) -> Node:
        """Wait until one of the dead master's `replicas` masters its slots and the cluster is
        ok again; returns that new master."""
        deadline = time.monotonic() + timeout
        ports = {str(n.port) for n in replicas}
        while True:
            rows = self.nodes_view()
            dead = next(r for r in rows if r["id"] == dead_id)
            taken = [
                r for r in rows if r["port"] in ports and "master" in r["flags"] and r["slots"]
            ]
            if taken and "fail" in dead["flags"] and not dead["slots"]:
                self.wait_ok(max(1.0, deadline - time.monotonic()))
                return self._node(int(taken[0]["port"]))
            assert time.monotonic() < deadline, f"no promotion in {timeout} s: {rows}"
            time.sleep(0.1)


def tools_present() -> bool:
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def _start_node(port: int, base: Path, host: str, password: str | None) -> Node:
    node_dir = base / str(port)
    node_dir.mkdir(parents=True)
    # Replicas authenticate to their masters with the same password as clients.
    auth = ["--requirepass", password, "--masterauth", password] if password else []
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port", str(port),
            "--bind", host,
            *auth,
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--save", "",
            # A replica syncs at once (the default waits 5 s for more replicas to share the
            # transfer), and may take over however long it was cut off from its master.
            "--repl-diskless-sync-delay", "0",
            "--cluster-replica-validity-factor", "0",
            "--appendonly", "no",
            "--dir", str(node_dir),
            "--logfile", str(node_dir / "redis.log"),
        ],
        cwd=node_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return Node(port, node_dir, proc, host, password)


def _wait_answers(node: Node, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError), node.client() as r:
            if r.ping():
                return
        assert node.alive(), (node.dir / "redis.log").read_text()[-2000:]
        assert time.monotonic() < deadline, f"redis-server on {node.port} did not answer"
        time.sleep(0.05)


@contextlib.contextmanager
def redis_cluster(
    base: Path,
    first_port: int,
    host: str = "127.0.0.1",
    password: str | None = None,
) -> Iterator[RedisCluster]:
    if not tools_present():
        raise RuntimeError("redis-server and redis-cli are needed for a Redis Cluster")
    nodes: list[Node] = []
    try:
        for port in range(first_port, first_port + NODES):
            nodes.append(_start_node(port, base, host, password))
        for node in nodes:
            _wait_answers(node)
        subprocess.run(
            [
                "redis-cli", "--cluster", "create",
                *(f"{host}:{n.port}" for n in nodes),
                "--cluster-replicas", "1", "--cluster-yes",
            ],
            # REDISCLI_AUTH rather than -a: the password stays out of the process list.
            env={**os.environ, **({"REDISCLI_AUTH": password} if password else {})},
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        cluster = RedisCluster(nodes)
        cluster.wait_ok()
        cluster.wait_synced()
        yield cluster
    finally:
        for node in nodes:
            if node.alive():
                assert node.proc is not None
                node.proc.kill()
                node.proc.wait(10)
