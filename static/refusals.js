// The server's refusals in words a person understands, and what to do about them. The
// server's own `message` is kept for codes the client has nothing better to say about.
// Pure: no DOM.
import { clockTime, dayKey, fullTime } from "./time.js";

/** "10:42" today, else the full date and time. */
export function whenText(iso, now = new Date(), locale = undefined) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return dayKey(date) === dayKey(now) ? clockTime(date, locale) : fullTime(date, locale);
}

const FORBIDDEN = {
  edit: (o) => "You can't edit this message: only its author can, " +
    `within ${o.editMinutes || 15} minutes of sending it.`,
  delete: () => "You can't delete this message: only its author and the room's owner and " +
    "moderators can.",
  moderate: () => "You can't do that: only the room's owner and moderators moderate it, " +
    "nobody can moderate the owner, and moderators can't mute or kick each other.",
  role: () => "You can't do that: only the room's owner names or removes moderators.",
};

/**
 * Why `action` ("send", "edit", "delete", "join", "moderate", "role") was refused with
 * `error` ({code, message, until?}). `options`: {editMinutes, now, locale}.
 */
export function explain(error, action = "", options = {}) {
  const code = error && typeof error.code === "string" ? error.code : "";
  const serverText = error && typeof error.message === "string" ? error.message : "";
  const until = error && error.until ? whenText(error.until, options.now, options.locale) : "";
  switch (code) {
    case "forbidden":
      return (FORBIDDEN[action] || (() => "You are not allowed to do that in this room."))(options);
    case "muted":
      return until
        ? `You are muted in this room until ${until}.`
        : "You are muted in this room for now.";
    case "kicked":
      return until
        ? `You were removed from this room; you can join it again at ${until}.`
        : "You were removed from this room; you can join it again later.";
    case "unauthorized":
      return "You are not signed in, or your sign-in has expired: sign in again.";
    case "not_found":
      return action === "edit" || action === "delete"
        ? "That message no longer exists: it has been deleted."
        : "Not found: it may have been deleted.";
    case "not_joined":
      return "You are not in this room right now; try again once it has joined.";
    case "rate_limited":
      return "Too many at once: wait a moment and try again.";
    case "unavailable":
      return "The server is busy and nothing was changed; try again.";
    default:
      return serverText || "The server refused it.";
  }
}
