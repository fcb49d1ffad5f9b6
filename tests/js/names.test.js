// Telling apart people who share a name (static/names.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Namebook, idHash, membersOf } from "../../static/names.js";

describe("Namebook", () => {
  it("shows a name nobody else in the room has as it is", () => {
    const book = new Namebook();
    book.learn("u_a", "sam");
    book.learn("u_b", "alex");
    assert.equal(book.label("u_a", "sam"), "sam");
    assert.equal(book.label("u_b", "alex"), "alex");
  });

  it("tags two people called sam differently, and the same in every browser", () => {
    const book = new Namebook();
    assert.equal(book.learn("u_first", "sam"), false);
    assert.equal(book.learn("u_second", "sam"), true, "the first sam's label changes now");
    const first = book.label("u_first", "sam");
    const second = book.label("u_second", "sam");
    assert.match(first, /^sam · [0-9a-z]{4,}$/);
    assert.match(second, /^sam · [0-9a-z]{4,}$/);
    assert.notEqual(first, second);

    const elsewhere = new Namebook();
    elsewhere.learn("u_second", "sam");
    elsewhere.learn("u_first", "sam");
    assert.equal(elsewhere.label("u_first", "sam"), first, "order of arrival does not matter");
  });

  it("treats names that differ only in case as shared", () => {
    const book = new Namebook();
    book.learn("u_a", "Sam");
    book.learn("u_b", "sam");
    assert.notEqual(book.label("u_a", "Sam"), "Sam");
  });

  it("learns nothing twice, and one identity under its name stays untagged", () => {
    const book = new Namebook();
    assert.equal(book.learn("u_a", "sam"), false);
    assert.equal(book.learn("u_a", "sam"), false);
    assert.equal(book.label("u_a", "sam"), "sam");
  });

  it("tags an unknown identity whose name someone else has", () => {
    const book = new Namebook();
    book.learn("u_a", "sam");
    assert.notEqual(book.label("u_new", "sam"), "sam");
  });

  it("leaves names without a user id (a server without identities) as they are", () => {
    const book = new Namebook();
    book.learn("", "sam");
    book.learn("u_a", "sam");
    assert.equal(book.label("", "sam"), "sam");
  });

  it("lengthens the tag when two ids share its first characters", () => {
    const book = new Namebook();
    const ids = [];
    // Find two ids whose hashes start alike: rare, so search a little.
    const byPrefix = new Map();
    for (let i = 0; ids.length < 2; i++) {
      const id = `u_${i}`;
      const prefix = idHash(id).slice(0, 4);
      if (byPrefix.has(prefix)) ids.push(byPrefix.get(prefix), id);
      else byPrefix.set(prefix, id);
    }
    for (const id of ids) book.learn(id, "sam");
    assert.notEqual(book.label(ids[0], "sam"), book.label(ids[1], "sam"));
  });
});

describe("membersOf", () => {
  it("takes presence members, one per identity", () => {
    const members = membersOf({
      room: "r", users: ["sam"],
      members: [{ user_id: "u_a", name: "sam", role: "owner" }, { user_id: "u_b", name: "sam" }],
    });
    assert.deepEqual(members, [
      { user_id: "u_a", name: "sam", role: "owner" },
      { user_id: "u_b", name: "sam", role: "member" },
    ]);
  });

  it("falls back to the names in users, or in a join ack's online", () => {
    assert.deepEqual(membersOf({ users: ["bob", "alice", "bob"] }).map((m) => m.name),
      ["alice", "bob"]);
    assert.deepEqual(membersOf({ online: ["carol"] }),
      [{ user_id: "", name: "carol", role: "member" }]);
    assert.deepEqual(membersOf(null), []);
  });

  it("drops malformed members, and keeps one without an identity", () => {
    assert.deepEqual(membersOf({ members: [null, { user_id: "u", name: 3 }] }), []);
    assert.deepEqual(membersOf({ members: [{ user_id: null, name: "old" }] }),
      [{ user_id: "", name: "old", role: "member" }]);
  });
});
