"""Who may moderate whom (docs/identities.md, Room moderation)."""

from __future__ import annotations

import pytest

from chatd.errors import Forbidden
from chatd.moderation import (
    ADMIN,
    MEMBER,
    MODERATOR,
    OWNER,
    check_may_act_on,
    check_may_set_roles,
    role_of,
)
from chatd.store.base import Owners

ROOM = Owners(owner="u_o", moderators=frozenset({"u_m"}))


def test_roles_come_from_the_room_and_the_token():
    assert role_of(ROOM, "u_o") == OWNER
    assert role_of(ROOM, "u_m") == MODERATOR
    assert role_of(ROOM, "u_x") == MEMBER
    assert role_of(ROOM, "u_x", admin=True) == ADMIN
    # A room from before identities has no owner: an empty user id is nobody's.
    assert role_of(Owners("", frozenset()), "") == MEMBER


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (OWNER, MEMBER, True),
        (OWNER, MODERATOR, True),
        (ADMIN, MODERATOR, True),
        (MODERATOR, MEMBER, True),
        (MODERATOR, MODERATOR, False),
        (MODERATOR, OWNER, False),
        (ADMIN, OWNER, False),
        (MEMBER, MEMBER, False),
    ],
)
def test_who_may_mute_or_kick_whom(actor, target, allowed):
    if allowed:
        check_may_act_on(actor, target, self_target=False)
    else:
        with pytest.raises(Forbidden):
            check_may_act_on(actor, target, self_target=False)


def test_nobody_moderates_themselves_and_only_owners_and_admins_name_moderators():
    with pytest.raises(Forbidden):
        check_may_act_on(OWNER, MEMBER, self_target=True)
    check_may_set_roles(OWNER)
    check_may_set_roles(ADMIN)
    for role in (MODERATOR, MEMBER):
        with pytest.raises(Forbidden):
            check_may_set_roles(role)
