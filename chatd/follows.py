"""The room channels one worker listens to, and which of them Redis has confirmed.

A worker subscribes to a room's channel when the room gets its first local member and
unsubscribes when the last one leaves. A join must not read the room's history before the
subscription is live, or a message published in between would reach the joiner neither live
nor in history; so it waits for Redis's confirmation. Redis answers commands in order, so after
SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE the channel is live only at the second confirmation: each
channel counts the SUBSCRIBEs not yet confirmed, and is live when that count is back to zero.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class _Follow:
    wanted: bool = False
    unconfirmed: int = 0  # SUBSCRIBEs sent and not yet confirmed
    live: asyncio.Event = field(default_factory=asyncio.Event)

    def not_live(self) -> None:
        if self.live.is_set():
            self.live = asyncio.Event()


class Follows:
    def __init__(self) -> None:
        self._all: dict[str, _Follow] = {}  # followed, or unfollowed with SUBSCRIBEs unanswered
        self._wanted = 0  # how many of them are followed

    def __contains__(self, channel: str) -> bool:
        follow = self._all.get(channel)
        return follow is not None and follow.wanted

    def __len__(self) -> int:
        return self._wanted

    def channels(self) -> list[str]:
        return [channel for channel, follow in self._all.items() if follow.wanted]

    def want(self, channel: str) -> tuple[bool, asyncio.Event]:
        """Follow `channel`. Returns whether a SUBSCRIBE must be sent (counted as sent), and
        the event set once the subscription is live."""
        follow = self._all.get(channel)
        if follow is None:
            follow = self._all[channel] = _Follow()
        if not follow.wanted:
            follow.wanted = True
            self._wanted += 1
        if follow.live.is_set():
            return False, follow.live
        follow.unconfirmed += 1
        return True, follow.live

    def drop(self, channel: str) -> bool:
        """Stop following `channel`; True if it was followed (an UNSUBSCRIBE must be sent)."""
        follow = self._all.get(channel)
        if follow is None or not follow.wanted:
            return False
        follow.wanted = False
        self._wanted -= 1
        follow.not_live()
        if not follow.unconfirmed:
            del self._all[channel]
        return True

    def confirmed(self, channel: str) -> None:
        """Redis confirmed one SUBSCRIBE of `channel`."""
        follow = self._all.get(channel)
        if follow is None or not follow.unconfirmed:
            return
        follow.unconfirmed -= 1
        if follow.unconfirmed:
            return
        if follow.wanted:
            follow.live.set()
        else:
            del self._all[channel]

    def resubscribing(self) -> list[str]:
        """A new subscriber connection is about to SUBSCRIBE to every followed channel at
        once: none is live until confirmed again."""
        self.lost()
        for follow in self._all.values():
            follow.unconfirmed = 1
        return list(self._all)

    def lost(self) -> None:
        """The subscriber connection is gone: nothing is live, nothing is on its way."""
        self._all = {ch: follow for ch, follow in self._all.items() if follow.wanted}
        for follow in self._all.values():
            follow.unconfirmed = 0
            follow.not_live()
