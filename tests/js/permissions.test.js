// What the menus offer (static/permissions.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { memberActions, messageActions, moderates, withinEditWindow } from "../../static/permissions.js";

const NOW = Date.parse("2026-03-03T10:00:00.000Z");
const MIN = 60_000;

describe("messageActions", () => {
  const base = { own: true, deleted: false, sentAt: NOW - MIN, editMinutes: 15, role: "member",
    admin: false, now: NOW };

  it("lets the author edit and delete within the edit window", () => {
    assert.deepEqual(messageActions(base), ["edit", "delete"]);
  });

  it("lets the author only delete after the window, or when edits are off", () => {
    assert.deepEqual(messageActions({ ...base, sentAt: NOW - 16 * MIN }), ["delete"]);
    assert.deepEqual(messageActions({ ...base, editMinutes: 0 }), ["delete"]);
  });

  it("lets moderators, owners and admins delete anyone's message, never edit it", () => {
    for (const role of ["owner", "moderator", "admin"]) {
      assert.deepEqual(messageActions({ ...base, own: false, role }), ["delete"], role);
    }
    assert.deepEqual(messageActions({ ...base, own: false, admin: true }), ["delete"]);
    assert.deepEqual(messageActions({ ...base, own: false }), []);
  });

  it("offers nothing on a deleted message", () => {
    assert.deepEqual(messageActions({ ...base, deleted: true, role: "owner" }), []);
  });
});

describe("withinEditWindow", () => {
  it("is open for editMinutes after sending", () => {
    assert.equal(withinEditWindow(NOW - 14 * MIN, 15, NOW), true);
    assert.equal(withinEditWindow(NOW - 15 * MIN, 15, NOW), false);
    assert.equal(withinEditWindow(Number.NaN, 15, NOW), false);
  });
});

describe("memberActions", () => {
  const sam = { user_id: "u_sam", name: "sam", role: "member" };
  const mod = { user_id: "u_mod", name: "mo", role: "moderator" };
  const owner = { user_id: "u_own", name: "olga", role: "owner" };

  it("gives the owner every action on a member", () => {
    const me = { userId: "u_own", role: "owner", admin: false };
    assert.deepEqual(memberActions(me, sam), [
      { action: "mute" }, { action: "kick" }, { action: "role", role: "moderator" },
    ]);
    assert.deepEqual(memberActions(me, mod).at(-1), { action: "role", role: "member" });
  });

  it("lets a moderator mute and kick members but not other moderators, nor name any", () => {
    const me = { userId: "u_mod2", role: "moderator", admin: false };
    assert.deepEqual(memberActions(me, sam), [{ action: "mute" }, { action: "kick" }]);
    assert.deepEqual(memberActions(me, mod), []);
  });

  it("offers unmute for someone seen muted", () => {
    const me = { userId: "u_own", role: "owner", admin: false };
    assert.deepEqual(memberActions(me, sam, true)[0], { action: "unmute" });
  });

  it("offers nothing on yourself, the owner or an admin, nor to plain members", () => {
    const admin = { userId: "u_adm", role: "member", admin: true };
    assert.deepEqual(memberActions(admin, owner), []);
    assert.deepEqual(memberActions(admin, { ...sam, role: "admin" }), []);
    assert.deepEqual(memberActions({ userId: "u_sam", role: "owner" }, sam), []);
    assert.deepEqual(memberActions({ userId: "u_x", role: "member" }, sam), []);
    assert.equal(memberActions(admin, sam).length, 3, "an admin moderates every room");
  });

  it("knows who moderates", () => {
    assert.equal(moderates("member"), false);
    assert.equal(moderates("member", true), true);
    assert.equal(moderates("moderator"), true);
  });
});
