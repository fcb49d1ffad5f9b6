"""Who a connection is: identities, and the signed tokens that carry them (docs/identities.md).

Open mode (the default): chatd issues its own tokens, HS256 JWTs for the audience
`chatd:open` signed with a per-deployment secret, so a client that keeps its token stays one
identity across tabs and reconnects. Sign-in mode (`auth.secret` or `auth.jwks_url`): tokens
come from the deployment's login, are required, and fix the display name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from chatd import protocol
from chatd.config import Settings
from chatd.errors import ChatError, Unauthorized, Unavailable

log = logging.getLogger(__name__)

OPEN_AUDIENCE = "chatd:open"
TOKEN_MAX_CHARS = 8192
# An open-mode token this close to expiry is replaced by a fresh one in `session`.
RENEW_BEFORE_SECS = 30 * 86_400
JWKS_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
JWKS_CACHE_SECS = 300


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    token: str
    # The name a sign-in token fixes; None in open mode, where each join names itself.
    name: str | None = None
    admin: bool = False
    # The client presented this token: other connections may act as the same identity, so
    # what is counted per identity is counted across them (chatd/shared_limits.py).
    presented: bool = False

    @property
    def roles(self) -> list[str]:
        return ["admin"] if self.admin else []


def new_user_id() -> str:
    return "u_" + secrets.token_urlsafe(15)


def deployment_secret(path: Path) -> str:
    """The open-mode signing secret in `path`, made there by the first worker to ask. Made
    aside and linked into place, so workers starting together all read the same one."""
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48) + "\n")
    try:
        os.link(aside, path)
    except FileExistsError:
        pass  # another worker was first: its secret is the deployment's
    finally:
        aside.unlink()
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable secret (under 32 characters)")
    return secret


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.sign_in = settings.sign_in
        self._open_secret = ""
        self._jwks: jwt.PyJWKClient | None = None
        if settings.auth_jwks_url:
            self._jwks = jwt.PyJWKClient(
                settings.auth_jwks_url, cache_keys=True, lifespan=JWKS_CACHE_SECS, timeout=5
            )
        if not self.sign_in:
            self._open_secret = settings.auth_token_secret or deployment_secret(
                settings.token_secret_path
            )

    def issue(self, user_id: str) -> str:
        now = int(time.time())
        claims = {
            "sub": user_id,
            "aud": OPEN_AUDIENCE,
            "iat": now,
            "exp": now + self._settings.auth_token_days * 86_400,
        }
        return jwt.encode(claims, self._open_secret, algorithm="HS256")

    async def identify(self, token: Any) -> Identity:
        """The identity a handshake or REST call acts as; Unauthorized when its token is
        missing where one is required, or does not verify."""
        if token is None or token == "":
            if self.sign_in:
                raise Unauthorized("sign in first: this chat requires a token")
            user_id = new_user_id()
            return Identity(user_id=user_id, token=self.issue(user_id))
        if not isinstance(token, str) or len(token) > TOKEN_MAX_CHARS:
            raise Unauthorized("the token is not a token")
        claims = await self._verify(token)
        try:
            user_id = protocol.parse_user_id(claims.get("sub"), "sub")
        except ChatError as exc:
            raise Unauthorized(f"the token's subject is unusable: {exc.message}") from None
        if not self.sign_in:
            renewed = token
            if int(claims.get("exp", 0)) - time.time() < RENEW_BEFORE_SECS:
                renewed = self.issue(user_id)
            return Identity(user_id=user_id, token=renewed, presented=True)
        try:
            name = protocol.parse_username(claims.get("name"))
        except ChatError as exc:
            raise Unauthorized(f"the token's name is unusable: {exc.message}") from None
        roles = claims.get("roles")
        admin = isinstance(roles, list) and "admin" in roles
        return Identity(user_id=user_id, token=token, name=name, admin=admin, presented=True)

    async def _verify(self, token: str) -> dict[str, Any]:
        settings = self._settings
        try:
            audience: str | None = settings.auth_audience or None
            issuer: str | None = settings.auth_issuer or None
            if not self.sign_in:
                key: Any = self._open_secret
                algorithms, audience, issuer = ["HS256"], OPEN_AUDIENCE, None
            elif self._jwks is not None:
                # PyJWKClient fetches with urllib, which blocks: off the event loop.
                signing = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
                key, algorithms = signing.key, JWKS_ALGORITHMS
            else:
                key, algorithms = settings.auth_secret, ["HS256"]
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=audience,
                issuer=issuer,
                options={"require": ["exp", "sub"], "verify_aud": audience is not None},
            )
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("signing keys unreachable: %s", exc)
            raise Unavailable("the sign-in keys cannot be fetched; try again") from None
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired; sign in again") from None
        except (jwt.PyJWTError, ValueError) as exc:
            raise Unauthorized(f"the token was refused ({type(exc).__name__})") from None
        return claims
