"""What one room member received: one counter per room seq, so loss, duplicates and
out-of-order are exact and cost a byte per message instead of a set entry."""

from __future__ import annotations

from collections.abc import Iterable


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

    def missing(self, expected: Iterable[int]) -> int:
        counts, base, size = self.counts, self.base_seq + 1, len(self.counts)
        lost = 0
        for seq in expected:
            index = seq - base
            if index >= 0 and (index >= size or not counts[index]):
                lost += 1
        return lost
