"""Which room channels are live: Redis confirms SUBSCRIBEs in order, so a channel is live only
once every SUBSCRIBE sent for it has been confirmed."""

from __future__ import annotations

from chatd.follows import Follows


async def test_a_channel_is_live_once_its_subscribe_is_confirmed():
    follows = Follows()
    send, live = follows.want("c")
    assert send and not live.is_set() and "c" in follows
    assert follows.want("c") == (True, live)  # another join before the answer: sent again
    follows.confirmed("c")
    assert not live.is_set()
    follows.confirmed("c")
    assert live.is_set()
    assert follows.want("c") == (False, live)  # live: nothing to send


async def test_subscribe_unsubscribe_subscribe_is_live_only_at_the_second_confirmation():
    follows = Follows()
    follows.want("c")
    assert follows.drop("c") and "c" not in follows
    send, live = follows.want("c")
    assert send
    follows.confirmed("c")  # the first SUBSCRIBE's answer; its UNSUBSCRIBE is still to come
    assert not live.is_set()
    follows.confirmed("c")
    assert live.is_set()


async def test_a_dropped_channel_is_forgotten_once_its_answers_are_in():
    follows = Follows()
    follows.want("c")
    follows.drop("c")
    assert follows.drop("c") is False
    follows.confirmed("c")
    assert follows.channels() == []
    follows.confirmed("c")  # a stray answer changes nothing
    assert follows.channels() == []


async def test_a_new_connection_resubscribes_everything_followed_and_nothing_is_live_till_then():
    follows = Follows()
    _, live = follows.want("a")
    follows.confirmed("a")
    follows.want("b")
    follows.drop("b")
    follows.lost()
    assert follows.channels() == ["a"]
    assert follows.resubscribing() == ["a"]
    send, again = follows.want("a")
    assert send and not again.is_set() and live.is_set()
    follows.confirmed("a")
    assert not again.is_set()  # two SUBSCRIBEs in flight: the bulk one and this one
    follows.confirmed("a")
    assert again.is_set()
