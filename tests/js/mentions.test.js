// @name mentions (static/mentions.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { findMentions, mentions, splitMentions } from "../../static/mentions.js";

const names = (text, known) => findMentions(text, known).map((m) => m.name);

describe("findMentions", () => {
  it("finds one-word mentions", () => {
    assert.deepEqual(names("hi @bob and @Ann_2!"), ["bob", "Ann_2"]);
  });

  it("matches known names case-insensitively, spelled as known", () => {
    assert.deepEqual(names("thanks @ALICE", ["Alice"]), ["Alice"]);
  });

  it("matches known names with spaces, longest first", () => {
    assert.deepEqual(names("@Mary Ann, look", ["Mary", "Mary Ann"]), ["Mary Ann"]);
  });

  it("does not take a longer name for a shorter known one", () => {
    assert.deepEqual(names("@anna hi", ["ann"]), ["anna"]);
    assert.deepEqual(names("@bob.smith", ["bob"]), ["bob.smith"]);
  });

  it("leaves the sentence's own '.' and '-' out", () => {
    assert.deepEqual(names("thanks @bob."), ["bob"]);
    assert.deepEqual(names("thanks @bob.", ["bob"]), ["bob"]);
    assert.deepEqual(names("@bob-- see"), ["bob"]);
  });

  it("ignores e-mail addresses, lone and doubled @", () => {
    assert.deepEqual(names("mail bob@example.com"), []);
    assert.deepEqual(names("@ alone"), []);
    assert.deepEqual(names("@@bob"), []);
  });

  it("reads names in any script", () => {
    assert.deepEqual(names("привет @Дмитрий и @李雷"), ["Дмитрий", "李雷"]);
  });

  it("gives positions that cut the text exactly", () => {
    const text = "x @bob y";
    const [m] = findMentions(text);
    assert.equal(text.slice(m.start, m.end), "@bob");
  });
});

describe("mentions", () => {
  it("says whether a name is mentioned", () => {
    assert.ok(mentions("hey @alice", "Alice"));
    assert.ok(mentions("@Alice Smith: ok", "Alice Smith"));
    assert.ok(!mentions("hey @alicia", "Alice"));
    assert.ok(!mentions("alice without at", "Alice"));
    assert.ok(!mentions("hey @alice", ""));
  });
});

describe("splitMentions", () => {
  it("cuts text into plain pieces and mentions, losing nothing", () => {
    const text = "ping @bob and @Alice Smith.";
    const parts = splitMentions(text, ["Alice Smith"]);
    assert.deepEqual(parts, [
      { text: "ping " },
      { text: "@bob", mention: "bob" },
      { text: " and " },
      { text: "@Alice Smith", mention: "Alice Smith" },
      { text: "." },
    ]);
    assert.equal(parts.map((p) => p.text).join(""), text);
  });
});
