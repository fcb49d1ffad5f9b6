// Ordering and de-duplication of a room's timeline (static/messages.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { GROUP_GAP_MS, Timeline, continues, startsDay } from "../../static/messages.js";

const T0 = Date.parse("2026-03-03T10:00:00.000Z");

function msg(seq, { user = "bob", at = T0 + seq * 1000, id = `id${seq}`, clientId } = {}) {
  return {
    id, seq, user, room: "r", message: `m${seq}`, timestamp: new Date(at).toISOString(),
    client_id: clientId,
  };
}

const iso = (ms) => new Date(ms).toISOString();
const order = (t) => t.entries.map((e) => (e.kind === "msg" ? e.seq : `${e.kind}:${e.text}`));

describe("Timeline", () => {
  it("puts the first message of an empty room below the notices before it", () => {
    const t = new Timeline();
    t.addNotice("bob joined the room", iso(T0));
    t.addMessage(msg(1, { at: T0 + 4000 }), true);
    assert.deepEqual(order(t), ["notice:bob joined the room", 1]);
  });

  it("keeps seq order whatever order messages arrive in", () => {
    const t = new Timeline();
    for (const seq of [3, 1, 5, 2, 4]) t.addMessage(msg(seq));
    assert.deepEqual(order(t), [1, 2, 3, 4, 5]);
    assert.equal(t.minSeq, 1);
    assert.equal(t.maxSeq, 5);
    assert.equal(t.count, 5);
  });

  it("shows a message once, by id or by seq", () => {
    const t = new Timeline();
    assert.ok(t.addMessage(msg(1)));
    assert.equal(t.addMessage(msg(1)), null);
    assert.equal(t.addMessage(msg(1, { id: "other" })), null);
    assert.equal(t.addMessage(msg(2, { id: "id1" })), null);
    assert.equal(t.count, 1);
  });

  it("puts an older page on top, above notices", () => {
    const t = new Timeline();
    t.addMessage(msg(51));
    t.addNotice("carol joined the room", iso(T0 + 60_000));
    for (let seq = 50; seq >= 48; seq--) t.addMessage(msg(seq));
    assert.deepEqual(order(t), [48, 49, 50, 51, "notice:carol joined the room"]);
  });

  it("fills a gap before a notice that came after the missing messages", () => {
    const t = new Timeline();
    t.addMessage(msg(1));
    t.addMessage(msg(4, { at: T0 + 10_000 }));
    t.addNotice("dan left the room", iso(T0 + 11_000));
    t.addMessage(msg(2, { at: T0 + 5_000 }));
    t.addMessage(msg(3, { at: T0 + 6_000 }));
    assert.deepEqual(order(t), [1, 2, 3, 4, "notice:dan left the room"]);
  });

  it("keeps pending messages at the bottom, below notices and later messages", () => {
    const t = new Timeline();
    t.addMessage(msg(1));
    t.addPending("draft", "alice", "c1");
    t.addNotice("bob joined the room", iso(T0 + 5_000));
    t.addMessage(msg(2, { at: T0 + 6_000 }));
    assert.deepEqual(order(t), [1, "notice:bob joined the room", 2, "pending:draft"]);
  });

  it("finds pending messages by client_id and removes them", () => {
    const t = new Timeline();
    const p = t.addPending("draft", "alice", "c1");
    assert.equal(t.pending("c1"), p);
    assert.ok(t.remove(p));
    assert.equal(t.pending("c1"), undefined);
    assert.equal(t.remove(p), false);
    assert.deepEqual(t.entries, []);
  });

  it("knows how far the seqs are contiguous", () => {
    const t = new Timeline();
    for (const seq of [1, 2, 3, 5]) t.addMessage(msg(seq));
    assert.equal(t.contiguousFrom(0), 3);
    assert.equal(t.contiguousFrom(3), 3);
    assert.equal(t.contiguousFrom(4), 5);
  });

  it("finds the first unread message someone else wrote", () => {
    const t = new Timeline();
    t.addMessage(msg(1));
    t.addMessage(msg(2, { user: "alice" }), true);
    t.addMessage(msg(3));
    t.addMessage(msg(4));
    assert.equal(t.firstUnreadAfter(1).seq, 3);
    assert.equal(t.firstUnreadAfter(3).seq, 4);
    assert.equal(t.firstUnreadAfter(4), null);
  });

  it("updates a message in place by id", () => {
    const t = new Timeline();
    t.addMessage(msg(1));
    const entry = t.update("id1", { message: "edited" });
    assert.equal(entry.text, "edited");
    assert.equal(t.update("nope", { message: "x" }), null);
  });
});

describe("grouping and days", () => {
  const entry = (user, time, kind = "msg") => ({ kind, user, time });

  it("groups one person's messages a short while apart", () => {
    assert.ok(continues(entry("bob", T0), entry("bob", T0 + 1000)));
    assert.ok(!continues(entry("bob", T0), entry("ann", T0 + 1000)));
    assert.ok(!continues(entry("bob", T0), entry("bob", T0 + GROUP_GAP_MS)));
    assert.ok(!continues(entry("bob", T0, "notice"), entry("bob", T0 + 1000)));
    assert.ok(!continues(undefined, entry("bob", T0)));
  });

  it("starts a new day at local midnight", () => {
    const evening = new Date(2026, 2, 3, 23, 59).getTime();
    const morning = new Date(2026, 2, 4, 0, 1).getTime();
    assert.ok(startsDay(undefined, entry("bob", evening)));
    assert.ok(startsDay(entry("bob", evening), entry("bob", morning)));
    assert.ok(!startsDay(entry("bob", evening - 3600_000), entry("bob", evening)));
    assert.ok(!continues(entry("bob", evening), entry("bob", morning)));
  });
});
