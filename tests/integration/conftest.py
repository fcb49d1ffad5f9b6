"""Fixtures shared by the integration tests that read MongoDB or need bursts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from chatd.store.mongo import MESSAGES
from tests.conftest import Services, Worker


def stored(mongo: Database[dict[str, Any]], room: str) -> list[dict[str, Any]]:
    """The room's stored messages, in seq order, read straight from MongoDB."""
    return list(mongo[MESSAGES].find({"room": room}).sort("seq", 1))


@pytest.fixture(scope="module")
def fast_server(start_worker: Callable[..., Worker]) -> Worker:
    """A worker whose per-connection rate limit does not get in the way of bursts."""
    return start_worker(CHATD_LIMITS_RATE_BURST="5000", CHATD_LIMITS_RATE_PER_MINUTE="100000")


@pytest.fixture(scope="module")
def mongo(services: Services) -> Iterator[Database[dict[str, Any]]]:
    """The run's database, read directly to check what was (not) stored."""
    client: MongoClient[dict[str, Any]] = MongoClient(services.mongo_url)
    yield client[services.mongo_db]
    client.close()
