"""REST, health, metrics and the browser client's files. Every error answers JSON."""

from __future__ import annotations

import ipaddress
import json
import logging
from datetime import datetime
from typing import Any

import tornado.web

from chatd import moderation, names, protocol
from chatd.bus import Presence
from chatd.chat import Chat
from chatd.errors import ChatError, Forbidden, InvalidPayload, NotJson, Unauthorized
from chatd.identity import Authenticator, Identity
from chatd.metrics import Metrics
from chatd.models import iso_millis
from chatd.moderation import Moderation
from chatd.origins import OriginPolicy
from chatd.store.base import Store

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ROOMS_LIST_MAX = 200
PAGE_DEFAULT, PAGE_MAX = 50, 200
# No inline script or style, no third-party origin: user text can never become code.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


def set_security_headers(handler: tornado.web.RequestHandler) -> None:
    handler.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Referrer-Policy", "no-referrer")
    handler.set_header("X-Frame-Options", "DENY")


class JsonHandler(tornado.web.RequestHandler):
    def set_default_headers(self) -> None:
        set_security_headers(self)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body, ensure_ascii=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, ChatError):
            body = protocol.fail_from(error)
        elif isinstance(error, tornado.web.HTTPError) and status_code < 500:
            body = protocol.fail("invalid_request", self._reason)
        else:
            body = protocol.fail("internal", "internal error")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ChatError):
            log.info(
                "%s %s -> %s %s", self.request.method, self.request.path, value.code, value.message
            )
        else:
            super().log_exception(typ, value, tb)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], ChatError):
            status_code = exc_info[1].http_status
        super().send_error(status_code, **kwargs)

    def json_body(self) -> dict[str, Any]:
        # A form posted by another site can only say text/plain or form encodings: requiring
        # JSON's own type makes a cross-site write need a CORS preflight, which is refused.
        kind = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise NotJson("the body must be JSON, sent as Content-Type: application/json")
        try:
            body = json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidPayload("body must be JSON (nested at most a few hundred deep)") from None
        if not isinstance(body, dict):
            raise InvalidPayload("body must be a JSON object")
        return body


class ApiHandler(JsonHandler):
    """REST calls: in sign-in mode every one carries a token (`Authorization: Bearer`); in
    open mode a token is optional and says who creates a room or reads a moderation log."""

    auth: Authenticator
    identity: Identity | None = None

    async def prepare(self) -> None:
        header = self.request.headers.get("Authorization")
        token = None
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("Authorization must be 'Bearer <token>'")
            token = token.strip()
        if token is not None or self.auth.sign_in:
            self.identity = await self.auth.identify(token)


class RoomsHandler(ApiHandler):
    def initialize(
        self,
        auth: Authenticator,
        chat: Chat,
        store: Store,
        presence: Presence,
        origins: OriginPolicy,
    ) -> None:
        self.auth = auth
        self.chat = chat
        self.store = store
        self.presence = presence
        self.origins = origins

    async def get(self) -> None:
        rooms = await self.store.list_rooms(ROOMS_LIST_MAX)
        counts = await self.presence.counts([r.name for r in rooms])
        self.write_json({"rooms": [r.to_wire(counts.get(r.name, 0)) for r in rooms]})

    async def post(self) -> None:
        # The rule sockets follow: a page of another site may not create rooms.
        if not self.origins.allows(self.request.headers.get("Origin"), self.request.host):
            raise Forbidden("requests from another site's pages are refused")
        name = protocol.parse_room(self.json_body().get("name"))
        owner = self.identity.user_id if self.identity is not None else ""
        room, created = await self.chat.create_room(name, owner)
        counts = await self.presence.counts([name])
        self.write_json(room.to_wire(counts.get(name, 0)), status=201 if created else 200)


class RoomMessagesHandler(ApiHandler):
    def initialize(self, auth: Authenticator, chat: Chat) -> None:
        self.auth = auth
        self.chat = chat

    async def get(self, raw_room: str) -> None:
        room = protocol.parse_room(raw_room)
        before = protocol.parse_before(self.get_query_argument("before", None))
        after = protocol.parse_before(self.get_query_argument("after", None), "after")
        if before is not None and after is not None:
            raise InvalidPayload("give either before or after, not both")
        limit = protocol.parse_limit(self.get_query_argument("limit", None), PAGE_DEFAULT, PAGE_MAX)
        messages, has_more = await self.chat.page(room, before, after, limit)
        self.write_json(
            {"room": room, "messages": [m.to_wire() for m in messages], "has_more": has_more}
        )


