// The server's limits and the checks made with them (static/limits.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  DEFAULT_LIMITS, charCount, counter, loadLimits, nameProblem, parseLimits,
} from "../../static/limits.js";

describe("parseLimits", () => {
  it("takes what the server says", () => {
    const limits = parseLimits({
      message_chars: 500, room_chars: 40, username_chars: 20, name_rule: "Letters only.",
    });
    assert.deepEqual(limits, {
      message_chars: 500, room_chars: 40, username_chars: 20, name_rule: "Letters only.",
      edit_minutes: DEFAULT_LIMITS.edit_minutes,
    });
  });

  it("takes the edit window, where 0 means messages cannot be edited", () => {
    assert.equal(parseLimits({ edit_minutes: 30 }).edit_minutes, 30);
    assert.equal(parseLimits({ edit_minutes: 0 }).edit_minutes, 0);
    assert.equal(parseLimits({ edit_minutes: -5 }).edit_minutes, DEFAULT_LIMITS.edit_minutes);
    assert.equal(parseLimits({ edit_minutes: "15" }).edit_minutes, DEFAULT_LIMITS.edit_minutes);
  });

  it("falls back to the defaults for anything missing or malformed", () => {
    assert.deepEqual(parseLimits(null), DEFAULT_LIMITS);
    assert.deepEqual(parseLimits({ message_chars: "9", room_chars: -1, name_rule: " " }),
      DEFAULT_LIMITS);
  });
});

describe("loadLimits", () => {
  it("asks api/limits", async () => {
    let asked = "";
    const fetchFn = async (url) => {
      asked = url;
      return { ok: true, json: async () => ({ message_chars: 120 }) };
    };
    const limits = await loadLimits(fetchFn);
    assert.equal(asked, "api/limits");
    assert.equal(limits.message_chars, 120);
    assert.equal(limits.room_chars, DEFAULT_LIMITS.room_chars);
  });

  it("uses the defaults when the server fails or cannot be reached", async () => {
    assert.deepEqual(await loadLimits(async () => ({ ok: false })), DEFAULT_LIMITS);
    assert.deepEqual(await loadLimits(async () => {
      throw new TypeError("offline");
    }), DEFAULT_LIMITS);
  });
});

describe("nameProblem", () => {
  it("checks only emptiness and length; the server judges the characters", () => {
    assert.match(nameProblem("", "name", 32), /enter a name/);
    assert.equal(nameProblem("-dash", "name", 32), "");
    assert.equal(nameProblem("_x", "name", 32), "");
    assert.match(nameProblem("n".repeat(33), "name", 32), /at most 32 characters/);
    assert.match(nameProblem("n".repeat(33), "name", 32), /“n{33}”/);
  });

  it("counts characters as the server does (code points)", () => {
    assert.equal(charCount("😀😀"), 2);
    assert.equal(nameProblem("😀".repeat(32), "name", 32), "");
  });
});

describe("counter", () => {
  it("stays hidden far from the limit", () => {
    assert.deepEqual(counter("x".repeat(1000), 2000),
      { length: 1000, left: 1000, over: false, shown: false, label: "" });
  });

  it("counts down near the limit", () => {
    const state = counter("x".repeat(1850), 2000);
    assert.ok(state.shown && !state.over);
    assert.equal(state.label, "150 characters left");
    assert.equal(counter("x".repeat(1999), 2000).label, "1 character left");
  });

  it("says how much is over", () => {
    const state = counter("x".repeat(2001), 2000);
    assert.ok(state.over);
    assert.equal(state.label, "1 character too many");
    assert.equal(counter("x".repeat(2010), 2000).label, "10 characters too many");
  });

  it("warns from a sensible distance with small limits", () => {
    assert.ok(counter("y".repeat(100), 120).shown);
    assert.ok(!counter("y".repeat(99), 120).shown);
  });
});
