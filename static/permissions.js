// What the client offers to whom (docs/identities.md "Edit and delete", "Room moderation").
// The server decides; these rules only keep the menus from offering what it would refuse.
// Pure: no DOM.

const MODERATORS = new Set(["owner", "moderator", "admin"]);
const UNTOUCHABLE = new Set(["owner", "admin"]); // nobody moderates the owner or an admin

/** Whether someone with `role` in a room (or a deployment admin) moderates it. */
export function moderates(role, admin = false) {
  return Boolean(admin) || MODERATORS.has(role);
}

/** Whether a message sent at `sentAt` (ms) may still be edited at `now`. */
export function withinEditWindow(sentAt, editMinutes, now = Date.now()) {
  if (!Number.isFinite(sentAt) || !(editMinutes > 0)) return false;
  return now - sentAt < editMinutes * 60_000;
}

/**
 * The message menu: "edit" for your own message within the edit window, "delete" for your
 * own and, for the room's moderators, for everyone's. Deleted messages have none.
 */
export function messageActions({ own, deleted, sentAt, editMinutes, role, admin, now }) {
  if (deleted) return [];
  const actions = [];
  if (own && withinEditWindow(sentAt, editMinutes, now)) actions.push("edit");
  if (own || moderates(role, admin)) actions.push("delete");
  return actions;
}

/**
 * The menu on a person in the online list, for `me` ({userId, role, admin}) acting on
 * `target` ({user_id, role}); `muted`: the client saw a mute of theirs that still runs.
 * Answers [{action: "mute" | "unmute" | "kick" | "role", role?}].
 */
export function memberActions(me, target, muted = false) {
  if (!target || !target.user_id || target.user_id === me.userId) return [];
  if (!moderates(me.role, me.admin) || UNTOUCHABLE.has(target.role)) return [];
  const actions = [];
  // A moderator cannot mute or kick another moderator; the owner and admins can.
  const above = me.admin || me.role === "owner" || me.role === "admin";
  if (target.role !== "moderator" || above) {
    actions.push({ action: muted ? "unmute" : "mute" }, { action: "kick" });
  }
  if (above) {
    actions.push({ action: "role", role: target.role === "moderator" ? "member" : "moderator" });
  }
  return actions;
}
