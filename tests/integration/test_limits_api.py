"""GET /api/limits: the limits the browser client checks before it sends, from the settings."""

from __future__ import annotations

import json
from collections.abc import Callable

from chatd import protocol
from tests.conftest import Worker, http_get


def limits(worker: Worker) -> dict[str, object]:
    status, body = http_get(worker.url + "/api/limits")
    assert status == 200, body
    answer = json.loads(body)
    assert isinstance(answer, dict)
    return answer


def test_limits_answer_the_defaults(server: Worker) -> None:
    answer = limits(server)
    assert answer["message_chars"] == 2000
    assert answer["room_chars"] == protocol.ROOM_MAX_CHARS == 64
    assert answer["username_chars"] == protocol.USERNAME_MAX_CHARS == 32
    rule = answer["name_rule"]
    assert isinstance(rule, str) and "letter" in rule and "'_'" in rule
    _, raw = http_get(server.url + "/api/limits")
    assert raw.startswith(b"{")


def test_limits_follow_the_message_setting(start_worker: Callable[..., Worker]) -> None:
    worker = start_worker(CHATD_LIMITS_MESSAGE_CHARS="321")
    assert limits(worker)["message_chars"] == 321


def test_limits_is_read_only_json(server: Worker) -> None:
    status, body = http_get(server.url + "/api/limits/extra")
    assert status == 404
    assert json.loads(body)["ok"] is False
