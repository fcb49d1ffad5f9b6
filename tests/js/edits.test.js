// Edits and deletions in a room's timeline (static/messages.js): they take seqs of their own,
// which count as seen so gap detection does not chase them, and they apply exactly as
// docs/identities.md "History entries" says.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Timeline, continues } from "../../static/messages.js";

const T0 = Date.parse("2026-03-03T10:00:00.000Z");

function msg(seq, extra = {}) {
  return {
    id: `id${seq}`, seq, user: "sam", user_id: "u_sam", room: "r", message: `m${seq}`,
    timestamp: new Date(T0 + seq * 1000).toISOString(), ...extra,
  };
}
const edit = (seq, id, message, extra = {}) => ({
  type: "edit", room: "r", id, seq, message, edited_at: new Date(T0 + seq * 1000).toISOString(),
  user_id: "u_sam", ...extra,
});
const deletion = (seq, id) => ({
  type: "delete", room: "r", id, seq, deleted_by: "u_mod", timestamp: new Date(T0).toISOString(),
});

describe("edits and deletions in the timeline", () => {
  it("count their seqs as seen, so no gap is left behind them", () => {
    const t = new Timeline();
    t.addMessage(msg(1));
    t.addMessage(msg(2));
    t.applyEdit(edit(3, "id1", "changed"));
    t.applyDelete(deletion(4, "id2"));
    t.addMessage(msg(5));
    assert.equal(t.contiguousFrom(0), 5);
    assert.equal(t.maxSeq, 5);
    assert.equal(t.count, 2 + 1, "edits and deletions are not messages");
  });

  it("count as seen even when the message they change is not loaded", () => {
    const t = new Timeline();
    t.addMessage(msg(10));
    assert.equal(t.applyEdit(edit(11, "id3", "older message, changed")), null);
    assert.equal(t.applyDelete(deletion(12, "id4")), null);
    assert.equal(t.contiguousFrom(10), 12);
    assert.equal(t.maxSeq, 12);
  });

  it("apply an edit newer than the message's own state, with an edited mark", () => {
    const t = new Timeline();
    t.addMessage(msg(1));
    const entry = t.applyEdit(edit(2, "id1", "first edit"));
    assert.equal(entry.text, "first edit");
    assert.equal(entry.editSeq, 2);
    assert.equal(entry.editedAt, new Date(T0 + 2000).toISOString());
    assert.equal(t.applyEdit(edit(3, "id1", "second edit")).text, "second edit");
  });

  it("skip an edit the message entry already shows (its seq is not above edit_seq)", () => {
    const t = new Timeline();
    // A history page: the message in its newest state, then the edits that led there.
    t.addMessage(msg(1, { message: "newest", edit_seq: 3, edited_at: "2026-03-03T10:00:03.000Z" }));
    assert.equal(t.applyEdit(edit(2, "id1", "stale")), null);
    assert.equal(t.applyEdit(edit(3, "id1", "newest, again")), null);
    assert.equal(t.byId.get("id1").text, "newest");
    assert.equal(t.contiguousFrom(0), 3);
  });

  it("skip a repeated live edit (the ack and the broadcast of one edit)", () => {
    const t = new Timeline();
    t.addMessage(msg(1));
    assert.ok(t.applyEdit(edit(2, "id1", "changed")));
    assert.equal(t.applyEdit(edit(2, "id1", "changed")), null);
  });

  it("apply a deletion always, and no edit after it", () => {
    const t = new Timeline();
    t.addMessage(msg(1, { edit_seq: 5, edited_at: "2026-03-03T10:00:05.000Z" }));
    const entry = t.applyDelete(deletion(6, "id1"));
    assert.equal(entry.deleted, true);
    assert.equal(entry.text, "");
    assert.equal(entry.user, "", "a deleted message has no author");
    assert.equal(entry.own, false);
    assert.equal(t.applyEdit(edit(7, "id1", "too late")), null);
    assert.equal(t.applyDelete(deletion(8, "id1")), null, "deleted once");
    assert.equal(t.contiguousFrom(0), 1, "2..5 were never seen");
    assert.ok(t.seen.has(6) && t.seen.has(7) && t.seen.has(8));
  });

  it("skip an edit entry of a message deleted since", () => {
    const t = new Timeline();
    t.addMessage(msg(1));
    assert.equal(t.applyEdit({ type: "edit", room: "r", id: "id1", seq: 2, deleted: true }), null);
    assert.equal(t.byId.get("id1").text, "m1");
    assert.equal(t.contiguousFrom(0), 2);
  });

  it("show a deleted message entry from history without text or author", () => {
    const t = new Timeline();
    const entry = t.addMessage({
      id: "id1", room: "r", seq: 1, timestamp: new Date(T0).toISOString(), deleted: true,
      deleted_by: "u_mod",
    }, false);
    assert.equal(entry.deleted, true);
    assert.equal(entry.text, "");
    assert.equal(entry.user, "");
  });

  it("end a group at a deleted message", () => {
    const t = new Timeline();
    const a = t.addMessage(msg(1));
    const b = t.addMessage(msg(2));
    const c = t.addMessage(msg(3));
    assert.ok(continues(a, b));
    t.applyDelete(deletion(4, "id2"));
    assert.equal(continues(a, b), false);
    assert.equal(continues(b, c), false);
  });

  it("never groups two people who share a name, nor you with a namesake", () => {
    const t = new Timeline();
    const mine = t.addMessage(msg(1, { user_id: "u_me" }), true);
    const theirs = t.addMessage(msg(2, { user_id: "u_other" }), false);
    const theirsAgain = t.addMessage(msg(3, { user_id: "u_other" }), false);
    assert.equal(continues(mine, theirs), false);
    assert.ok(continues(theirs, theirsAgain));
  });

  it("page older entries, newest first, without applying edits to messages not loaded", () => {
    const t = new Timeline();
    t.addMessage(msg(10));
    // An older page [5: msg, 6: edit of 5, 7: msg, 8: delete of 7, 9: msg], newest first.
    const page = [
      msg(5, { message: "five, edited", edit_seq: 6, edited_at: "2026-03-03T10:00:06.000Z" }),
      edit(6, "id5", "five, edited"), msg(7, { deleted: true }), deletion(8, "id7"), msg(9),
    ];
    for (const e of [...page].reverse()) {
      if (e.type === "edit") t.applyEdit(e);
      else if (e.type === "delete") t.applyDelete(e);
      else t.addMessage(e);
    }
    assert.equal(t.minSeq, 5);
    assert.equal(t.contiguousFrom(4), 10);
    assert.equal(t.byId.get("id5").text, "five, edited");
    assert.equal(t.byId.get("id7").deleted, true);
    assert.deepEqual(t.entries.map((e) => e.seq), [5, 7, 9, 10]);
  });

  it("re-decides own messages once the identity is known", () => {
    const t = new Timeline();
    t.addMessage(msg(1), false);
    t.addMessage(msg(2, { user_id: "u_other" }), false);
    const changed = t.reown((m) => m.user_id === "u_sam");
    assert.deepEqual(changed.map((e) => e.seq), [1]);
    assert.equal(t.byId.get("id1").own, true);
    assert.equal(t.byId.get("id2").own, false);
  });
});
