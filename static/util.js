// Small helpers shared by the client modules. Nothing here touches the network.

/** Build an element. User text only ever enters through `text` (textContent). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// Mirrors protocol.py `_NAME_RE`: Python's \w is letters, digits (any script) and '_'.
const NAME_RE = /^[\p{L}\p{N}_](?:[\p{L}\p{N}_ .-]*[\p{L}\p{N}_.-])?$/u;
export const USERNAME_MAX_CHARS = 32;
export const ROOM_MAX_CHARS = 64;
export const MESSAGE_MAX_CHARS = 2000;

/** Why `name` would be refused by the server, or "" when it is acceptable. */
export function nameProblem(name, what, maxChars) {
  if (!name) return `Please enter a ${what}.`;
  if (!NAME_RE.test(name)) {
    return `“${name}” can't be used as a ${what}: use letters, digits, spaces, '-', '.' or '_', ` +
      "starting with a letter or digit.";
  }
  if ([...name].length > maxChars) return `A ${what} can be at most ${maxChars} characters.`;
  return "";
}

/** An idempotency key for one message (protocol.py allows [A-Za-z0-9_.:-], 64 chars). */
export function newClientId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // randomUUID needs a secure context; plain http on a LAN address still has getRandomValues.
  const bytes = new Uint8Array(16);
  if (globalThis.crypto && crypto.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return "c-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A stable colour slot (CSS classes hue-0 … hue-9) for a user name. */
export function hueClass(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return "hue-" + (h % 10);
}

export function initial(name) {
  const first = [...name.trim()][0] || "?";
  return first.toUpperCase();
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayTimeFmt = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
});
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() &&
    a.getDate() === b.getDate();
}

/** Local time of a message: "14:05" today, "Mar 3, 14:05" on other days. */
export function shortTime(date) {
  return sameDay(date, new Date()) ? timeFmt.format(date) : dayTimeFmt.format(date);
}

export function fullTime(date) {
  return fullFmt.format(date);
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "narrow" });

/** "now", "5 min ago", "3 hr ago", "2 days ago" for the room list. */
export function relativeTime(date, now = Date.now()) {
  const secs = Math.round((date.getTime() - now) / 1000);
  const abs = Math.abs(secs);
  if (abs < 45) return "now";
  if (abs < 3600) return rtf.format(Math.round(secs / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(secs / 3600), "hour");
  if (abs < 86400 * 30) return rtf.format(Math.round(secs / 86400), "day");
  return dayTimeFmt.format(date);
}

/** Run `fn` at most once per `ms`, at the end of a burst of calls. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export const storage = {
  get(key, fallback) {
    try {
      const raw = localStorage.getItem("chatd." + key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem("chatd." + key, JSON.stringify(value));
    } catch {
      // Private mode or a full quota: the app still works, it just won't remember.
    }
  },
};
