"""Errors a client can be told about, each with a stable code.

    ChatError
    ├── InvalidPayload   invalid_payload  (wrong type, bad characters, missing field)
    │   └── NotJson      invalid_payload  (HTTP 415: a body that does not say it is JSON)
    ├── Unauthorized     unauthorized     (no valid token where one is required, or a bad one)
    ├── Forbidden        forbidden        (not allowed from here, or not for this user)
    ├── Muted            muted            (sending while muted in the room; `until`)
    ├── Kicked           kicked           (joining a room one was kicked from; `until`)
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

    def __init__(self, message: str, field: str | None = None, until: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The payload field at fault, when there is one, so a client can point at it.
        self.field = field
        # When a time-limited refusal (muted, kicked) ends, ISO-8601 UTC.
        self.until = until


class InvalidPayload(ChatError):
    code = "invalid_payload"
    http_status = 400


class NotJson(InvalidPayload):
    http_status = 415


class Unauthorized(ChatError):
    code = "unauthorized"
    http_status = 401


class Muted(ChatError):
    code = "muted"
    http_status = 403


class Kicked(ChatError):
    code = "kicked"
    http_status = 403


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