class ModerationHandler(ApiHandler):
    """A room's moderation actions, newest first, for its owner, moderators and admins."""

    def initialize(self, auth: Authenticator, mod: Moderation) -> None:
        self.auth = auth
        self.mod = mod

    async def get(self, raw_room: str) -> None:
        room = protocol.parse_room(raw_room)
        if self.identity is None:
            raise Unauthorized("the log is for moderators: send a token")
        if not moderation.may_moderate(await self.mod.role(room, self.identity)):
            raise Forbidden("only the room's owner and moderators may read its log")
        limit = protocol.parse_limit(self.get_query_argument("limit", None), PAGE_MAX, PAGE_MAX)
        entries = await self.mod.log(room, limit)
        for entry in entries:
            if isinstance(entry.get("at"), datetime):
                entry["at"] = iso_millis(entry["at"])
        self.write_json({"room": room, "actions": entries})


class HealthHandler(JsonHandler):
    def initialize(self, worker_id: int) -> None:
        self.worker_id = worker_id

    def get(self) -> None:
        self.write_json({"ok": True, "worker": self.worker_id})


class ReadyHandler(JsonHandler):
    def initialize(self, store: Store, presence: Presence, worker_id: int, state: Any) -> None:
        self.store = store
        self.presence = presence
        self.worker_id = worker_id
        self.state = state

    async def get(self) -> None:
        mongo = await self.store.ping()
        redis = await self.presence.ping()
        ready = mongo and redis and not self.state.draining
        self.write_json(
            {
                "ok": ready,
                "worker": self.worker_id,
                "mongo": mongo,
                "redis": redis,
                "draining": self.state.draining,
            },
            status=200 if ready else 503,
        )


class MetricsHandler(tornado.web.RequestHandler):
    """Only for the networks in server.metrics_allow (loopback by default): the figures say
    how busy the chat is, which is no business of its users. Behind the front door the
    address is the browser's (X-Real-IP), so the front door does not make them public."""

    def initialize(self, metrics: Metrics, allow: list[IPNetwork]) -> None:
        self.metrics = metrics
        self.allow = allow

    def get(self) -> None:
        try:
            address = ipaddress.ip_address(self.request.remote_ip or "")
        except ValueError:
            address = None
        if address is None or not any(address in net for net in self.allow):
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self.metrics.render())


class StaticHandler(tornado.web.StaticFileHandler):
    def set_default_headers(self) -> None:
        set_security_headers(self)

    async def get(self, path: str, include_body: bool = True) -> None:
        # os.stat refuses a NUL byte with ValueError, which Tornado answers with a 500.
        if "\x00" in path:
            raise tornado.web.HTTPError(400)
        await super().get(path, include_body)

    def set_extra_headers(self, path: str) -> None:
        # The page must be revalidated so a new release reaches browsers at once.
        self.set_header("Cache-Control", "no-cache")

    def get_content_type(self) -> str:
        kind = super().get_content_type()
        if kind.startswith(("text/", "application/javascript")) and "charset" not in kind:
            kind += "; charset=utf-8"
        return kind


class NotFoundHandler(JsonHandler):
    def prepare(self) -> None:
        self.set_status(404)
        self.finish(json.dumps(protocol.fail("not_found", "no such endpoint")))


class LimitsHandler(ApiHandler):
    """The limits a client checks before sending, so it never keeps copies of them."""

    def initialize(self, auth: Authenticator, settings: Any) -> None:
        self.auth = auth
        # Not self.settings: that is Tornado's application settings.
        self.chatd_settings = settings

    def get(self) -> None:
        self.write_json(
            {
                "message_chars": self.chatd_settings.limits_message_chars,
                "room_chars": protocol.ROOM_MAX_CHARS,
                "username_chars": protocol.USERNAME_MAX_CHARS,
                "name_rule": names.NAME_RULE,
                "edit_minutes": self.chatd_settings.limits_edit_minutes,
                "kick_minutes": self.chatd_settings.limits_kick_minutes,
                "sign_in": self.auth.sign_in,
            }
        )
