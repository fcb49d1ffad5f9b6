"""The production layout: scripts/start runs supervisord.conf, scripts/stop ends it all."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import IN_CI, ROOT, free_port, http_get

pytestmark = pytest.mark.cluster
WORKERS = 2


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ctl(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [str(ROOT / ".venv/bin/supervisorctl"), "-c", str(ROOT / "supervisord.conf"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return out.stdout


def run_script(name: str, env: dict[str, str]) -> None:
    """Run scripts/<name> and require it to succeed."""
    out = subprocess.run(
        [str(ROOT / "scripts" / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture
def cluster(services):
    busy = [p for p in range(3001, 3001 + WORKERS) if port_open(p)]
    pidfile = ROOT / "var/run/supervisord.pid"
    if busy or (pidfile.exists() and os.path.exists(f"/proc/{pidfile.read_text().strip()}")):
        message = f"ports {busy} or var/run/supervisor.sock in use by another chatd cluster"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    front = free_port()
    env = services.env(
        CHATD_WORKERS=str(WORKERS),
        CHATD_FRONT_LISTEN=f"127.0.0.1:{front}",
    )
    run_script("start", env)
    yield env, front
    run_script("stop", env)


def test_start_runs_one_worker_per_setting_and_stop_leaves_nothing(cluster):
    env, front = cluster
    status = ctl(env, "status")
    for name in ("chatd:chatd-01", "chatd:chatd-02", "frontdoor"):
        assert f"{name}" in status and "RUNNING" in status.split(name)[1].splitlines()[0], status
    assert http_get(f"http://127.0.0.1:{front}/readyz")[0] == 200

    pid = int(ctl(env, "pid", "chatd:chatd-01").strip())
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    back_after = None
    while time.monotonic() - killed_at < 10:
        try:
            # /healthz answers once the new process serves; the old one is gone (SIGKILL).
            if http_get("http://127.0.0.1:3001/healthz", timeout=0.5)[0] == 200:
                back_after = time.monotonic() - killed_at
                break
        except OSError:
            pass
        time.sleep(0.05)
    new_pid = int(ctl(env, "pid", "chatd:chatd-01").strip())
    assert new_pid not in (0, pid)
    # supervisord's 1 s back-off plus a worker's start-up (about 1 s of imports, the token
    # library's included), with margin for a loaded machine.
    assert back_after is not None and back_after <= 4.0, back_after

    supervisord_pid = int((ROOT / "var/run/supervisord.pid").read_text())
    run_script("stop", env)
    with pytest.raises(ProcessLookupError):
        os.kill(supervisord_pid, 0)
    for port in (3001, 3002, front):
        assert not port_open(port), port


def test_embedded_services_keep_data_across_stop_and_start(services, tmp_path):
    """With no CHATD_REDIS_URL / CHATD_MONGO_URL, scripts/start runs its own Redis and FerretDB
    under supervisord, and rooms and messages survive scripts/stop + scripts/start."""
    busy = [p for p in (6379, 27017, 3001, 3002) if port_open(p)]
    if busy:
        message = f"ports {busy} are in use; the embedded services need them"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    front = free_port()
    env = {
        k: v for k, v in services.env().items() if k not in ("CHATD_REDIS_URL", "CHATD_MONGO_URL")
    }
    env.update(CHATD_WORKERS=str(WORKERS), CHATD_FRONT_LISTEN=f"127.0.0.1:{front}")
    room = "persist-" + services.mongo_db[-8:]

    import json
    import urllib.request

    run_script("start", env)
    try:
        status = ctl(env, "status")
        assert "redis" in status and "ferretdb" in status
        for name in ("redis", "ferretdb"):
            assert "RUNNING" in status.split(name, 1)[1].splitlines()[0], status
        req = urllib.request.Request(
            f"http://127.0.0.1:{front}/api/rooms",
            data=json.dumps({"name": room}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback
            assert resp.status in (200, 201)
    finally:
        run_script("stop", env)
    assert not port_open(6379) and not port_open(27017)
    run_script("start", env)
    try:
        _, body = http_get(f"http://127.0.0.1:{front}/api/rooms")
        assert room in {r["name"] for r in json.loads(body)["rooms"]}
    finally:
        run_script("stop", env)
    assert not port_open(6379) and not port_open(27017)
