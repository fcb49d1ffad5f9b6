// Small helpers shared by the client modules. Nothing here touches the network, and only
// `el` touches the DOM (when called).

/** Build an element. User text only ever enters through `text` (textContent). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** At most `max` characters of `text`, with an ellipsis when cut. */
export function truncate(text, max) {
  const chars = [...text];
  return chars.length <= max ? text : chars.slice(0, max - 1).join("") + "…";
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

/** Run `fn` once, `ms` after the last of a burst of calls. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Run `fn` once in the next animation frame, however often this is called before it. */
export function everyFrame(fn) {
  let frame = 0;
  return () => {
    if (!frame) {
      frame = requestAnimationFrame(() => {
        frame = 0;
        fn();
      });
    }
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
