// The Socket.IO connection and what the page says about it: connecting, online,
// reconnecting (with the attempt number), offline, or "signin" (the server wants a token
// from the deployment's login). When the browser says the network is back, or a hidden tab
// is shown again, it reconnects at once instead of waiting out the back-off. Every
// handshake presents the identity's newest token (identity.js), so a reconnect, or another
// tab, is the same person.

export const ACK_TIMEOUT_MS = 10_000;

/**
 * The code of a `connect_error` the server sent on purpose (`unauthorized`,
 * `too_many_connections`, `unavailable`), or "": the server puts it in the error's data,
 * `{code, message}`.
 */
export function refusalCode(err) {
  const data = err ? err.data : null;
  return data && typeof data === "object" && typeof data.code === "string" ? data.code : "";
}

export class Connection {
  constructor(io, identity) {
    this.identity = identity;
    // Same directory as the page, so a front door serving chatd under a path prefix works.
    this.socket = io({
      path: location.pathname.replace(/[^/]*$/, "") + "socket.io/",
      autoConnect: false,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5_000,
      // A function, so each (re)connect reads the token afresh.
      auth: (send) => identity.handshake(send),
    });
    this.status = "connecting";
    this.started = false;
    this.attempt = 0;
    this.listeners = new Set();
    const { socket } = this;
    socket.on("connect", () => {
      this.attempt = 0;
      this.#set("online");
    });
    socket.on("disconnect", (reason) => {
      this.#set(this.#lost());
      // The server closed this session on purpose; Socket.IO then waits for us to reconnect.
      if (reason === "io server disconnect") socket.connect();
    });
    socket.on("connect_error", (err) => {
      if (refusalCode(err) === "unauthorized") {
        this.#unauthorized();
        return;
      }
      // Not retrying by itself means the server refused this client; ask again a bit later.
      if (!socket.active) setTimeout(() => this.reconnectNow(), 5_000);
      this.#set(this.#lost());
    });
    // Another tab stored a different token (it signed in, or got its identity first):
    // become that identity too, so one person is one identity in every tab.
    window.addEventListener("storage", (event) => {
      if (event.key === "chatd.token" && identity.outdated() && this.started) this.restart();
    });
    socket.io.on("reconnect_attempt", (attempt) => {
      this.attempt = attempt;
      this.#set(this.#lost());
    });
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => {
      if (!socket.connected) this.#set("offline");
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.reconnectNow();
    });
  }

  get connected() {
    return this.socket.connected;
  }

  /** Resolves true once connected, or false after `timeoutMs`. */
  whenConnected(timeoutMs) {
    if (this.socket.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok) => {
        clearTimeout(timer);
        this.socket.off("connect", onConnect);
        resolve(ok);
      };
      const onConnect = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.socket.on("connect", onConnect);
    });
  }

  /** `fn(status, changed)` whenever the status is set. */
  onStatus(fn) {
    this.listeners.add(fn);
  }

  /** A server event. */
  on(event, fn) {
    this.socket.on(event, fn);
  }

  start() {
    this.started = true;
    if (!this.socket.active) this.socket.connect();
  }

  /** Connect now if not connected (skipping any back-off wait in progress). */
  reconnectNow() {
    if (this.socket.connected || this.status === "connecting") return;
    // disconnect() drops the pending back-off timer; connect() then tries at once.
    this.socket.disconnect();
    this.socket.connect();
    this.#set(this.#lost());
  }

  /** A fresh session (after a change of name): every room is joined again. */
  restart() {
    this.socket.disconnect();
    this.socket.connect();
  }

  /** Emit with an acknowledgement: resolves to the ack, or null when none came in time. */
  request(event, payload, timeoutMs = ACK_TIMEOUT_MS) {
    return new Promise((resolve) => {
      this.socket.timeout(timeoutMs).emit(event, payload, (err, ack) => {
        resolve(err || !ack || typeof ack !== "object" ? null : ack);
      });
    });
  }

  /** Emit without waiting for an answer (typing, leaving). */
  send(event, payload) {
    if (this.socket.connected) this.socket.emit(event, payload);
  }

  /**
   * The token was refused (another deployment's, expired, tampered with): forget it and
   * try once without one, which in open mode gets a fresh identity. Refused without a token
   * too, the server is in sign-in mode: wait for a login's token (a page load with
   * #token=, or another tab storing one).
   */
  #unauthorized() {
    const refused = this.identity.presented;
    if (refused) {
      this.identity.forget(refused);
      this.socket.connect();
      return;
    }
    this.#set("signin");
  }

  #lost() {
    return navigator.onLine ? "reconnecting" : "offline";
  }

  #set(status) {
    const changed = status !== this.status;
    this.status = status;
    for (const fn of this.listeners) fn(status, changed);
  }
}
