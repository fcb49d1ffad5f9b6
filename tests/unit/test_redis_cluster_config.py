"""Redis Cluster settings and the helpers that keep each command on one slot."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.cluster import ClusterPipeline
from redis.crc import key_slot

from chatd.bus_transport import SlotMap, StaleTopology
from chatd.config import ConfigError, load_settings
from chatd.redis_conn import queue_script
from chatd.seqs import Seqs
from chatd.store.tail import Tail


def problems(**env: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={f"CHATD_{k.upper()}": v for k, v in env.items()})
    return err.value.problems


def test_cluster_url_names_a_node_and_nodes_parse_to_host_and_port():
    settings = load_settings(
        environ={
            "CHATD_REDIS_CLUSTER": "true",
            "CHATD_REDIS_URL": "redis://127.0.0.1:7101/0",
            "CHATD_REDIS_CLUSTER_NODES": "127.0.0.1:7102, [::1]:7103,",
        }
    )
    assert settings.redis_cluster
    assert settings.cluster_nodes == [("127.0.0.1", 7102), ("::1", 7103)]


def test_cluster_with_a_database_other_than_zero_is_refused():
    found = problems(redis_cluster="true", redis_url="redis://127.0.0.1:7101/3")
    assert any(p.startswith("CHATD_REDIS_URL=") and "database 0" in p for p in found), found


def test_cluster_named_by_sentinel_or_a_socket_is_refused():
    for url in ("redis+sentinel://127.0.0.1:26379/m/0", "unix:///tmp/redis.sock"):
        found = problems(redis_cluster="true", redis_url=url)
        assert any(p.startswith("CHATD_REDIS_CLUSTER=") for p in found), found


def test_bad_cluster_nodes_are_named():
    found = problems(
        redis_cluster="true",
        redis_url="redis://127.0.0.1:7101/0",
        redis_cluster_nodes="127.0.0.1:7102,nohost,127.0.0.1:99999",
    )
    assert any(p.startswith("CHATD_REDIS_CLUSTER_NODES=") and "nohost" in p for p in found)


def test_cluster_nodes_without_cluster_are_refused():
    found = problems(redis_cluster_nodes="127.0.0.1:7102")
    assert any("only with CHATD_REDIS_CLUSTER=true" in p for p in found), found


def test_cluster_nodes_off_loopback_need_the_urls_password():
    found = problems(
        redis_cluster="true",
        redis_url="redis://127.0.0.1:7101/0",
        redis_cluster_nodes="10.0.0.5:7000",
    )
    assert any("need a password" in p for p in found), found
    load_settings(
        environ={
            "CHATD_REDIS_CLUSTER": "true",
            "CHATD_REDIS_URL": "redis://:secret@127.0.0.1:7101/0",
            "CHATD_REDIS_CLUSTER_NODES": "10.0.0.5:7000",
        }
    )


def test_every_key_of_a_room_is_on_one_slot():
    class Fake:
        def register_script(self, script):
            return script

    tail = Tail(Fake(), "chatd", keep=100, ttl_secs=600)  # type: ignore[arg-type]
    seqs = Seqs(Fake(), "chatd", lambda room: asyncio.sleep(0, 0))  # type: ignore[arg-type]
    for room in ("lobby", "a{b}c", "ünï"):
        keys = [*tail._keys(room), seqs._key(room), f"chatd:archiving:{{{room}}}"]
        assert len({key_slot(k.encode()) for k in keys}) == 1, keys


def test_a_cluster_pipeline_queues_scripts_as_eval():
    queued = []

    class Pipe(ClusterPipeline):
        def __init__(self) -> None:  # no client: only what is queued matters
            pass

        def eval(self, script, numkeys, *keys_and_args):
            queued.append((script, numkeys, keys_and_args))

    class Script:
        script = "return 1"

    asyncio.run(queue_script(Pipe(), Script(), ["k:{r}"], [2]))  # type: ignore[arg-type]
    assert queued == [("return 1", 1, ("k:{r}", 2))]


def test_slot_map_finds_the_owner_of_each_slot_and_knows_when_it_has_none():
    slots = SlotMap([("127.0.0.1", 7101)], {})
    with pytest.raises(StaleTopology):
        slots.owner("chatd:socketio")
    slots._starts = [0, 5461, 10923]
    slots._owners = [("127.0.0.1", 7101), ("127.0.0.1", 7102), ("127.0.0.1", 7103)]
    for channel in ("chatd:socketio", "chatd:socketio:room:lobby", "x"):
        slot = key_slot(channel.encode())
        want = 7101 if slot <= 5460 else 7102 if slot <= 10922 else 7103
        assert slots.owner(channel) == ("127.0.0.1", want)
