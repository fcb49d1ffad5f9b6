"""The origin rule: exact origins, own host only when a rebinding attack cannot forge it."""

from __future__ import annotations

import pytest

from chatd.origins import OriginPolicy

POLICY = OriginPolicy(["https://chat.example.com"], local_names={"localhost", "chatbox"})


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        (None, "anything"),
        ("http://127.0.0.1:3000", "127.0.0.1:3000"),
        ("http://192.168.1.20:3000", "192.168.1.20:3000"),
        ("http://[::1]:3000", "[::1]:3000"),
        ("http://localhost:3000", "localhost:3000"),
        ("http://chatbox:3000", "chatbox:3000"),
        ("https://chat.example.com", "chat.example.com"),
        ("https://chat.example.com", "10.0.0.5:3000"),  # listed, behind a balancer
    ],
)
def test_allowed(origin, host):
    assert POLICY.allows(origin, host)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://evil.example:3000", "evil.example:3000"),  # DNS rebinding
        ("http://evil.example", "127.0.0.1:3000"),
        ("HTTP://127.0.0.1:3000", "127.0.0.1:3000"),
        ("http://127.0.0.1:3000/", "127.0.0.1:3000"),
        ("http://127.0.0.1:3001", "127.0.0.1:3000"),
        ("null", "127.0.0.1:3000"),
        ("https://chat.example.com.evil.example", "chat.example.com.evil.example"),
        ("http://127.0.0.1:3000", None),
    ],
)
def test_refused(origin, host):
    assert not POLICY.allows(origin, host)
