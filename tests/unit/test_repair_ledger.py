"""The per-room ledger of gap repair: messages after a gap wait for it, in order; a second
delivery of a seq is dropped; what the store shows was never stored is not waited for."""

from __future__ import annotations

from chatd.repair import Ledger


def deliver(ledger: Ledger, seq: int) -> list[str]:
    """What admitting `seq` delivers now ([] for a duplicate too)."""
    return ledger.admit(seq, f"m{seq}") or []


def test_in_order_messages_go_straight_through():
    ledger = Ledger("r", 10)
    assert [deliver(ledger, s) for s in (11, 12, 13)] == [["m11"], ["m12"], ["m13"]]
    assert not ledger.gap and ledger.contiguous == 13


def test_a_message_after_a_gap_waits_and_goes_out_in_order_when_the_gap_fills():
    ledger = Ledger("r", 10)
    assert deliver(ledger, 12) == [] and deliver(ledger, 13) == []
    assert ledger.gap
    assert deliver(ledger, 11) == ["m11", "m12", "m13"]
    assert not ledger.gap


def test_a_second_delivery_is_dropped_held_or_delivered():
    ledger = Ledger("r", 0)
    deliver(ledger, 1)
    deliver(ledger, 3)
    assert deliver(ledger, 1) == [] and deliver(ledger, 3) == []


def test_seqs_the_store_lacks_are_skipped_and_what_waited_goes_out():
    ledger = Ledger("r", 0)
    deliver(ledger, 1)
    deliver(ledger, 4)
    deliver(ledger, 6)
    assert ledger.skip_to(3) == ["m4"]  # 2 and 3 were never stored
    assert ledger.release_all() == ["m6"]  # 5 neither, as far as anyone knows
    assert not ledger.held and ledger.contiguous == 6
    assert deliver(ledger, 5) == ["m5"]  # still being written after all: out of turn, once
    assert deliver(ledger, 5) == []


def test_a_message_older_than_the_join_is_delivered_once():
    ledger = Ledger("r", 20)  # the joiner's history went up to 20; 18 was still being stored
    assert deliver(ledger, 18) == ["m18"]
    assert deliver(ledger, 18) == []
    assert deliver(ledger, 21) == ["m21"]
