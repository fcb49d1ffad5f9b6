"""What one room member received: one counter per room seq, so loss, duplicates and
out-of-order are exact and cost a byte per message instead of a set entry."""

from __future__ import annotations

from collections.abc import Iterable

REPLAYED = 254  # a count slot meaning "received in a re-join's history, not live yet"


class Member:
    __slots__ = ("base_seq", "counts", "duplicates", "last_seq", "out_of_order", "room")

    def __init__(self, room: str, base_seq: int) -> None:
        self.room = room
        self.base_seq = base_seq  # last_seq in the join ack: everything after it is expected
        self.counts = bytearray()
        self.last_seq = base_seq
        self.duplicates = 0
        self.out_of_order = 0

    def receive(self, seq: int) -> bool:
        """Record one delivery of `seq`; True the first time this member sees it."""
        index = seq - self.base_seq - 1
        if index < 0:
            # Sent before this member joined (a history overlap), so not part of the test.
            return False
        counts = self.counts
        if index >= len(counts):
            counts.extend(bytes(index - len(counts) + 256))
        seen = counts[index]
        if seen == REPLAYED:
            # Came first in a re-join's history; the live copy is the one the protocol allows
            # (a message sent while joining arrives live, in the history, or both).
            counts[index] = 1
            return False
        if seen < 255:
            counts[index] = seen + 1
        if seen:
            self.duplicates += 1
            return False
        if seq < self.last_seq:
            self.out_of_order += 1
        else:
            self.last_seq = seq
        return True

    def replay(self, seq: int) -> bool:
        """Record `seq` from the history of a re-join (`since`): True when it was missing.
        Not a duplicate when already seen, not out of order when older than the newest."""
        index = seq - self.base_seq - 1
        if index < 0:
            return False
        counts = self.counts
        if index >= len(counts):
            counts.extend(bytes(index - len(counts) + 256))
        if counts[index]:
            return False
        counts[index] = REPLAYED
        self.last_seq = max(self.last_seq, seq)
        return True

    def missing(self, expected: Iterable[int]) -> int:
        counts, base, size = self.counts, self.base_seq + 1, len(self.counts)
        lost = 0
        for seq in expected:
            index = seq - base
            if index >= 0 and (index >= size or not counts[index]):
                lost += 1
        return lost


SENDER_SHIFT = 20  # a NodeMember key is sender << SENDER_SHIFT | that sender's counter


def node_key(sender: int, n: int) -> int:
    return sender << SENDER_SHIFT | n


class NodeMember:
    """A member of a room on a stack without seqs: one Member-like counter per sender, keyed
    by the counter each sender puts in its messages; order is checked per sender."""

    __slots__ = ("duplicates", "out_of_order", "room", "senders")

    def __init__(self, room: str) -> None:
        self.room = room
        self.senders: dict[int, Member] = {}
        self.duplicates = 0
        self.out_of_order = 0

    def receive(self, key: int) -> bool:
        sender = key >> SENDER_SHIFT
        member = self.senders.get(sender)
        if member is None:
            member = self.senders[sender] = Member(self.room, -1)
        dups, ooo = member.duplicates, member.out_of_order
        first = member.receive(key & ((1 << SENDER_SHIFT) - 1))
        self.duplicates += member.duplicates - dups
        self.out_of_order += member.out_of_order - ooo
        return first

    def missing(self, expected: Iterable[int]) -> int:
        lost = 0
        for key in expected:
            member = self.senders.get(key >> SENDER_SHIFT)
            n = key & ((1 << SENDER_SHIFT) - 1)
            if member is None or member.missing((n,)):
                lost += 1
        return lost
