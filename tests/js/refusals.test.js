// Refusals in words (static/refusals.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { explain, whenText } from "../../static/refusals.js";

const NOW = new Date("2026-03-03T10:00:00.000Z");
const LOCALE = "en-GB";

describe("explain", () => {
  const opts = { now: NOW, locale: LOCALE, editMinutes: 15 };

  it("says till when a mute or a kick lasts", () => {
    const until = "2026-03-03T10:42:00.000Z";
    const at = whenText(until, NOW, LOCALE);
    assert.match(at, /\d{2}:\d{2}/);
    assert.equal(explain({ code: "muted", until }, "send", opts),
      `You are muted in this room until ${at}.`);
    assert.equal(explain({ code: "kicked", until }, "join", opts),
      `You were removed from this room; you can join it again at ${at}.`);
    assert.match(explain({ code: "muted" }, "send", opts), /muted in this room/);
  });

  it("explains forbidden by what was tried", () => {
    assert.match(explain({ code: "forbidden" }, "edit", opts), /within 15 minutes/);
    assert.match(explain({ code: "forbidden" }, "delete", opts), /moderators/);
    assert.match(explain({ code: "forbidden" }, "moderate", opts), /owner and moderators/);
    assert.match(explain({ code: "forbidden" }, "role", opts), /only the room's owner/);
    assert.match(explain({ code: "forbidden" }, "", opts), /not allowed/);
  });

  it("explains unauthorized and not_found", () => {
    assert.match(explain({ code: "unauthorized", message: "bad" }), /sign in again/);
    assert.match(explain({ code: "not_found" }, "edit"), /no longer exists/);
  });

  it("keeps the server's words for anything else", () => {
    assert.equal(explain({ code: "too_long", message: "the message is too long" }),
      "the message is too long");
    assert.equal(explain(null), "The server refused it.");
  });

  it("writes a time on another day in full", () => {
    const text = whenText("2026-03-05T10:00:00.000Z", NOW, LOCALE);
    assert.match(text, /2026/);
    assert.equal(whenText("not a date", NOW, LOCALE), "");
  });
});
