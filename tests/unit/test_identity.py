"""Tokens: open-mode identities chatd issues, and sign-in tokens a deployment's login issues."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest

from chatd.config import Settings
from chatd.errors import Unauthorized
from chatd.identity import OPEN_AUDIENCE, Authenticator, deployment_secret

SECRET = "s" * 40


def authenticator(**changes: object) -> Authenticator:
    settings = dataclasses.replace(Settings(), auth_token_secret=SECRET, **changes)
    return Authenticator(settings)


def test_workers_starting_together_share_one_secret(tmp_path: Path):
    path = tmp_path / "var" / "token.secret"
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: deployment_secret(path), range(16)))
    assert len(secrets) == 1
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert [p.name for p in path.parent.iterdir()] == ["token.secret"]


async def test_an_open_identity_comes_back_with_its_token():
    auth = authenticator()
    fresh = await auth.identify(None)
    assert fresh.user_id.startswith("u_") and not fresh.presented
    again = await auth.identify(fresh.token)
    assert again.user_id == fresh.user_id and again.presented and again.name is None
    assert again.token == fresh.token


async def test_an_open_token_near_its_expiry_is_renewed():
    auth = authenticator()
    now = int(time.time())
    old = jwt.encode(
        {"sub": "u_old", "aud": OPEN_AUDIENCE, "iat": now, "exp": now + 86_400}, SECRET
    )
    renewed = await auth.identify(old)
    assert renewed.user_id == "u_old" and renewed.token != old
    claims = jwt.decode(renewed.token, SECRET, algorithms=["HS256"], audience=OPEN_AUDIENCE)
    assert claims["exp"] > now + 300 * 86_400


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "u_1", "exp": 2**33},  # no name
        {"sub": "u_1", "name": "", "exp": 2**33},
        {"sub": "", "name": "ann", "exp": 2**33},
        {"sub": "u\n1", "name": "ann", "exp": 2**33},
        {"sub": "u_1", "name": "ann"},  # no expiry
        {"sub": {"$ne": 1}, "name": "ann", "exp": 2**33},
    ],
)
async def test_sign_in_tokens_must_name_a_usable_identity(claims):
    auth = authenticator(auth_secret="L" * 40)
    with pytest.raises(Unauthorized):
        await auth.identify(jwt.encode(claims, "L" * 40))


async def test_sign_in_takes_name_and_roles_from_the_token_and_refuses_open_tokens():
    auth = authenticator(auth_secret="L" * 40)
    with pytest.raises(Unauthorized):
        await auth.identify(None)
    token = jwt.encode({"sub": "42", "name": "Ann", "roles": ["admin"], "exp": 2**33}, "L" * 40)
    ann = await auth.identify(token)
    assert (ann.user_id, ann.name, ann.admin, ann.roles) == ("42", "Ann", True, ["admin"])
    open_one = await authenticator().identify(None)
    with pytest.raises(Unauthorized):
        await auth.identify(open_one.token)


async def test_audience_and_issuer_are_checked_when_set():
    auth = authenticator(auth_secret="L" * 40, auth_audience="chat", auth_issuer="login")
    good = {"sub": "1", "name": "a", "exp": 2**33, "aud": "chat", "iss": "login"}
    assert (await auth.identify(jwt.encode(good, "L" * 40))).user_id == "1"
    for wrong in ({"aud": "mail"}, {"iss": "elsewhere"}):
        with pytest.raises(Unauthorized):
            await auth.identify(jwt.encode({**good, **wrong}, "L" * 40))
    # alg "none" is never accepted.
    unsigned = jwt.encode(good, None, algorithm="none")
    with pytest.raises(Unauthorized):
        await auth.identify(unsigned)
