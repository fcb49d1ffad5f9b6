// Who this page acts as (docs/identities.md): the token the server hands out in `session`
// (open mode) or a login put in the address (sign-in mode, `#token=...`), kept in
// localStorage so every tab and every reconnect is the same identity, and the `user_id` it
// stands for, which is what decides which messages are "yours" (names need not be unique).
import { storage } from "./util.js";

const TOKEN_KEY = "token";
const SIGN_IN_KEY = "signin"; // the server fixed our name from a login's token once

/** The token in a page address's fragment (`#token=<jwt>`), or "". */
export function fragmentToken(hash) {
  if (typeof hash !== "string" || !hash.startsWith("#")) return "";
  const params = new URLSearchParams(hash.slice(1));
  return (params.get("token") || "").trim();
}

/** The fragment without its token (other parts a login may add stay). */
export function fragmentWithoutToken(hash) {
  const params = new URLSearchParams(hash.slice(1));
  params.delete("token");
  const rest = params.toString();
  return rest ? `#${rest}` : "";
}

/**
 * The `sub` a JWT claims, read without checking it (only the server can): enough to tell
 * whether another tab's token is a renewal of ours or another identity. "" if unreadable.
 */
export function tokenSubject(token) {
  if (typeof token !== "string") return "";
  const part = token.split(".")[1];
  if (!part) return "";
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const claims = JSON.parse(json);
    return typeof claims.sub === "string" ? claims.sub : "";
  } catch {
    return "";
  }
}

/** Whether `msg` was written by the identity `userId` (called `name`). */
export function writtenBy(msg, userId, name) {
  // Messages from before identities carry no user_id: the name is all there is to go by.
  if (userId && typeof msg.user_id === "string" && msg.user_id) return msg.user_id === userId;
  return Boolean(name) && msg.user === name;
}

export class Identity {
  constructor() {
    this.token = storage.get(TOKEN_KEY, null);
    this.presented = null; // the token the latest handshake carried
    this.userId = null;
    this.fixedName = null; // sign-in mode: the name the token carries
    this.roles = [];
    this.signIn = Boolean(storage.get(SIGN_IN_KEY, false));
  }

  get admin() {
    return this.roles.includes("admin");
  }

  /**
   * Sign-in mode: a login redirected here with `#token=...`. Keep it, and take it out of
   * the address bar so it is not bookmarked, shared or left in the history.
   */
  takeFromAddress(loc = window.location, hist = window.history) {
    const token = fragmentToken(loc.hash);
    if (!token) return false;
    this.#keep(token);
    this.signIn = true;
    storage.set(SIGN_IN_KEY, true);
    hist.replaceState(hist.state, "", loc.pathname + loc.search + fragmentWithoutToken(loc.hash));
    return true;
  }

  /** socket.io-client calls this on every (re)connect: the newest token any tab stored. */
  handshake(send) {
    // Without localStorage (a private window) the token of this tab's own session serves.
    this.token = storage.get(TOKEN_KEY, this.token);
    this.presented = this.token || null;
    send(this.token ? { token: this.token } : {});
  }

  /** The server's `session` event: who this connection is, and the token to present next. */
  session(data) {
    if (!data || typeof data !== "object") return false;
    const before = this.userId;
    this.userId = typeof data.user_id === "string" ? data.user_id : null;
    this.fixedName = typeof data.name === "string" && data.name ? data.name : null;
    this.roles = Array.isArray(data.roles) ? data.roles.filter((r) => typeof r === "string") : [];
    // Only a sign-in server fixes the name; remember which kind this one is for next time.
    if (Boolean(this.fixedName) !== this.signIn) {
      this.signIn = Boolean(this.fixedName);
      storage.set(SIGN_IN_KEY, this.signIn);
    }
    if (typeof data.token === "string" && data.token) this.#keep(data.token);
    return before !== this.userId;
  }

  /**
   * The server refused `refused`: drop it, unless another tab has meanwhile stored a newer
   * token (that one is not known to be bad).
   */
  forget(refused) {
    if (!refused) return;
    if (storage.get(TOKEN_KEY, null) === refused) storage.set(TOKEN_KEY, null);
    if (this.token === refused) this.token = null;
  }

  /**
   * Another tab stored a different token: whether this tab should reconnect as the identity
   * it stands for. A renewed token of this same identity is just taken for next time.
   */
  outdated() {
    const stored = storage.get(TOKEN_KEY, this.token);
    if (!stored || stored === this.token) return false;
    if (this.userId && tokenSubject(stored) === this.userId) {
      this.token = stored;
      return false;
    }
    return true;
  }

  /** The token a REST call should carry, or null. */
  get bearer() {
    return storage.get(TOKEN_KEY, this.token) || null;
  }

  owns(msg, name) {
    return writtenBy(msg, this.userId, name);
  }

  #keep(token) {
    this.token = token;
    storage.set(TOKEN_KEY, token);
  }
}

/** The page's one identity, shared by the modules that talk to the server. */
export const identity = typeof window === "undefined" ? null : new Identity();

/**
 * `fetch` of a chatd REST path (relative to the page), with `Authorization: Bearer` whenever
 * a token is held. A token refused with 401 is forgotten, as the handshake would, and the
 * call is made once more without it (in open mode REST works without one).
 */
export async function apiFetch(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const token = identity ? identity.bearer : null;
  if (!token) return fetch(path, { ...options, headers });
  const res = await fetch(path, { ...options, headers: { ...headers, Authorization: `Bearer ${token}` } });
  if (res.status !== 401) return res;
  identity.forget(token);
  return fetch(path, { ...options, headers });
}
