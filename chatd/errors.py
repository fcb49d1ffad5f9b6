"""Errors a client can be told about, each with a stable code.

    ChatError
    ├── InvalidPayload   invalid_payload  (wrong type, bad characters, missing field)
    │   └── NotJson      invalid_payload  (HTTP 415: a body that does not say it is JSON)
    ├── Forbidden        forbidden        (not allowed from here, or not for this user)
    ├── TooLong          too_long
    ├── NotJoined        not_joined
    ├── NotFound         not_found
    ├── RateLimited      rate_limited
    └── Unavailable      unavailable      (MongoDB or Redis cannot be reached in time)

Anything else escaping a handler is answered as `internal` and logged with its stack.
"""

from __future__ import annotations


class ChatError(Exception):
    code = "internal"
    http_status = 500

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The payload field at fault, when there is one, so a client can point at it.
        self.field = field


class InvalidPayload(ChatError):
    code = "invalid_payload"
    http_status = 400


class NotJson(InvalidPayload):
    http_status = 415


class Forbidden(ChatError):
    code = "forbidden"
    http_status = 403


class TooLong(ChatError):
    code = "too_long"
    http_status = 400


class NotJoined(ChatError):
    code = "not_joined"
    http_status = 403


class NotFound(ChatError):
    code = "not_found"
    http_status = 404


class RateLimited(ChatError):
    code = "rate_limited"
    http_status = 429


class Unavailable(ChatError):
    code = "unavailable"
    http_status = 503
