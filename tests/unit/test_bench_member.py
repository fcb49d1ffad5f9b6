"""The load generator's per-member bookkeeping for stacks without seqs: loss, duplicates and
order per sender, from the counter each sender writes into its messages."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from benchlib.member import Member, NodeMember, node_key


def test_every_message_of_every_sender_received_once_in_order_counts_nothing():
    member = NodeMember("r")
    sent = [node_key(sender, n) for n in range(50) for sender in (3, 7, 900)]
    assert all(member.receive(key) for key in sent)
    assert (member.missing(sent), member.duplicates, member.out_of_order) == (0, 0, 0)


def test_loss_duplicates_and_reordering_are_counted_per_sender():
    member = NodeMember("r")
    for key in (node_key(1, 0), node_key(2, 0), node_key(1, 2), node_key(1, 1), node_key(2, 0)):
        member.receive(key)
    expected = [node_key(1, n) for n in range(4)] + [node_key(2, 0), node_key(3, 0)]
    assert member.missing(expected) == 2  # 1:3 and all of sender 3
    assert member.duplicates == 1
    assert member.out_of_order == 1  # 1:1 after 1:2; 2:0 then 1:2 is not an inversion


def test_a_rejoin_history_fills_gaps_without_counting_duplicates_or_disorder():
    member = Member("r", 10)
    assert member.receive(11) and member.receive(14)  # 12 and 13 missed while away
    assert [member.replay(seq) for seq in (11, 12, 13, 14)] == [False, True, True, False]
    assert not member.receive(13)  # its live copy, after the history: not a duplicate
    assert not member.receive(13)  # a second live copy is one
    assert (member.missing([11, 12, 13, 14]), member.duplicates, member.out_of_order) == (0, 1, 0)
